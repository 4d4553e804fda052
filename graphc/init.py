"""``gc.init``: initial values for variables (numpy arrays)."""

__all__: list[str] = []
