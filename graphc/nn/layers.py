"""Layers: objects that create their variables on first call (gc.nn.Dense, Conv2D, ...)."""

__all__: list[str] = []
