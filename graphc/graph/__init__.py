"""The IR: TensorType, Node, Tensor and Graph."""

from graphc.graph.dtypes import DTYPES, as_dtype, promote
from graphc.graph.graph import Graph, get_default_graph, name_scope, reset_default_graph
from graphc.graph.node import Node, Tensor
from graphc.graph.source import SourceLine
from graphc.graph.types import TensorType, broadcast_shapes, format_shape

__all__ = ["DTYPES", "Graph", "Node", "SourceLine", "Tensor", "TensorType", "as_dtype",
           "broadcast_shapes", "format_shape", "get_default_graph", "name_scope", "promote",
           "reset_default_graph"]
