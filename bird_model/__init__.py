"""Train a bird-species classifier on a folder of photos, publish it, serve it.

The package is split by concern; ``train.py`` and ``app.py`` only wire these modules
(README.md "Layout" has the same map, ARCHITECTURE.md the flows through it):

- ``settings``: every default of training and serving
- ``formats``: the image formats we read (one list for decoder, scan, messages, README)
- ``images``: decoding a photo into model-ready RGB pixels (shared by training and serving)
- ``sources``: turning ``--data`` specs (local, ``kaggle:``, ``hf:``) into local folders
- ``data``: finding, checking, de-duplicating and splitting a folder-per-class dataset
- ``model``: the MobileNetV2 classifier
- ``training``: the two-phase fine-tuning
- ``devices``: where training runs (the ``tf.distribute`` strategy) and in which precision
- ``checkpoints``: epoch checkpoints of an unfinished run, for ``train.py --resume``
- ``evaluation``: ``metrics.json`` as a typed record (``Metrics``) and the confusion matrix
- ``pipeline``: one training run, from resolved sources to a model folder
- ``artifacts``: the model folder (write, read, validate; the label map)
- ``card``: the model card
- ``release``: the release policy (parent, comparison, candidate branch) and publishing
- ``hub``: every call to the Hugging Face Hub and the translation of its errors
- ``litert``: converting to and running ``model.tflite``
- ``ood``: telling photos unlike the training data ("not one of my birds") from known classes
- ``inference``: the serving-time classifier
- ``web``: the Gradio page and API, its feedback buttons, and the operator's Monitoring tab
- ``feedback``: visitors' corrections: checks, storage as a folder-per-class dataset, reported accuracy
- ``monitoring``: the prediction log, the training baseline, drift reports and plots; its
  ``__main__`` is the monitor command (``monitor``: the same command under its documented name)
- ``space``: putting the demo live as a Hugging Face Space; promoting and rolling back the model it serves
- ``space_files``: what a Space is made of (its files, requirements, card and variables)
"""
