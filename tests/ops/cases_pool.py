"""Cases for the pooling ops and their gradient ops, against plain numpy."""

CASES: list = []
