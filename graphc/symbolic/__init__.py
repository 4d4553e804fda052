"""gc.symbolic: elementwise graphs as sympy expressions and back, and sympy's closed-form derivatives
side by side with graphc's reverse and forward modes and finite differences (``compare``, ``swell_table``).
"""

from graphc.symbolic.bridge import SymbolicError, from_sympy, numpy_function, symbol, to_sympy
from graphc.symbolic.compare import METHODS, CompareReport, CompareRow, compare, graph_size
from graphc.symbolic.swell import SwellTable, nested_tanh, swell_table

__all__ = ["METHODS", "CompareReport", "CompareRow", "SwellTable", "SymbolicError", "compare", "from_sympy",
           "graph_size", "nested_tanh", "numpy_function", "swell_table", "symbol", "to_sympy"]
