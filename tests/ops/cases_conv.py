"""Cases for conv2d and its gradient ops, against plain numpy."""

CASES: list = []
