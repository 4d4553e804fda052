"""Symbolic differentiation: reverse mode (gradients), forward mode (jvp), and what is built on them."""

from graphc.autodiff.check import GradientCheckReport, InputCheck, check_gradients
from graphc.autodiff.forward import jvp
from graphc.autodiff.higher import hessian, jacobian
from graphc.autodiff.reverse import UnconnectedGradientWarning, gradients
from graphc.autodiff.trace import AdjointStep, Trace, TraceRow, trace

__all__ = [
    "AdjointStep", "GradientCheckReport", "InputCheck", "Trace", "TraceRow", "UnconnectedGradientWarning",
    "check_gradients", "gradients", "hessian", "jacobian", "jvp", "trace",
]
