"""Train a bird-species classifier on a folder of photos, publish it, serve it.

The package is split by concern; ``train.py`` and ``app.py`` only wire these modules
(README.md "Layout" has the same map, ARCHITECTURE.md the flows through it):

- ``settings``: every default of training and serving
- ``console``: what our commands print (TensorFlow's C++ log silenced, a line per long step)
- ``formats``: the image formats we read (one list for decoder, scan, messages, README)
- ``images``: decoding a photo into model-ready RGB pixels (shared by training and serving)
- ``sources``: turning ``--data`` specs (local, ``kaggle:``, ``hf:``) into local folders
- ``data``: finding, checking, de-duplicating and splitting a folder-per-class dataset
- ``cache``: the photo cache: each usable photo decoded once, on disk, checksummed
- ``inputs``: the training input: cached photos streamed through tf.data (``Photos``)
- ``model``: the MobileNetV2 classifier
- ``training``: the two-phase fine-tuning, one loop of our own under every ``tf.distribute`` strategy
- ``plateaus``: early stopping and learning-rate reduction on validation loss, as checkpointable state
- ``devices``: where training runs (the ``tf.distribute`` strategy) and in which precision
- ``cluster``: this process's place in a multi-worker run (``TF_CONFIG``; worker 0 is the chief)
- ``checkpoints``: epoch checkpoints of an unfinished run, for ``train.py --resume``
- ``evaluation``: ``metrics.json`` as a typed record (``Metrics``) and the confusion matrix
- ``curves``: the training curves picture (``training_curves.png``, from ``history.json``)
- ``pipeline``: one training run, from resolved sources to a model folder
- ``artifacts``: the model folder (write, read, validate; the label map)
- ``card``: the model card
- ``release``: the release policy (parent, comparison, candidate branch) and publishing
- ``hub``: every call to the Hugging Face Hub and the translation of its errors
- ``litert``: converting to and running ``model.tflite``
- ``ood``: telling photos unlike the training data ("not one of my birds") from known classes
- ``inference``: the serving-time classifier
- ``batch``: classifying photo files on disk outside the page (what ``evaluate`` and ``predict`` share)
- ``evaluate``: the command grading a model on a labelled test set with training's metrics
- ``predict``: the command classifying files and folders into CSV or JSON Lines
- ``overlay``: drawing where the model looked (its top class's activation map) over the photo
- ``web``: the Gradio page and API (a package: page, answers, feedback events, text, uploads, Monitoring tab)
- ``feedback``: visitors' corrections: checked, bounded and kept pending (``store``); the operator's
  review (``review``, the command ``python -m bird_model.feedback``)
- ``logfolder``: the log folder's layout (prediction log, images, feedback, mirror patterns), in one place
- ``monitoring``: the prediction log, the training baseline, drift reports, visitor-reported accuracy and plots; its
  ``__main__`` is the monitor command (``monitor``: the same command under its documented name)
- ``space``: putting the demo live as a Hugging Face Space; promoting and rolling back the model it serves
- ``space_files``: what a Space is made of (its files, requirements, card and variables)
"""

from bird_model.console import quiet_tensorflow

# Before any module imports TensorFlow: every command imports this package first.
quiet_tensorflow()
