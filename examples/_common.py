"""What the training examples share: the ``--smoke`` switch and the 8×8 digits, split once for all of them.

Not an example itself (the leading underscore keeps tests/examples from running it as one).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass

import numpy as np


def example_parser(description: str) -> argparse.ArgumentParser:
    """The command line every example accepts: ``--smoke`` (also GRAPHC_EXAMPLE_SMOKE=1) runs a handful of
    steps only, so tests can check that the script works end to end without waiting for it to converge."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", default=os.environ.get("GRAPHC_EXAMPLE_SMOKE") == "1",
                        help="run a few steps only (the printed metric does not meet the target)")
    return parser


def parse_args(description: str) -> argparse.Namespace:
    """The parsed command line of an example that takes only ``example_parser``'s options."""
    return example_parser(description).parse_args()


@dataclass(frozen=True)
class Digits:
    """scikit-learn's 8×8 handwritten digits (1797 images, 10 classes), pixels scaled to [0, 1].

    A stratified 80/20 train/test split with a fixed seed; a stratified ``validation`` share of the training
    part is held out for early stopping, so the test images are used only for the final number.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray

    def head(self, rows: int) -> Digits:
        """The first ``rows`` images of each part (for ``--smoke`` runs)."""
        return Digits(*(part[:rows] for part in (self.x_train, self.y_train, self.x_val, self.y_val,
                                                 self.x_test, self.y_test)))

    def images(self) -> Digits:
        """The same split with each row as an (8, 8, 1) NHWC image, for convolutions."""
        nhwc = (-1, 8, 8, 1)
        return Digits(self.x_train.reshape(nhwc), self.y_train, self.x_val.reshape(nhwc), self.y_val,
                      self.x_test.reshape(nhwc), self.y_test)


def load_digits(seed: int = 0, validation: float = 0.1) -> Digits:
    """The digits as float32 rows of 64 pixels in [0, 1] and int64 labels, split as ``Digits`` says."""
    # imported here, not at the top: only the digits examples need scikit-learn (and its import time)
    from sklearn.datasets import load_digits as sklearn_digits
    from sklearn.model_selection import train_test_split

    data = sklearn_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.2, stratify=y, random_state=seed)
    x_train, x_val, y_train, y_val = train_test_split(x_train, y_train, test_size=validation, stratify=y_train,
                                                      random_state=seed)
    return Digits(x_train, y_train, x_val, y_val, x_test, y_test)
