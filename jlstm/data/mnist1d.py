"""MNIST-1D (Greydanus & Kobak, ICML 2024), generated locally, never downloaded.

Needs the optional ``mnist1d`` package (Apache-2.0; ``pip install mnist1d``, which
also pulls in requests and matplotlib because ``mnist1d`` imports them).
"""

from __future__ import annotations

import random

import numpy as np

from jlstm.data.batching import SequenceDataset


def load_mnist1d(*, seed: int = 42) -> tuple[SequenceDataset, SequenceDataset]:
    """Builds MNIST-1D from its templates with ``make_dataset`` (about 1-4 s).

    ``seed=42`` is the package default and gives the published dataset (4000
    train, 1000 test, 10 classes). ``mnist1d`` seeds NumPy's and Python's global
    random generators; their states are restored afterwards.

    Shapes:
      -> (train, test): inputs N arrays (40, 1) float32; targets (N,) int32 in 0..9
    """
    try:
        from mnist1d.data import get_dataset_args, make_dataset
    except ImportError as e:
        raise ImportError(
            f"load_mnist1d needs the mnist1d package: pip install mnist1d (import failed: {e})"
        ) from e
    args = get_dataset_args()
    args.seed = seed
    np_state, py_state = np.random.get_state(), random.getstate()  # noqa: NPY002
    try:
        data = make_dataset(args)  # never get_dataset(): it tries a download first
    finally:
        np.random.set_state(np_state)  # noqa: NPY002
        random.setstate(py_state)

    def split(x, y, name):
        x = np.asarray(x, np.float32)[:, :, None]  # (N, 40, 1)
        return SequenceDataset(list(x), np.asarray(y, np.int32), num_classes=10, name=name)

    return (
        split(data["x"], data["y"], "mnist1d/train"),
        split(data["x_test"], data["y_test"], "mnist1d/test"),
    )
