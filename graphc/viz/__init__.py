"""Inspecting graphs: ``gc.viz.text`` prints a graph one node per line."""

from graphc.viz.text import text

__all__ = ["text"]
