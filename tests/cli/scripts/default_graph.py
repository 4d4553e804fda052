"""No build(): the graph is left in the default graph (its sink, loss, is what graphc shows)."""

import numpy as np

import graphc as gc

x = gc.placeholder("float32", (None, 3), name="x")
W = gc.Variable(np.full((3, 2), 0.5, np.float32), name="W")
loss = gc.reduce_mean(gc.square(gc.tanh(x @ W)), name="loss")
