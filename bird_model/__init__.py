"""Train a bird-species classifier on a folder of photos, publish it, serve it.

The package is split by concern; ``train.py`` and ``app.py`` only wire these modules:

- ``images``: decoding a photo into model-ready RGB pixels (shared by training and serving)
- ``data``: finding, checking, de-duplicating and splitting a folder-per-class dataset
- ``sources``: turning ``--data`` specs (local, ``kaggle:``, ``hf:``) into local folders
- ``model``: the MobileNetV2 classifier
- ``training``: the two-phase fine-tuning
- ``evaluation``: metrics and the confusion matrix
- ``artifacts``: the model folder (write, read, validate)
- ``hub``: publishing to and downloading from the Hugging Face Hub
- ``inference``: the serving-time classifier
- ``ood``: telling photos unlike the training data ("not one of my birds") from known classes
- ``monitoring``: the prediction log, the training baseline and drift reports (``monitor``: its command)
- ``space``: putting the demo live as a Hugging Face Space; promoting and rolling back the model it serves
"""
