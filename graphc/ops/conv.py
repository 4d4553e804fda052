"""2-D convolution (NHWC inputs, HWIO filters) and its two gradient ops."""

__all__: list[str] = []
