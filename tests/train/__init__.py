"""Tests of gc.train and gc.data: optimizers, checkpoints, the training loop."""
