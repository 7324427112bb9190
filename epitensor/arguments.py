"""Checks of the plain arguments of the public calls (counts, seconds, seeds).

Each returns the value in its canonical type or raises :class:`~epitensor.exceptions.ModelError`
with a sentence naming the argument, before anything changes.
"""

from __future__ import annotations

import math
import numbers

from .exceptions import ModelError


def check_integer(value, name: str, minimum: int) -> int:
    """``value`` as an int, or ModelError unless it is an integer (not a bool) of at least ``minimum``.

    Examples
    --------
    >>> check_integer(3, "epochs", 1)
    3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ModelError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_seconds(value, name: str = "time_limit") -> float | None:
    """``value`` as float seconds (None stays None), or ModelError unless it is a positive finite number.

    Examples
    --------
    >>> check_seconds(90), check_seconds(None)
    (90.0, None)
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= 0:
        raise ModelError(f"{name} must be a positive number of seconds (or None for no limit), got {value!r}")
    return float(value)


def check_seed(seed) -> int | None:
    """``seed`` as an int (None stays None), or ModelError.

    Examples
    --------
    >>> check_seed(7), check_seed(None)
    (7, None)
    """
    return None if seed is None else check_integer(seed, "seed", 0)


__all__ = ["check_integer", "check_seconds", "check_seed"]
