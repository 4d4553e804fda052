"""Optimization passes: a pattern-rewrite engine, the pass pipeline, and (later) fusion planning."""

from graphc.passes.patterns import Const, Op, Rule, RuleTable, Var
from graphc.passes.pipeline import Optimized, Pass, PassRecord, optimize

__all__ = ["Const", "Op", "Optimized", "Pass", "PassRecord", "Rule", "RuleTable", "Var", "optimize"]
