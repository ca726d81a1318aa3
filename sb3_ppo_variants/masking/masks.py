"""Checks of action masks and of masking environments, with errors that say what was expected.

sb3-contrib's convention, which we keep: a mask is a flat boolean vector per state with one entry per choice of each
action dimension (``n`` for ``Discrete(n)``, ``sum(nvec)`` for ``MultiDiscrete``, ``2 * n`` for ``MultiBinary(n)``:
one entry for 0 and one for 1), True where the choice is legal. The environment exposes it with an
``action_masks()`` method (directly or through sb3-contrib's ``ActionMasker`` wrapper).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from sb3_contrib.common.maskable.utils import is_masking_supported
from stable_baselines3.common.type_aliases import GymEnv

MASKABLE_ACTION_SPACES: tuple[type[spaces.Space], ...] = (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)


class ActionMaskError(ValueError, RuntimeError):
    """Masks of the wrong shape, or with no legal action: a ``ValueError``, and a ``RuntimeError`` as what
    sb3-contrib's ``MaskablePPO`` raises for masks it cannot reshape, so that code written for it catches ours."""


class ActionMaskTypeError(TypeError, RuntimeError):
    """Masks that are not booleans (or 0/1 numbers): a ``TypeError``, and a ``RuntimeError`` as sb3-contrib's."""


def mask_groups(action_space: spaces.Space) -> list[int]:
    """Sizes of the independent categorical choices whose legal entries a mask lists, in order.

    ``[n]`` for ``Discrete(n)``, ``list(nvec)`` for ``MultiDiscrete``, ``[2] * n`` for ``MultiBinary(n)``.
    """
    if isinstance(action_space, spaces.Discrete):
        return [int(action_space.n)]
    if isinstance(action_space, spaces.MultiDiscrete):
        return [int(n) for n in np.asarray(action_space.nvec).flatten()]
    if isinstance(action_space, spaces.MultiBinary):
        if not isinstance(action_space.n, (int, np.integer)):
            raise ValueError(
                f"Action masking supports a flat MultiBinary(n) action space, got {action_space}: flatten it first"
            )
        return [2] * int(action_space.n)
    names = ", ".join(space.__name__ for space in MASKABLE_ACTION_SPACES)
    raise ValueError(f"Action masking needs a {names} action space, got {action_space}")


def mask_dim(action_space: spaces.Space) -> int:
    """Entries per state of a mask for ``action_space`` (see the module docstring)."""
    return sum(mask_groups(action_space))


def check_action_masks(
    masks: Any, action_space: spaces.Space, n_states: int | None = None, *, name: str = "action_masks", owner: str = ""
) -> np.ndarray:
    """``masks`` as a boolean array of shape ``(n_states, mask_dim)``, or a clear error.

    :param masks: the masks: booleans, or numbers that are all 0 or 1, of shape ``(n_states, mask_dim)`` or with the
        same number of entries (``(mask_dim,)`` for one state)
    :param action_space: the action space the masks constrain
    :param n_states: the number of states (environments, observations) the masks are for; ``None``: any whole number
    :raises ActionMaskTypeError: (a TypeError) for masks that are not booleans (or 0/1 numbers)
    :raises ActionMaskError: (a ValueError) for masks of the wrong size, or with no legal choice in some state or
        action dimension
    """
    prefix = f"{owner}: " if owner else ""
    groups = mask_groups(action_space)
    width = sum(groups)
    array = np.asarray(masks)
    if array.dtype != np.bool_:
        if array.dtype.kind not in "iuf" or not np.isin(array, (0, 1)).all():
            raise ActionMaskTypeError(
                f"{prefix}`{name}` must hold booleans (True = legal action), or numbers that are all 0 or 1; "
                f"got dtype {array.dtype}" + (f" with values {np.unique(array)[:5]}" if array.dtype.kind in "iuf" else "")
            )
        array = array.astype(bool)
    expected = "(n, " if n_states is None else f"({n_states}, "
    expected += f"{width}) (one row per state, {_describe(action_space)})"
    if array.ndim == 0 or array.size % width != 0 or (n_states is not None and array.size != n_states * width):
        raise ActionMaskError(f"{prefix}`{name}` must have shape {expected}; got shape {array.shape}")
    if array.ndim > 1 and array.shape[-1] != width:
        raise ActionMaskError(f"{prefix}`{name}` must have shape {expected}; got shape {array.shape}")
    array = array.reshape(-1, width)
    start = 0
    for dim, size in enumerate(groups):
        legal = array[:, start : start + size].any(axis=1)
        if not legal.all():
            state = int(np.flatnonzero(~legal)[0])
            where = "" if len(groups) == 1 else f" in action dimension {dim} (mask entries {start}..{start + size - 1})"
            raise ActionMaskError(
                f"{prefix}`{name}` allows no action{where} in state {state}: every state needs at least one legal "
                "action (True entry) per action dimension"
            )
        start += size
    return array


def _describe(action_space: spaces.Space) -> str:
    if isinstance(action_space, spaces.Discrete):
        return f"one entry per action of {action_space}"
    if isinstance(action_space, spaces.MultiDiscrete):
        return f"one entry per choice of each dimension of {action_space}, concatenated"
    return f"two entries (0 and 1) per dimension of {action_space}"


def check_masking_env(env: GymEnv | None, owner: str = "") -> None:
    """Raise a ValueError when ``env`` has no ``action_masks()`` method (``use_masking=True`` needs it)."""
    prefix = f"{owner}: " if owner else ""
    if env is None:
        raise ValueError(f"{prefix}no environment: set one with `set_env()` before `learn()`")
    if not is_masking_supported(env):
        raise ValueError(
            f"{prefix}`use_masking=True` needs an environment with an `action_masks()` method returning the legal "
            "actions of the current state; wrap it with `sb3_contrib.common.wrappers.ActionMasker(env, mask_fn)`, "
            "or pass `use_masking=False`"
        )
