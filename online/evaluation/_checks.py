"""Input validation shared by the estimators: every error is a ValueError naming the field."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def floats(
    name: str, values: npt.ArrayLike, *, ndim: int | tuple[int, ...], shape: tuple[int, ...] | None = None
) -> FloatArray:
    """values as float64 with `ndim` dimensions (one of them, if a tuple), finite, and of
    `shape` when given; non-empty."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{name}: not numeric ({error})") from error
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if array.ndim not in allowed:
        raise ValueError(f"{name}: must have {' or '.join(map(str, allowed))} dimension(s), got shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name}: must have shape {shape}, got {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name}: must not be empty")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: must be finite (found NaN or inf)")
    return array


def integers(name: str, values: npt.ArrayLike, *, ndim: int, shape: tuple[int, ...] | None = None) -> IntArray:
    """values as int64 with `ndim` dimensions and `shape` when given; non-empty."""
    array = np.asarray(values)
    if array.dtype.kind not in "iu":
        raise ValueError(f"{name}: must be integers, got dtype {array.dtype}")
    if array.ndim != ndim:
        raise ValueError(f"{name}: must have {ndim} dimension(s), got shape {array.shape}")
    if shape is not None and array.shape != shape:
        raise ValueError(f"{name}: must have shape {shape}, got {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name}: must not be empty")
    return array.astype(np.int64, copy=False)


def propensities(name: str, values: FloatArray, where: BoolArray | None = None) -> FloatArray:
    """Check values lie in (0, 1] (only where `where` is True, when given)."""
    checked = values if where is None else values[where]
    if checked.size and (checked.min() <= 0.0 or checked.max() > 1.0):
        raise ValueError(
            f"{name}: logging propensities must be in (0, 1], got range [{checked.min()}, {checked.max()}]"
        )
    return values


def probabilities(name: str, values: FloatArray, where: BoolArray | None = None) -> FloatArray:
    """Check values lie in [0, 1] (only where `where` is True, when given)."""
    checked = values if where is None else values[where]
    if checked.size and (checked.min() < 0.0 or checked.max() > 1.0):
        raise ValueError(f"{name}: probabilities must be in [0, 1], got range [{checked.min()}, {checked.max()}]")
    return values


def clip_value(clip: float | None) -> float:
    """The weight cap: +inf for None, else a positive number."""
    if clip is None:
        return float("inf")
    if not clip > 0:
        raise ValueError(f"clip: must be > 0 or None, got {clip!r}")
    return float(clip)
