"""Optimizers: ``train = gc.train.Adam(1e-3).minimize(loss)`` builds one op that, run with a batch fed,
takes one step — forward, gradients and every update compile into one executable.

The update formulas and defaults are torch.optim's, so one step agrees with torch. Every update is a graph
op (``gc.assign``) and, as for every run, reads see the values from before the step: a new parameter is
computed from the *expression* of its new slot value (``m_new = β1·m + (1−β1)·g; p ← p − lr·m̂_new/…``),
never by reading a slot after assigning it.

Per-step pipeline of ``apply_gradients``: drop variables without a gradient; clip by global norm
(``clip_norm``); add L2 weight decay to the gradient (SGD, Momentum, RMSProp, Adagrad: torch's
``weight_decay``), or decay the weights directly (Adam: decoupled, torch's AdamW); update slots and
variables; add one to ``optimizer.iterations``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from graphc.autodiff import gradients
from graphc.errors import ArgumentError, DTypeError, GradientError, GraphError
from graphc.graph.graph import Graph, get_default_graph
from graphc.graph.node import Node, Tensor
from graphc.graph.walk import ancestors
from graphc.ops.convert import cast
from graphc.ops.elementwise import maximum, sqrt, square
from graphc.ops.reduce import reduce_sum
from graphc.ops.sources import CONSTANT, PLACEHOLDER
from graphc.ops.state import VARIABLE, Variable, assign, assign_add, group, trainable_variables

__all__ = ["SGD", "Adagrad", "Adam", "Momentum", "Optimizer", "RMSProp"]

LearningRate = float | Tensor | Callable[[Variable], Tensor]
_FLOATS = ("float32", "float64")
_SOURCES = (CONSTANT, PLACEHOLDER, VARIABLE)


class Optimizer:
    """The shared machinery: gradients, clipping, weight decay, slot variables and the step counter.

    ``learning_rate``: a float, a scalar float tensor (a placeholder fed each run, a schedule) or a function
    of the step counter returning one (``lambda step: gc.train.cosine_decay(0.1, step, 1000)``).
    ``clip_norm``: scale all gradients by ``clip_norm / max(global_norm, clip_norm)`` (TF's
    ``clip_by_global_norm``). ``weight_decay``: L2 added to the gradient, or decoupled in Adam (see module).
    """

    decoupled_weight_decay = False  # Adam decays weights directly (AdamW)

    def __init__(self, learning_rate: LearningRate, *, clip_norm: float | None = None, weight_decay: float = 0.0,
                 name: str | None = None) -> None:
        if not isinstance(learning_rate, Tensor) and not callable(learning_rate):
            _check_at_least(learning_rate, 0.0, "learning_rate")
        if clip_norm is not None:
            _check_at_least(clip_norm, 0.0, "clip_norm", strict=True)
        _check_at_least(weight_decay, 0.0, "weight_decay")
        self.learning_rate = learning_rate
        self.clip_norm = clip_norm
        self.weight_decay = float(weight_decay)
        self.name = name or type(self).__name__
        self._iterations: Variable | None = None
        self._slots: dict[tuple[Node, str], Variable] = {}

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} learning_rate={self.learning_rate!r}>"

    @property
    def iterations(self) -> Variable:
        """The step counter: a non-trainable int64 variable (``<name>/iterations``) that each step adds one to.
        Made in the default graph when first asked for, else in the graph of the first variables updated."""
        return self._iterations_in(get_default_graph() if self._iterations is None else self._iterations.graph)

    def get_slot(self, variable: Variable, slot: str) -> Variable:
        """The slot variable ``slot`` (e.g. ``"m"``) this optimizer keeps for ``variable``."""
        key = (variable.node, slot)
        if key not in self._slots:
            known = sorted(s for node, s in self._slots if node is variable.node)
            raise GraphError(f"{self.name} has no slot {slot!r} for variable '{variable.name}' (it has {known})")
        return self._slots[key]

    # -- the three steps of TF1's API ------------------------------------------------------------------
    def compute_gradients(self, loss: Tensor, var_list: Sequence[Variable] | None = None
                          ) -> list[tuple[Tensor | None, Variable]]:
        """``[(gradient, variable)]`` of ``loss`` for ``var_list`` (default: the trainable float variables
        of the loss's graph); the gradient is None for a variable the loss does not depend on."""
        if not isinstance(loss, Tensor):
            raise ArgumentError(f"{self.name}: the loss must be a tensor, got {loss!r}")
        variables = _variables_to_train(loss, var_list, self.name)
        return list(zip(gradients(loss, variables, unconnected="none"), variables))

    def apply_gradients(self, grads_and_vars: Sequence[tuple[Tensor | None, Variable]],
                        name: str | None = None) -> Node:
        """One op updating each variable with its gradient (pairs whose gradient is None are skipped; none
        at all is a GradientError), the slots, and the step counter."""
        grads_and_vars = list(grads_and_vars)
        pairs = [(g, v) for g, v in grads_and_vars if g is not None]
        if not pairs:
            names = ", ".join(f"'{v.name}'" for _, v in grads_and_vars) or "none given"
            raise GradientError(f"{self.name}: no variable gets a gradient (variables: {names}); the loss does "
                                "not depend on any of them")
        graph = pairs[0][1].graph
        step = self._iterations_in(graph)
        with graph.as_default():
            for _, variable in pairs:
                self._create_slots(variable)
            with graph.name_scope(self.name):
                learning_rate = self._learning_rate(step)
                if self.clip_norm is not None:
                    pairs = _clip_by_global_norm(pairs, self.clip_norm)
                updates = [op for g, v in pairs for op in self._update(self._decayed(g, v), v,
                                                                        _like(learning_rate, v))]
                return group(*updates, assign_add(step, 1), name=name or "apply")

    def minimize(self, loss: Tensor, var_list: Sequence[Variable] | None = None, name: str | None = None) -> Node:
        """The training step: ``apply_gradients(compute_gradients(loss))`` plus the graph's update ops
        (``graph.update_ops``, e.g. BatchNorm moving averages) computed from the same batch as ``loss``."""
        step = self.apply_gradients(self.compute_gradients(loss, var_list))
        batch_updates = _update_ops_of_batch(loss)
        if not batch_updates:
            return step if name is None else group(step, name=name)
        with loss.graph.as_default(), loss.graph.name_scope(self.name):
            return group(step, *batch_updates, name=name or "minimize")

    # -- what a subclass defines -----------------------------------------------------------------------
    def _create_slots(self, variable: Variable) -> None:
        """Make the slot variables ``variable`` needs (with ``_slot``); none by default."""

    def _update(self, gradient: Tensor, variable: Variable, learning_rate: Any) -> list[Tensor]:
        """The assignments of one step for one variable, given its (clipped, decayed) gradient."""
        raise NotImplementedError(f"{type(self).__name__} does not define its update")

    # -- helpers for subclasses ------------------------------------------------------------------------
    def _slot(self, variable: Variable, slot: str, initial: float = 0.0) -> Variable:
        """The slot ``slot`` of ``variable``, created once: a non-trainable variable named ``<var>/<slot>``
        of the variable's dtype and shape, filled with ``initial``."""
        key = (variable.node, slot)
        if key not in self._slots:
            with contextlib.ExitStack() as scopes:  # a slot lives next to its variable: "dense/W/m"
                for part in variable.name.split("/"):
                    scopes.enter_context(variable.graph.name_scope(part))
                value = np.full(variable.shape, initial, dtype=variable.dtype)
                self._slots[key] = Variable(value, name=slot, trainable=False)
        return self._slots[key]

    def _decayed(self, gradient: Tensor, variable: Variable) -> Tensor:
        if self.weight_decay and not self.decoupled_weight_decay:
            return gradient + self.weight_decay * variable
        return gradient

    def _iterations_in(self, graph: Graph) -> Variable:
        if self._iterations is None:
            with graph.as_default(), graph.name_scope(self.name):
                self._iterations = Variable(np.int64(0), name="iterations", trainable=False)
        elif self._iterations.graph is not graph:
            raise GraphError(f"{self.name} already steps variables of another graph; make one optimizer per graph")
        return self._iterations

    def _learning_rate(self, step: Variable) -> float | Tensor:
        rate = self.learning_rate(step) if callable(self.learning_rate) else self.learning_rate
        if isinstance(rate, Tensor) and (rate.shape != () or rate.dtype not in _FLOATS):
            raise DTypeError(f"{self.name}: the learning rate must be a scalar float tensor, got '{rate.name}' "
                             f"{rate.type}")
        return rate


class SGD(Optimizer):
    """Stochastic gradient descent, optionally with (Nesterov) momentum — torch.optim.SGD (dampening 0):
    ``b ← μ·b + g``; ``p ← p − lr·(g + μ·b if nesterov else b)`` (``p ← p − lr·g`` without momentum)."""

    def __init__(self, learning_rate: LearningRate, momentum: float = 0.0, nesterov: bool = False,
                 **options: Any) -> None:
        super().__init__(learning_rate, **options)
        _check_at_least(momentum, 0.0, "momentum")
        if nesterov and momentum == 0:
            raise ArgumentError("nesterov momentum needs momentum > 0")
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _create_slots(self, variable: Variable) -> None:
        if self.momentum:
            self._slot(variable, "momentum")

    def _update(self, gradient: Tensor, variable: Variable, learning_rate: Any) -> list[Tensor]:
        if not self.momentum:
            return [assign(variable, variable - learning_rate * gradient)]
        buffer = self._slot(variable, "momentum")
        new_buffer = self.momentum * buffer + gradient
        direction = gradient + self.momentum * new_buffer if self.nesterov else new_buffer
        return [assign(buffer, new_buffer), assign(variable, variable - learning_rate * direction)]


class Momentum(SGD):
    """SGD with momentum 0.9 by default (TF1's MomentumOptimizer name, torch's formula)."""

    def __init__(self, learning_rate: LearningRate, momentum: float = 0.9, nesterov: bool = False,
                 **options: Any) -> None:
        super().__init__(learning_rate, momentum, nesterov, **options)


class Adam(Optimizer):
    """Adam with bias correction (torch.optim.Adam; with ``weight_decay``, torch.optim.AdamW's decoupled
    decay ``p ← p − lr·wd·p``): ``m ← β1·m + (1−β1)·g``, ``v ← β2·v + (1−β2)·g²``,
    ``p ← p − lr/(1−β1ᵗ) · m / (√v/√(1−β2ᵗ) + ε)``."""

    decoupled_weight_decay = True

    def __init__(self, learning_rate: LearningRate = 0.001, beta1: float = 0.9, beta2: float = 0.999,
                 epsilon: float = 1e-8, **options: Any) -> None:
        super().__init__(learning_rate, **options)
        for value, what in ((beta1, "beta1"), (beta2, "beta2")):
            if not 0.0 <= value < 1.0:
                raise ArgumentError(f"{what} must be in [0, 1), got {value!r}")
        _check_at_least(epsilon, 0.0, "epsilon")
        self.beta1, self.beta2, self.epsilon = float(beta1), float(beta2), float(epsilon)

    def _create_slots(self, variable: Variable) -> None:
        self._slot(variable, "m")
        self._slot(variable, "v")

    def _update(self, gradient: Tensor, variable: Variable, learning_rate: Any) -> list[Tensor]:
        m, v = self._slot(variable, "m"), self._slot(variable, "v")
        t = cast(self._iterations + 1, variable.dtype)  # this step's number, counting from 1
        new_m = self.beta1 * m + (1.0 - self.beta1) * gradient
        new_v = self.beta2 * v + (1.0 - self.beta2) * square(gradient)
        step_size = learning_rate / (1.0 - self.beta1 ** t)
        denominator = sqrt(new_v) / sqrt(1.0 - self.beta2 ** t) + self.epsilon
        new_variable = variable - step_size * new_m / denominator
        if self.weight_decay:
            new_variable = new_variable - learning_rate * self.weight_decay * variable
        return [assign(m, new_m), assign(v, new_v), assign(variable, new_variable)]


class RMSProp(Optimizer):
    """RMSProp (torch.optim.RMSprop, not centered): ``s ← ρ·s + (1−ρ)·g²``, ``d = g / (√s + ε)``;
    ``p ← p − lr·d``, or with momentum ``b ← μ·b + d``, ``p ← p − lr·b``."""

    def __init__(self, learning_rate: LearningRate = 0.01, rho: float = 0.99, momentum: float = 0.0,
                 epsilon: float = 1e-8, **options: Any) -> None:
        super().__init__(learning_rate, **options)
        if not 0.0 <= rho < 1.0:
            raise ArgumentError(f"rho must be in [0, 1), got {rho!r}")
        _check_at_least(momentum, 0.0, "momentum")
        _check_at_least(epsilon, 0.0, "epsilon")
        self.rho, self.momentum, self.epsilon = float(rho), float(momentum), float(epsilon)

    def _create_slots(self, variable: Variable) -> None:
        self._slot(variable, "rms")
        if self.momentum:
            self._slot(variable, "momentum")

    def _update(self, gradient: Tensor, variable: Variable, learning_rate: Any) -> list[Tensor]:
        rms = self._slot(variable, "rms")
        new_rms = self.rho * rms + (1.0 - self.rho) * square(gradient)
        direction = gradient / (sqrt(new_rms) + self.epsilon)
        updates = [assign(rms, new_rms)]
        if self.momentum:
            buffer = self._slot(variable, "momentum")
            direction = self.momentum * buffer + direction
            updates.append(assign(buffer, direction))
        return [*updates, assign(variable, variable - learning_rate * direction)]


class Adagrad(Optimizer):
    """Adagrad (torch.optim.Adagrad, no lr decay): ``a ← a + g²``, ``p ← p − lr·g / (√a + ε)``."""

    def __init__(self, learning_rate: LearningRate = 0.01, initial_accumulator_value: float = 0.0,
                 epsilon: float = 1e-10, **options: Any) -> None:
        super().__init__(learning_rate, **options)
        _check_at_least(initial_accumulator_value, 0.0, "initial_accumulator_value")
        _check_at_least(epsilon, 0.0, "epsilon")
        self.initial_accumulator_value, self.epsilon = float(initial_accumulator_value), float(epsilon)

    def _create_slots(self, variable: Variable) -> None:
        self._slot(variable, "accumulator", self.initial_accumulator_value)

    def _update(self, gradient: Tensor, variable: Variable, learning_rate: Any) -> list[Tensor]:
        accumulator = self._slot(variable, "accumulator")
        new_accumulator = accumulator + square(gradient)
        new_variable = variable - learning_rate * gradient / (sqrt(new_accumulator) + self.epsilon)
        return [assign(accumulator, new_accumulator), assign(variable, new_variable)]


def _variables_to_train(loss: Tensor, var_list: Sequence[Variable] | None, optimizer: str) -> list[Variable]:
    if var_list is None:
        variables = [v for v in trainable_variables(loss.graph) if v.dtype in _FLOATS]
    else:
        variables = list(var_list)
        for variable in variables:
            if not isinstance(variable, Variable) or variable.graph is not loss.graph:
                raise GraphError(f"{optimizer}: var_list must hold variables of the loss's graph, got {variable!r}")
            if variable.dtype not in _FLOATS:
                raise DTypeError(f"{optimizer}: cannot train the {variable.dtype} variable '{variable.name}'; "
                                 "only float variables have gradients")
    if not variables:
        raise ArgumentError(f"{optimizer}: no variables to train (the graph of '{loss.name}' has no trainable "
                            "float variable)")
    return variables


def _clip_by_global_norm(pairs: list[tuple[Tensor, Variable]], clip_norm: float) -> list[tuple[Tensor, Variable]]:
    """Scale every gradient by ``clip_norm / max(‖all gradients‖, clip_norm)``: the direction is kept."""
    dtype = "float64" if all(g.dtype == "float64" for g, _ in pairs) else "float32"
    squares = [cast(reduce_sum(square(g)), dtype) for g, _ in pairs]
    total = squares[0]
    for term in squares[1:]:
        total = total + term
    scale = clip_norm / maximum(sqrt(total), clip_norm)
    return [(g * cast(scale, g.dtype), v) for g, v in pairs]


def _like(learning_rate: float | Tensor, variable: Variable) -> float | Tensor:
    """The learning rate in the variable's dtype (a float32 rate updating a float64 variable is cast)."""
    return cast(learning_rate, variable.dtype) if isinstance(learning_rate, Tensor) else learning_rate


def _update_ops_of_batch(loss: Tensor) -> list[Tensor]:
    """The graph's update ops that share a computed (non-source) node with ``loss``: they were computed from
    the same batch (a BatchNorm of this model), unlike those of another model or another input."""
    computed = {node for node in ancestors([loss]) if node.op not in _SOURCES}
    return [op for op in loss.graph.update_ops if any(node in computed for node in ancestors([op]))]


def _check_at_least(value: Any, low: float, what: str, strict: bool = False) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not (
            value > low if strict else value >= low):
        bound = f"> {low}" if strict else f">= {low}"
        raise ArgumentError(f"{what} must be a number {bound}, got {value!r}")
