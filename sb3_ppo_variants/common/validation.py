"""Argument checks shared by the algorithms.

Every check raises at construction time, with a message that names the parameter and says what is
allowed, so that a bad value fails in the first second and not as a NaN hours later.
``TypeError`` is raised for a value of the wrong kind, ``ValueError`` for a value out of range.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable, Iterable
from typing import Any

from stable_baselines3.common.utils import LinearSchedule

_LINEAR_PREFIX = "lin_"


def _is_real(value: Any) -> bool:
    """True for int/float (and numpy scalars), False for bool, which Python counts as an int."""
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return not isinstance(value, (str, bytes))


def check_int(name: str, value: Any, *, minimum: int | None = None, owner: str = "") -> int:
    """Check that ``value`` is an integer, at least ``minimum`` when given."""
    prefix = f"{owner}: " if owner else ""
    if isinstance(value, bool) or not isinstance(value, int):
        # numpy integers are fine, floats with an integral value are not silently truncated
        if not (hasattr(value, "__index__") and not isinstance(value, bool)):
            raise TypeError(f"{prefix}`{name}` must be an int, got {value!r} of type {type(value).__name__}")
        value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{prefix}`{name}` must be an int >= {minimum}, got {value}")
    return int(value)


def check_float(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    owner: str = "",
) -> float:
    """Check that ``value`` is a finite real number inside the given interval."""
    prefix = f"{owner}: " if owner else ""
    if not _is_real(value):
        raise TypeError(f"{prefix}`{name}` must be a float, got {value!r} of type {type(value).__name__}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError(f"{prefix}`{name}` must be a finite float, got {result}")
    if low is not None and (result < low or (low_open and result == low)):
        raise ValueError(f"{prefix}`{name}` must be {'>' if low_open else '>='} {low}{_upper(high, high_open)}, got {result}")
    if high is not None and (result > high or (high_open and result == high)):
        raise ValueError(f"{prefix}`{name}` must be {'<' if high_open else '<='} {high}{_lower(low, low_open)}, got {result}")
    return result


def _upper(high: float | None, high_open: bool) -> str:
    return "" if high is None else f" and {'<' if high_open else '<='} {high}"


def _lower(low: float | None, low_open: bool) -> str:
    return "" if low is None else f" and {'>' if low_open else '>='} {low}"


def check_choice(name: str, value: Any, choices: Iterable[str], *, owner: str = "") -> str:
    """Check that ``value`` is one of the allowed strings."""
    prefix = f"{owner}: " if owner else ""
    allowed = tuple(choices)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{prefix}`{name}` must be one of {', '.join(repr(c) for c in allowed)}; got {value!r}")
    return value


def check_schedule(
    name: str,
    value: Any,
    *,
    positive: bool = True,
    allow_none: bool = False,
    owner: str = "",
) -> float | Callable[[float], float] | None:
    """Check a hyperparameter that may be a constant or a schedule.

    Allowed: a finite float (strictly positive when ``positive``), a callable mapping the progress
    remaining (from 1 at the start of training to 0 at the end) to a float, or a string
    ``"lin_<start>"`` (rl_zoo3's notation, decaying linearly from ``start`` to 0), which is turned
    into a :class:`~stable_baselines3.common.utils.LinearSchedule`. The zoo parses ``lin_`` only for
    ``learning_rate``, ``clip_range`` and ``clip_range_vf``; accepting it here makes it work for our
    own schedule parameters too (such as the KL target).

    A callable is evaluated at progress 1 and 0 so that a schedule that leaves the allowed range
    fails now rather than mid-training.
    """
    prefix = f"{owner}: " if owner else ""
    if value is None:
        if allow_none:
            return None
        raise TypeError(f"{prefix}`{name}` must be a float or a schedule (a callable of the progress remaining), got None")
    if isinstance(value, str):
        if not value.startswith(_LINEAR_PREFIX):
            raise TypeError(f"{prefix}`{name}` must be a float, a callable schedule or a 'lin_<float>' string, got {value!r}")
        try:
            start = float(value[len(_LINEAR_PREFIX) :])
        except ValueError:
            raise TypeError(f"{prefix}`{name}` must be a 'lin_<float>' string such as 'lin_0.001', got {value!r}") from None
        start = check_float(name, start, low=0.0, low_open=positive, owner=owner)
        return LinearSchedule(start, 0.0, 1.0)
    if _is_real(value):
        return check_float(name, value, low=0.0, low_open=positive, owner=owner)
    if callable(value):
        for progress in (1.0, 0.0):
            try:
                out = value(progress)
            except Exception as exc:  # a schedule that cannot be evaluated is a configuration error
                raise TypeError(f"{prefix}`{name}` schedule raised {exc!r} when called with progress {progress}") from exc
            # the end value of a decaying schedule may be 0 (e.g. lin_ schedules), only the start must be > 0
            strict = positive and progress == 1.0
            if not _is_real(out) or not math.isfinite(float(out)) or float(out) < 0 or (strict and float(out) == 0):
                raise ValueError(
                    f"{prefix}`{name}` schedule must return a finite float {'> 0' if strict else '>= 0'} "
                    f"at progress {progress}, got {out!r}"
                )
        return value
    allowed = "a float, a callable schedule (progress remaining -> float) or a 'lin_<float>' string"
    if allow_none:
        allowed += " or None"
    raise TypeError(f"{prefix}`{name}` must be {allowed}, got {value!r} of type {type(value).__name__}")


def int_argument(minimum: int, expected: str | None = None) -> Callable[[str], int]:
    """``argparse`` type of an int ``>= minimum``; both errors read ``expected <expected>, got '<text>'``.

    :param minimum: The smallest accepted value
    :param expected: What the error says is expected (default ``an int >= <minimum>``)
    """
    wanted = expected if expected is not None else f"an int >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


def timesteps_argument(text: str) -> int:
    """``argparse`` type of a step budget, which may be written as a float (``1e6``): a whole number >= 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of steps, got {text!r}") from None
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number of steps >= 1, got {text!r}")
    return int(value)


def check_bool(name: str, value: Any, *, owner: str = "") -> bool:
    """Check that ``value`` is a bool (numpy's included); an int such as 1 is refused."""
    prefix = f"{owner}: " if owner else ""
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise TypeError(f"{prefix}`{name}` must be a bool, got {value!r}")
    return bool(value)


def check_adaptive_lr(
    *,
    target_kl: Any,
    every: Any,
    kl_margin: Any,
    factor: Any,
    lr_min: Any,
    lr_max: Any,
    owner: str = "",
) -> dict[str, Any]:
    """Check the parameters of the KL-adaptive learning rate (``adaptive_lr_*``); return them normalised.

    ``target_kl`` is ``None`` (off) or > 0; ``kl_margin`` and ``factor`` are > 1 (otherwise the rule cannot tell a
    too-large KL from a too-small one, or does not move the rate); ``0 < lr_min < lr_max``.
    """
    from sb3_ppo_variants.common.controls import ADAPTIVE_LR_EVERY

    prefix = f"{owner}: " if owner else ""
    if target_kl is not None:
        target_kl = check_float("adaptive_lr_target_kl", target_kl, low=0.0, low_open=True, owner=owner)
    every = check_choice("adaptive_lr_every", every, ADAPTIVE_LR_EVERY, owner=owner)
    kl_margin = check_float("adaptive_lr_kl_margin", kl_margin, low=1.0, low_open=True, owner=owner)
    factor = check_float("adaptive_lr_factor", factor, low=1.0, low_open=True, owner=owner)
    lr_min = check_float("adaptive_lr_min", lr_min, low=0.0, low_open=True, owner=owner)
    lr_max = check_float("adaptive_lr_max", lr_max, low=0.0, low_open=True, owner=owner)
    if lr_min >= lr_max:
        raise ValueError(
            f"{prefix}the learning-rate bounds are inverted: `adaptive_lr_min` ({lr_min}) must be < `adaptive_lr_max` "
            f"({lr_max})"
        )
    return {
        "target_kl": target_kl,
        "every": every,
        "kl_margin": kl_margin,
        "factor": factor,
        "lr_min": lr_min,
        "lr_max": lr_max,
    }


def check_dual_clip(dual_clip: Any, clip_range: Any, *, owner: str = "") -> float | None:
    """``dual_clip`` is ``None`` (off) or a float c > 1 (Ye et al. 2020), and needs a ``clip_range``."""
    prefix = f"{owner}: " if owner else ""
    if dual_clip is None:
        return None
    dual_clip = check_float("dual_clip", dual_clip, low=1.0, low_open=True, owner=owner)
    if clip_range is None:
        raise ValueError(
            f"{prefix}`dual_clip` applies on top of the clipped surrogate and needs a `clip_range`; got clip_range=None"
        )
    return dual_clip
