"""Univariate forecasting: the yearly sunspot series, windows, splits, scaling.

Typical use: split the series in time order, fit the :class:`Standardizer` on the
train part only, then cut each part into windows separately, so that no test value
appears in a training input.

>>> train, val, test = chronological_split(np.arange(10.0), (0.6, 0.2, 0.2))
>>> xs, ys = make_windows(train, window=3)
>>> xs.shape, ys[:, 0].tolist()
((3, 3, 1), [3.0, 4.0, 5.0])
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from jlstm.data._validate import check_int


def load_sunspots() -> np.ndarray:
    """Yearly mean sunspot numbers 1700-2008 from ``statsmodels.datasets`` (public domain).

    Needs the optional ``statsmodels`` package (``pip install statsmodels``).

    Shapes:
      -> series: (309,) float64
    """
    try:
        from statsmodels.datasets import sunspots
    except ImportError as e:
        raise ImportError(
            f"load_sunspots needs statsmodels: pip install statsmodels (import failed: {e})"
        ) from e
    return sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(np.float64)


def _check_series(series) -> np.ndarray:
    series = np.asarray(series)
    if series.ndim != 1 or not np.issubdtype(series.dtype, np.number):
        raise ValueError(
            f"series must be a 1-D numeric array; got dtype {series.dtype}, shape {series.shape}"
        )
    return series


def make_windows(series, window: int, horizon: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Sliding windows: the input ``series[i : i + window]``, the target
    ``series[i + window + horizon - 1]`` (``horizon`` steps after the window's end).

    Shapes:
      series: (T,) -> inputs: (N, window, 1) float32; targets: (N, 1) float32,
      N = T - window - horizon + 1
    """
    series = _check_series(series)
    window = check_int("window", window, minimum=1)
    horizon = check_int("horizon", horizon, minimum=1)
    n = len(series) - window - horizon + 1
    if n < 1:
        raise ValueError(
            f"series must be longer than window + horizon - 1 = {window + horizon - 1}; "
            f"got length {len(series)}"
        )
    starts = np.arange(n)[:, None]
    inputs = series[starts + np.arange(window)][:, :, None]
    targets = series[starts + window + horizon - 1]
    return inputs.astype(np.float32), targets.astype(np.float32)


def chronological_split(series, fractions=(0.7, 0.15, 0.15)) -> tuple[np.ndarray, ...]:
    """Cuts the series in time order into consecutive parts.

    Each part but the last gets ``floor(fraction * T)`` values; the last gets
    the rest. E.g. 309 values -> 216, 46, 47.

    Shapes:
      series: (T,) -> one (T_k,) array per fraction
    """
    series = _check_series(series)
    fractions = tuple(float(f) for f in fractions)
    if not fractions or min(fractions) <= 0 or not math.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be positive and sum to 1; got {fractions}")
    cuts = np.cumsum([math.floor(f * len(series)) for f in fractions[:-1]])
    parts = tuple(np.split(series, cuts))
    if min(len(p) for p in parts) == 0:
        raise ValueError(
            f"series is too short ({len(series)} values) for fractions {fractions}: "
            f"a part would be empty"
        )
    return parts


@dataclasses.dataclass(frozen=True)
class Standardizer:
    """``(x - mean) / std`` with statistics from the training data only.

    >>> s = Standardizer.fit(np.array([1.0, 2.0, 3.0]))
    >>> float(s.transform(np.array([3.0]))[0])
    1.224744871391589
    """

    mean: float
    std: float

    @classmethod
    def fit(cls, train) -> Standardizer:
        """Mean and (population) standard deviation of ``train``."""
        train = np.asarray(train, np.float64)
        std = float(train.std()) if train.size else 0.0
        if not std > 0:
            raise ValueError(
                f"train must have at least two distinct finite values; got {train.size} values "
                f"with std {std}"
            )
        return cls(float(train.mean()), std)

    def transform(self, x) -> np.ndarray:
        return (np.asarray(x) - self.mean) / self.std

    def inverse_transform(self, z) -> np.ndarray:
        return np.asarray(z) * self.std + self.mean


def persistence_baseline(inputs, targets) -> float:
    """RMSE of predicting each window's last value (the "no change" forecast).

    Compute it on the same windows, in the same units, as the model's RMSE.

    Shapes:
      inputs: (N, window, 1); targets: (N, 1) -> a float
    """
    inputs, targets = np.asarray(inputs, np.float64), np.asarray(targets, np.float64)
    if inputs.ndim != 3 or inputs.shape[2] != 1 or targets.shape != (inputs.shape[0], 1):
        raise ValueError(
            f"inputs must be (N, window, 1) and targets (N, 1) with the same N; "
            f"got {inputs.shape} and {targets.shape}"
        )
    return float(np.sqrt(np.mean((inputs[:, -1, :] - targets) ** 2)))
