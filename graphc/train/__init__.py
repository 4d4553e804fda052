"""``gc.train``: optimizers, learning-rate schedules, checkpoints and the training loop."""

from graphc.train.loop import EarlyStopping, History, evaluate, fit
from graphc.train.optimizers import SGD, Adagrad, Adam, Momentum, Optimizer, RMSProp
from graphc.train.saver import CheckpointError, Saver
from graphc.train.schedules import cosine_decay, exponential_decay, piecewise_constant

__all__ = [
    "SGD", "Adagrad", "Adam", "CheckpointError", "EarlyStopping", "History", "Momentum", "Optimizer", "RMSProp",
    "Saver", "cosine_decay", "evaluate", "exponential_decay", "fit", "piecewise_constant",
]
