"""(being written)"""


def text(target):
    raise NotImplementedError
