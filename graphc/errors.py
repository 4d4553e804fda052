"""The errors graphc raises for user mistakes.

Every message names the node involved, the shapes and dtypes it saw and the user's source line that
created the node, so a mistake is reported where it was made, not deep inside a backend.
"""

from __future__ import annotations


class GraphcError(Exception):
    """Base class of every error graphc raises on purpose."""


class ShapeError(GraphcError, ValueError):
    """Shapes that do not broadcast, contract or fit an op's rule; a bad axis."""


class AssumptionError(ShapeError):
    """An optimized graph assumed two unknown (None) sizes equal, and a run's sizes broadcast one against the
    other instead (1 against n). The Session catches it and runs a version compiled without the assumption."""


class DTypeError(GraphcError, TypeError):
    """A dtype an op does not accept, or operands whose dtypes do not combine."""


class FeedError(GraphcError, ValueError):
    """A missing feed, a feed of the wrong shape or dtype, or a feed of something that is not a placeholder."""


class GraphError(GraphcError, ValueError):
    """A structural mistake: a tensor from another graph, a cycle, an unknown name."""


class ArgumentError(GraphcError, ValueError):
    """An argument graphc does not accept: an unknown mode, option or name given to a function."""


class NotFoundError(GraphcError, KeyError):
    """A lookup in a report (a trace's row, a gradient check's input, a comparison's row) that has no entry
    for the key: the message says which keys exist."""

    def __str__(self) -> str:  # KeyError would show the message quoted, as a repr
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


class GradientError(GraphcError):
    """A gradient would have to flow through an op that has none."""


class CompileError(GraphcError):
    """A backend cannot compile a node (an op or dtype it does not support)."""


class BackendUnavailableError(CompileError):
    """A backend that needs what this machine lacks (the cuda backend: pycuda, a CUDA toolkit, a GPU and its
    driver): the message says what is missing and how to install it."""


class CheckpointError(GraphcError):
    """A checkpoint that cannot be restored: missing, damaged, or not matching the saver's variables."""


class VerificationError(GraphcError):
    """An optimization pass changed what a graph computes (found by verify mode)."""


class NumericsError(GraphcError, FloatingPointError):
    """A value holds NaN or Inf (found by ``check_numerics``): names the first node that made one.

    ``node``: the user's node whose value held it; ``forward``: the forward node it differentiates (None
    for a node not built by differentiation); ``fed``: whether the value came from a feed or a variable."""

    def __init__(self, message: str, node: object = None, forward: object = None, fed: bool = False) -> None:
        super().__init__(message)
        self.node = node
        self.forward = forward
        self.fed = fed
