"""Lowering: the kernels of a partition become a loop-nest program (graphc/lower/ir.py) any backend renders."""
