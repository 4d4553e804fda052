"""``gc.train``: optimizers, checkpoints and the training loop."""

__all__: list[str] = []
