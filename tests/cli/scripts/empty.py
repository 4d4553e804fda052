"""Builds nothing, in the default graph or a build(): graphc has no graph to show."""

import graphc as gc

g = gc.Graph()
with g.as_default():  # a graph of its own, not the default one, and no build() to return it
    gc.placeholder("float32", (), name="unseen")
