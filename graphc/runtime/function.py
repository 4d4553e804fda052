"""``gc.function``: a Theano-style callable over a graph.

Functions built on the same graph and backend share one Session by default, so their variables are
shared the way Theano's shared variables are (a ``train`` function's updates are seen by ``predict``).
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from typing import Any

from graphc.backends import DEFAULT_BACKEND
from graphc.errors import GraphError
from graphc.graph.graph import Graph
from graphc.graph.node import Tensor
from graphc.ops.state import assign, group
from graphc.runtime.session import Session

_shared_sessions: weakref.WeakKeyDictionary[Graph, dict[str, Session]] = weakref.WeakKeyDictionary()


class Function:
    """Call with one value per input (positionally, in the order of ``inputs``); returns ``outputs``' values."""

    def __init__(self, inputs: Sequence[Tensor], outputs: Any, updates: Any, session: Session) -> None:
        self.inputs = list(inputs)
        self.outputs = outputs
        self.session = session
        pairs = updates.items() if isinstance(updates, Mapping) else list(updates or [])
        if len(pairs) == 2 and isinstance(pairs[0], Tensor) and isinstance(pairs[1], Tensor):
            raise GraphError("gc.function updates must be a list of (variable, new value) pairs or a dict; "
                             "got a single pair: write updates=[(variable, value)]")
        update_ops = [assign(variable, value) for variable, value in pairs]
        self._step = group(*update_ops, name="updates") if update_ops else None

    def __call__(self, *values: Any) -> Any:
        if len(values) != len(self.inputs):
            names = ", ".join(t.name for t in self.inputs)
            raise TypeError(f"this function takes {len(self.inputs)} inputs ({names}), got {len(values)}")
        feed_dict = dict(zip(self.inputs, values))
        if self._step is None:
            return self.session.run(self.outputs, feed_dict)
        return self.session.run([self.outputs, self._step], feed_dict)[0]


def function(inputs: Sequence[Tensor], outputs: Any, updates: Any = None, backend: str = DEFAULT_BACKEND,
             session: Session | None = None) -> Function:
    """``f = gc.function([x], loss, updates=[(W, W - 0.1 * dW)])``; ``f(xb)`` runs one step.

    ``updates`` is a list of (variable, new value) pairs or a dict; all are computed from the values before
    the call and committed together. ``session`` defaults to one shared by functions of the same graph.
    """
    tensors = [t for t in inputs if isinstance(t, Tensor)]
    if len(tensors) != len(inputs):
        raise GraphError("gc.function inputs must be placeholders (tensors)")
    graph = tensors[0].graph if tensors else _graph_of(outputs)
    if session is None:
        per_graph = _shared_sessions.setdefault(graph, {})
        session = per_graph.get(backend)
        if session is None or session.closed:  # a closed shared session is replaced, not reused
            session = per_graph[backend] = Session(graph, backend)
    with graph.as_default():
        return Function(inputs, outputs, updates, session)


def _graph_of(outputs: Any) -> Graph:
    if isinstance(outputs, Tensor):
        return outputs.graph
    if isinstance(outputs, (list, tuple)) and outputs and isinstance(outputs[0], Tensor):
        return outputs[0].graph
    from graphc.graph.graph import get_default_graph

    return get_default_graph()
