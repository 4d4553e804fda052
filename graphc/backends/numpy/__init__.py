"""The reference backend: interprets a plan node by node with each op's numpy ``reference``."""

from graphc.backends.numpy.interpreter import compile

__all__ = ["compile"]
