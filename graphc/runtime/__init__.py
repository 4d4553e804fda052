"""Running graphs: Session (shared by every backend) and gc.function."""

from graphc.runtime.function import Function, function
from graphc.runtime.session import Session

__all__ = ["Function", "Session", "function"]
