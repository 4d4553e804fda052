"""The training loop: ``history = gc.train.fit(sess, train, (x, y), (x_train, y_train), epochs=5, loss=loss,
metrics={"acc": acc}, validation_data=(x_val, y_val))``, and ``gc.train.evaluate`` for a data set.

Each training step is one ``sess.run`` of the train op (with the loss and metrics fetched in the same run, so
they describe the weights before the step); placeholders with a None batch dimension let one compiled
executable serve every batch, the short last one included.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from graphc.data import batches
from graphc.errors import ArgumentError
from graphc.graph.node import Node, Tensor
from graphc.ops.state import global_variables
from graphc.runtime.session import Session

__all__ = ["EarlyStopping", "History", "evaluate", "fit"]


@dataclass
class EarlyStopping:
    """Stop ``fit`` when ``monitor`` (a key of the epoch records, e.g. "val_loss" or "val_acc") has not
    improved by more than ``min_delta`` for ``patience`` epochs; ``restore_best`` then puts back every
    variable's value (weights, optimizer slots, step counter) from the best epoch."""

    monitor: str = "val_loss"
    mode: str = "min"
    patience: int = 3
    min_delta: float = 0.0
    restore_best: bool = True

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ArgumentError(f"EarlyStopping: mode must be 'min' or 'max', got {self.mode!r}")
        if self.patience < 0:
            raise ArgumentError(f"EarlyStopping: patience must be >= 0, got {self.patience!r}")

    def improves(self, value: float, best: float | None) -> bool:
        """Whether ``value`` beats ``best`` (None: nothing yet) by more than ``min_delta``."""
        if best is None:
            return True
        return value < best - self.min_delta if self.mode == "min" else value > best + self.min_delta


@dataclass
class History:
    """What ``fit`` saw: ``epochs`` (one dict per epoch: "epoch", "loss", the metrics, "val_"-prefixed
    validation values, "examples_per_s"), ``best`` (the record of the best epoch by ``monitor``; None
    without a monitored value) and ``stopped_early``."""

    monitor: str | None = None
    mode: str = "min"
    epochs: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False

    @property
    def best(self) -> dict[str, float] | None:
        """The record of the epoch with the best monitored value."""
        scored = [e for e in self.epochs if self.monitor in e]
        if not scored:
            return None
        choose = min if self.mode == "min" else max
        return choose(scored, key=lambda epoch: epoch[self.monitor])

    def __getitem__(self, key: str) -> list[float]:
        """One value per epoch: ``history["val_acc"]``."""
        return [epoch[key] for epoch in self.epochs if key in epoch]


def fit(sess: Session, train_op: Tensor | Node, inputs: Any, data: Any, *, epochs: int = 1, batch_size: int = 32,
        loss: Tensor | None = None, metrics: Mapping[str, Tensor] | None = None, validation_data: Any = None,
        feed_dict: Mapping[Any, Any] | None = None, training: Tensor | None = None,
        early_stopping: EarlyStopping | None = None, seed: int | None = 0, verbose: bool = True) -> History:
    """Train ``train_op`` for ``epochs`` passes over ``data`` (arrays matching the placeholders ``inputs``).

    ``loss`` and ``metrics`` (name -> scalar tensor) are averaged over each epoch's training batches and,
    with ``validation_data``, evaluated on it ("val_" names). ``training``: a bool placeholder fed True in
    training steps and False in evaluation. ``feed_dict``: extra feeds for every run. ``seed`` fixes the
    shuffling. ``verbose``: a progress bar per epoch (running loss, examples/s) and a summary line.
    """
    placeholders, columns = _pair(inputs, data)
    fetches = {**({"loss": loss} if loss is not None else {}), **dict(metrics or {})}
    monitor = early_stopping.monitor if early_stopping else ("val_loss" if validation_data is not None else "loss")
    history = History(monitor, early_stopping.mode if early_stopping else "min")
    rng = np.random.default_rng(seed)  # one generator: a new order each epoch, the same orders each fit
    best, best_values, waited = None, None, 0
    for epoch in range(1, epochs + 1):
        record = {"epoch": epoch, **_train_epoch(sess, train_op, fetches, placeholders, columns, batch_size,
                                                  _feeds(feed_dict, training, True), rng, verbose,
                                                  f"epoch {epoch}/{epochs}")}
        if validation_data is not None:
            scores = evaluate(sess, fetches, inputs, validation_data, batch_size=max(batch_size, 256),
                              feed_dict=feed_dict, training=training)
            record.update({f"val_{name}": value for name, value in scores.items()})
        history.epochs.append(record)
        if verbose:
            print(_summary(record))
        if early_stopping is None:
            continue
        if early_stopping.monitor not in record:
            raise ArgumentError(f"EarlyStopping monitors {early_stopping.monitor!r}, but the epochs record only "
                                f"{sorted(record)}")
        if early_stopping.improves(record[early_stopping.monitor], best):
            best, waited = record[early_stopping.monitor], 0
            if early_stopping.restore_best:
                best_values = _snapshot(sess)
        else:
            waited += 1
            if waited >= early_stopping.patience:
                history.stopped_early = True
                break
    if best_values is not None:
        sess.load_variables(best_values)
    return history


def evaluate(sess: Session, fetches: Mapping[str, Tensor], inputs: Any, data: Any, batch_size: int = 256,
             feed_dict: Mapping[Any, Any] | None = None, training: Tensor | None = None) -> dict[str, float]:
    """The means of the scalar ``fetches`` (name -> tensor) over ``data``, weighting each batch by its size
    (so a short last batch counts for what it holds); variables are not changed."""
    placeholders, columns = _pair(inputs, data)
    extra = _feeds(feed_dict, training, False)
    totals, seen = dict.fromkeys(fetches, 0.0), 0
    for batch in batches(columns, batch_size, shuffle=False):
        values = sess.run(dict(fetches), {**extra, **dict(zip(placeholders, batch))})
        size = len(batch[0])
        for name, value in values.items():
            totals[name] += float(value) * size
        seen += size
    return {name: total / seen for name, total in totals.items()} if seen else dict.fromkeys(fetches, math.nan)


def _train_epoch(sess: Session, train_op: Tensor | Node, fetches: dict[str, Tensor], placeholders: list[Tensor],
                 columns: list[np.ndarray], batch_size: int, extra: dict, rng: np.random.Generator,
                 verbose: bool, description: str) -> dict[str, float]:
    """One pass over the training data: the example-weighted means of ``fetches`` and the examples/s."""
    totals, seen = dict.fromkeys(fetches, 0.0), 0
    started = time.perf_counter()
    with tqdm(total=len(columns[0]), desc=description, unit="ex", disable=not verbose, leave=False) as bar:
        for batch in batches(columns, batch_size, shuffle=True, seed=rng):
            values, _ = sess.run((fetches, train_op), {**extra, **dict(zip(placeholders, batch))})
            size = len(batch[0])
            for name, value in values.items():
                totals[name] += float(value) * size
            seen += size
            rate = seen / max(time.perf_counter() - started, 1e-9)
            postfix = {"loss": f"{totals['loss'] / seen:.4g}"} if "loss" in totals else {}
            bar.set_postfix({**postfix, "examples/s": f"{rate:.0f}"}, refresh=False)  # drawn by update, at most
            bar.update(size)  # every mininterval (0.1 s): not once per batch into a log file
        bar.refresh()  # the epoch's final loss and throughput, however short the epoch
    means = {name: total / seen for name, total in totals.items()} if seen else {}
    return {**means, "examples_per_s": seen / max(time.perf_counter() - started, 1e-9)}


def _pair(inputs: Any, data: Any) -> tuple[list[Tensor], list[np.ndarray]]:
    """Placeholders and data arrays as matching lists (a single placeholder takes a single array)."""
    placeholders, columns = _as_list(inputs), _as_list(data)
    if len(placeholders) != len(columns) or not placeholders:
        raise ArgumentError(f"{len(placeholders)} input placeholder(s) but {len(columns)} data array(s); give one "
                            "array per placeholder")
    return placeholders, [np.asarray(c) for c in columns]


def _feeds(feed_dict: Mapping[Any, Any] | None, training: Tensor | None, value: bool) -> dict:
    extra = dict(feed_dict or {})
    if training is not None:
        extra[training] = np.asarray(value)
    return extra


def _snapshot(sess: Session) -> dict[Tensor, np.ndarray]:
    """A copy of every variable's current value (what early stopping puts back)."""
    variables = global_variables(sess.graph)
    return dict(zip(variables, sess.run(variables)))


def _summary(record: dict[str, float]) -> str:
    shown = ", ".join(f"{name} {value:.4g}" for name, value in record.items() if name != "epoch")
    return f"epoch {record['epoch']}: {shown}"


def _as_list(value: Sequence[Any] | Any) -> list[Any]:
    return list(value) if isinstance(value, (tuple, list)) else [value]
