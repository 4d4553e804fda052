"""Symbolic differentiation: reverse mode (gradients), forward mode (jvp), and what is built on them."""

from graphc.autodiff.forward import jvp
from graphc.autodiff.reverse import UnconnectedGradientWarning, gradients

__all__ = ["UnconnectedGradientWarning", "gradients", "jvp"]
