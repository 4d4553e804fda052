"""``gc.data``: minibatches of in-memory arrays."""

__all__: list[str] = []
