"""Inspecting graphs: ``gc.viz.text`` prints a graph one node per line, ``gc.viz.dot`` gives its Graphviz
DOT source, ``gc.viz.render`` draws it to .svg, .png or an interactive .html page."""

from graphc.viz.dot import dot
from graphc.viz.render import render
from graphc.viz.stages import STAGES, Stage, stage
from graphc.viz.text import text

__all__ = ["STAGES", "Stage", "dot", "render", "stage", "text"]
