"""Argument checks shared by the data loaders (private)."""

from __future__ import annotations

import operator


def check_int(name: str, value, *, minimum: int | None = None) -> int:
    """Returns ``value`` as an ``int``, or raises ValueError naming ``name``."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be an integer; got bool {value!r}")
    try:
        value = operator.index(value)
    except TypeError:
        raise ValueError(
            f"{name} must be an integer; got {type(value).__name__} {value!r}"
        ) from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}; got {value}")
    return value
