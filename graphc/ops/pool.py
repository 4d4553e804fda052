"""2-D max and average pooling (NHWC) and their gradient ops."""

__all__: list[str] = []
