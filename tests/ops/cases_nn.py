from tests.ops.harness import OpCase  # noqa: F401

CASES: list = []
