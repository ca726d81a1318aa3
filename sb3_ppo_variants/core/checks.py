"""Argument checks shared by the algorithms.

Every check raises at construction time, with a message that names the parameter and says what is
allowed, so that a bad value fails in the first second and not as a NaN hours later.
``TypeError`` is raised for a value of the wrong kind, ``ValueError`` for a value out of range.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.utils import LinearSchedule, is_vectorized_observation

from sb3_ppo_variants.core.controls import ADVANTAGE_SCOPES, VALUE_CLIP_FORMS

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
        return _linear_schedule(name, value, positive, owner)
    if _is_real(value):
        return check_float(name, value, low=0.0, low_open=positive, owner=owner)
    if callable(value):
        for progress in (1.0, 0.0):
            _check_schedule_value(name, value, progress, strict=positive and progress == 1.0, prefix=prefix)
        return value
    allowed = "a float, a callable schedule (progress remaining -> float) or a 'lin_<float>' string"
    if allow_none:
        allowed += " or None"
    raise TypeError(f"{prefix}`{name}` must be {allowed}, got {value!r} of type {type(value).__name__}")


def _linear_schedule(name: str, value: str, positive: bool, owner: str) -> LinearSchedule:
    """rl_zoo3's ``"lin_<start>"``: a linear decay from ``start`` to 0."""
    prefix = f"{owner}: " if owner else ""
    if not value.startswith(_LINEAR_PREFIX):
        raise TypeError(f"{prefix}`{name}` must be a float, a callable schedule or a 'lin_<float>' string, got {value!r}")
    try:
        start = float(value[len(_LINEAR_PREFIX) :])
    except ValueError:
        raise TypeError(f"{prefix}`{name}` must be a 'lin_<float>' string such as 'lin_0.001', got {value!r}") from None
    return LinearSchedule(check_float(name, start, low=0.0, low_open=positive, owner=owner), 0.0, 1.0)


def _check_schedule_value(name: str, schedule: Callable[[float], Any], progress: float, strict: bool, prefix: str) -> None:
    """A schedule's value at ``progress``: a finite float, > 0 where ``strict`` (the start of a positive parameter;
    the end value of a decaying schedule may be 0, as with ``lin_`` schedules), else >= 0."""
    try:
        out = schedule(progress)
    except Exception as exc:  # a schedule that cannot be evaluated is a configuration error
        raise TypeError(f"{prefix}`{name}` schedule raised {exc!r} when called with progress {progress}") from exc
    if not _is_real(out) or not math.isfinite(float(out)) or float(out) < 0 or (strict and float(out) == 0):
        raise ValueError(
            f"{prefix}`{name}` schedule must return a finite float {'> 0' if strict else '>= 0'} at progress {progress}, "
            f"got {out!r}"
        )


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
    from sb3_ppo_variants.core.controls import ADAPTIVE_LR_EVERY

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


def check_clip_range(clip_range: Any, *, owner: str = "") -> Any:
    """ClipPPO's ``clip_range``: ``None`` (no clipping), one epsilon (a float > 0, a schedule or ``"lin_<float>"``: the
    symmetric clip, SB3's), or a pair ``(eps_low, eps_high)`` (a tuple or list of two such values: the asymmetric
    clip ``[1 - eps_low, 1 + eps_high]``) with ``eps_high >= eps_low``. A pair is returned as a tuple."""
    prefix = f"{owner}: " if owner else ""
    if not isinstance(clip_range, (tuple, list)):
        return check_schedule("clip_range", clip_range, allow_none=True, owner=owner)
    if len(clip_range) != 2:
        raise ValueError(
            f"{prefix}`clip_range` as a sequence must be the pair (eps_low, eps_high), each a float > 0 or a schedule; "
            f"got {type(clip_range).__name__} of length {len(clip_range)}: {clip_range!r}"
        )
    low, high = (_clip_side(prefix, side, value) for side, value in zip(("eps_low", "eps_high"), clip_range, strict=True))
    for progress in (1.0, 0.0):
        low_value, high_value = (_value_at(side, progress) for side in (low, high))
        if high_value < low_value:
            at = "" if not (callable(low) or callable(high)) else f" at progress {progress}"
            raise ValueError(
                f"{prefix}`clip_range` = (eps_low, eps_high) needs eps_high >= eps_low (clip-higher widens the upper "
                f"side); got eps_low={low_value:g} > eps_high={high_value:g}{at}"
            )
    return (low, high)


def _clip_side(prefix: str, side: str, value: Any) -> Any:
    """One side of a ``clip_range`` pair: a float > 0 or a schedule (an error names ``clip_range`` and the side)."""
    try:
        return check_schedule(side, value)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"{prefix}`clip_range` = (eps_low, eps_high): {exc}") from None


def _value_at(schedule: Any, progress: float) -> float:
    """A checked constant or schedule's value at ``progress``."""
    return float(schedule(progress)) if callable(schedule) else float(schedule)


def check_spo_epsilon(epsilon: Any, *, owner: str = "") -> Any:
    """SPO's ``epsilon``: a float > 0 or a schedule (or ``"lin_<float>"``) that stays > 0, at the end of training too
    (the penalty divides by it, so a linear decay to 0 is refused)."""
    prefix = f"{owner}: " if owner else ""
    epsilon = check_schedule("epsilon", epsilon, owner=owner)
    if callable(epsilon) and not float(epsilon(0.0)) > 0:
        raise ValueError(
            f"{prefix}`epsilon` must stay > 0 over training (SPO's penalty divides by it); the schedule is "
            f"{float(epsilon(0.0)):g} at the end (progress 0): use a schedule that ends above 0, or a float > 0"
        )
    return epsilon


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


def check_argument_types(
    owner: str,
    policy_aliases: dict[str, type[BasePolicy]],
    policy_base: type[BasePolicy],
    policy: Any,
    normalize_advantage: Any,
    use_sde: Any,
    policy_kwargs: Any,
    rollout_buffer_kwargs: Any,
    rollout_buffer_class: Any,
    tensorboard_log: Any,
    device: Any,
) -> None:
    """The constructor's checks of non-numeric arguments: a TypeError/ValueError naming the parameter."""
    _check_policy(owner, policy_aliases, policy_base, policy)
    for name, flag in (("normalize_advantage", normalize_advantage), ("use_sde", use_sde)):
        if not isinstance(flag, (bool, np.bool_)):
            raise TypeError(f"{owner}: `{name}` must be a bool, got {flag!r}")
    for name, mapping in (("policy_kwargs", policy_kwargs), ("rollout_buffer_kwargs", rollout_buffer_kwargs)):
        if mapping is not None and not isinstance(mapping, dict):
            raise TypeError(f"{owner}: `{name}` must be a dict or None, got {type(mapping).__name__}")
    if rollout_buffer_class is not None and not (
        isinstance(rollout_buffer_class, type) and issubclass(rollout_buffer_class, RolloutBuffer)
    ):
        raise TypeError(
            f"{owner}: `rollout_buffer_class` must be a RolloutBuffer subclass or None, got {rollout_buffer_class!r}"
        )
    if tensorboard_log is not None and not isinstance(tensorboard_log, (str, os.PathLike)):
        raise TypeError(f"{owner}: `tensorboard_log` must be a path (str) or None, got {type(tensorboard_log).__name__}")
    _check_device(owner, device)


def _check_policy(owner: str, policy_aliases: dict[str, type[BasePolicy]], policy_base: type[BasePolicy], policy: Any) -> None:
    if (
        isinstance(policy, type)
        and issubclass(policy, RecurrentActorCriticPolicy)
        and not issubclass(policy_base, RecurrentActorCriticPolicy)
    ):
        # an LSTM policy is an ActorCriticPolicy subclass whose calls take and return hidden states
        raise TypeError(
            f"{owner}: `policy` {policy.__name__} is a recurrent (LSTM) policy; {owner} needs a memoryless one. Use "
            "the algorithm's recurrent variant (RecurrentClipPPO, MaskableRecurrentClipPPO, ...: docs/recurrent.md)"
        )
    if isinstance(policy, type) and not issubclass(policy, policy_base):
        article = "an" if policy_base.__name__[0] in "AEIOU" else "a"
        raise TypeError(
            f"{owner}: `policy` must be {article} {policy_base.__name__} subclass or one of {sorted(policy_aliases)}"
        )
    if isinstance(policy, str) and policy not in policy_aliases:
        raise ValueError(f"{owner}: `policy` must be one of {sorted(policy_aliases)} or a class, got {policy!r}")


class DeviceError(ValueError, RuntimeError):
    """A ``device`` torch cannot parse: a ``ValueError`` (a bad argument value) and torch's ``RuntimeError``, so that
    code written for SB3's error (torch's) catches ours."""


class DeviceTypeError(ValueError, TypeError):
    """A ``device`` of a kind torch does not take (``None``, a list): a ``ValueError`` and torch's ``TypeError``."""


def _check_device(owner: str, device: Any) -> None:
    if isinstance(device, th.device) or device == "auto":
        return
    message = f"{owner}: `device` must be 'auto', 'cpu', 'cuda', 'cuda:N', ... or a torch.device; got {device!r}"
    try:
        th.device(device)
    except RuntimeError as exc:
        raise DeviceError(message) from exc
    except TypeError as exc:
        raise DeviceTypeError(message) from exc


def initial_adaptive_lr(owner: str, learning_rate: Any, adaptive_lr: dict[str, Any]) -> float | None:
    """The first rate of the KL-adaptive learning rate (None when it is off); the rule replaces a schedule."""
    if adaptive_lr["target_kl"] is None:
        return None
    initial = float(learning_rate(1.0)) if callable(learning_rate) else float(learning_rate)
    if callable(learning_rate):
        warnings.warn(
            f"{owner}: `adaptive_lr_target_kl` replaces the `learning_rate` schedule: its value at the start, {initial}, "
            "is the initial rate, then the KL rule alone sets the rate",
            stacklevel=4,
        )
    if not adaptive_lr["lr_min"] <= initial <= adaptive_lr["lr_max"]:
        raise ValueError(
            f"{owner}: with the adaptive learning rate, `learning_rate` ({initial}) must lie within "
            f"[`adaptive_lr_min`, `adaptive_lr_max`] = [{adaptive_lr['lr_min']}, {adaptive_lr['lr_max']}]"
        )
    return initial


#: ``numerics`` values: our arithmetic (fused Adam, the NumPy paths; float rounding differs from SB3's) or SB3's
NUMERICS = ("fast", "sb3")


def check_loop_arguments(owner: str, **arguments: Any) -> dict[str, Any]:
    """The checks of the shared loop's numeric and choice arguments, in one place; returns the checked values
    (schedules as given or parsed from ``"lin_<x>"``, numbers as ``int``/``float``)."""
    a = arguments
    checked: dict[str, Any] = {
        "learning_rate": check_schedule("learning_rate", a["learning_rate"], owner=owner),
        "n_steps": check_int("n_steps", a["n_steps"], minimum=1, owner=owner),
        "batch_size": _optional(check_int, "batch_size", a["batch_size"], minimum=1, owner=owner),
        "n_epochs": check_int("n_epochs", a["n_epochs"], minimum=1, owner=owner),
        "gamma": check_float("gamma", a["gamma"], low=0.0, high=1.0, owner=owner),
        "gae_lambda": check_float("gae_lambda", a["gae_lambda"], low=0.0, high=1.0, owner=owner),
        "clip_range_vf": check_schedule("clip_range_vf", a["clip_range_vf"], allow_none=True, owner=owner),
        "ent_coef": check_float("ent_coef", a["ent_coef"], low=0.0, owner=owner),
        "vf_coef": check_float("vf_coef", a["vf_coef"], low=0.0, owner=owner),
        "max_grad_norm": check_float("max_grad_norm", a["max_grad_norm"], low=0.0, low_open=True, owner=owner),
        "sde_sample_freq": check_int("sde_sample_freq", a["sde_sample_freq"], minimum=-1, owner=owner),
        "target_kl": _optional(check_float, "target_kl", a["target_kl"], low=0.0, low_open=True, owner=owner),
        "stats_window_size": check_int("stats_window_size", a["stats_window_size"], minimum=1, owner=owner),
        "verbose": check_int("verbose", a["verbose"], minimum=0, owner=owner),
        "seed": _optional(check_int, "seed", a["seed"], minimum=0, owner=owner),
        "normalize_advantage_scope": check_choice(
            "normalize_advantage_scope", a["normalize_advantage_scope"], ADVANTAGE_SCOPES, owner=owner
        ),
        "value_clip_form": check_choice("value_clip_form", a["value_clip_form"], VALUE_CLIP_FORMS, owner=owner),
        "recompute_advantage": check_bool("recompute_advantage", a["recompute_advantage"], owner=owner),
        "numerics": check_choice("numerics", a["numerics"], NUMERICS, owner=owner),
    }
    return checked


def _optional(check: Callable[..., Any], name: str, value: Any, **kwargs: Any) -> Any:
    return None if value is None else check(name, value, **kwargs)


def check_env_fit(
    owner: str,
    env: Any,
    action_space: Any,
    supported_action_spaces: tuple[type, ...],
    n_steps: int,
    batch_size: int | None,
    normalize_advantage: bool,
) -> None:
    """The checks that need the environment: its action space, and the batch sizes SB3's PPO asserts or warns about
    (the wording is SB3's)."""
    if not isinstance(action_space, supported_action_spaces):
        names = ", ".join(space.__name__ for space in supported_action_spaces)
        raise ValueError(f"{owner}: the action space of `env` must be one of {names}; got {action_space}")
    buffer_size = env.num_envs * n_steps
    if normalize_advantage and batch_size is not None and batch_size < 2:
        raise ValueError(
            f"{owner}: `batch_size` must be greater than 1 with `normalize_advantage=True`, got {batch_size}. "
            "See https://github.com/DLR-RM/stable-baselines3/issues/440"
        )
    if normalize_advantage and buffer_size < 2:
        raise ValueError(
            f"{owner}: `n_steps * n_envs` must be greater than 1 with `normalize_advantage=True`. "
            f"Currently n_steps={n_steps} and n_envs={env.num_envs}"
        )
    if batch_size is not None and buffer_size % batch_size > 0:
        # SB3's warning: the last minibatch of each epoch is smaller (with batch_size > n_steps * n_envs, the only
        # one: each epoch is one step on the whole rollout), as rl_zoo3's configs rely on
        warnings.warn(
            f"You have specified a mini-batch size of {batch_size},"
            f" but because the `RolloutBuffer` is of size `n_steps * n_envs = {buffer_size}`,"
            f" after every {buffer_size // batch_size} untruncated mini-batches,"
            f" there will be a truncated mini-batch of size {buffer_size % batch_size}\n"
            f"We recommend using a `batch_size` that is a factor of `n_steps * n_envs`.\n"
            f"Info: (n_steps={n_steps} and n_envs={env.num_envs})",
            stacklevel=4,
        )


def n_observations(observation: Any, observation_space: spaces.Space) -> int | None:
    """The number of observations in ``observation`` (1 if not vectorized); None when it cannot be told here."""
    try:
        if isinstance(observation_space, spaces.Dict) and isinstance(observation, dict):
            key = next(iter(observation_space.spaces))
            vectorized = is_vectorized_observation(np.asarray(observation[key]), observation_space.spaces[key])
            return len(observation[key]) if vectorized else 1
        array = np.asarray(observation)
        return len(array) if is_vectorized_observation(array, observation_space) else 1
    except (ValueError, TypeError, KeyError, StopIteration):
        return None  # the policy's own checks report a malformed observation
