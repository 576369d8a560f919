"""Train a bird-species classifier on a folder of photos, publish it, serve it.

One module per concern; ``train.py`` and ``app.py`` only wire them together. The module map,
the flows through it and where to change what are in ARCHITECTURE.md, the one place they are
written.
"""

from bird_model.console import quiet_tensorflow

# Before any module imports TensorFlow: every command imports this package first.
quiet_tensorflow()
