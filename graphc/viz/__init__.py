"""Inspecting graphs: ``gc.viz.text`` prints a graph one node per line."""

from graphc.viz.stages import STAGES, Stage, stage
from graphc.viz.text import text

__all__ = ["STAGES", "Stage", "stage", "text"]
