"""Gymnasium ids for the invalid-action environments, so that rl_zoo3 can make them by name.

``InvalidActionDiscrete-v0`` is sb3-contrib's ``InvalidActionEnvDiscrete(dim=20, n_invalid_actions=10)`` and
``InvalidActionMultiDiscrete-v0`` is its ``InvalidActionEnvMultiDiscrete(dims=[5, 10], n_invalid_actions=6)``: 100
steps per episode, reward 1 per correct action, ``action_masks()`` gives the legal actions (the settings of
``docs/masking.md``'s figures). ``MaskedCueCorridor-v0`` is ours, :class:`MaskedCueCorridorEnv`: a masked task that
needs memory, for the masked recurrent algorithms. :func:`register_masking_envs` is called by ``sb3-ppo-variants-zoo``.
:class:`IllegalActionCounter` counts the actions an agent takes outside ``action_masks()``.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium import spaces

MASKING_ENVS: dict[str, tuple[str, dict]] = {
    "InvalidActionDiscrete-v0": (
        "sb3_contrib.common.envs.invalid_actions_env:InvalidActionEnvDiscrete",
        {"dim": 20, "n_invalid_actions": 10},
    ),
    "InvalidActionMultiDiscrete-v0": (
        "sb3_contrib.common.envs.invalid_actions_env:InvalidActionEnvMultiDiscrete",
        {"dims": [5, 10], "n_invalid_actions": 6},
    ),
    "MaskedCueCorridor-v0": ("sb3_ppo_variants.masking.envs:MaskedCueCorridorEnv", {"n_cues": 4, "corridor_length": 4}),
}


class MaskedCueCorridorEnv(gym.Env[np.ndarray, np.int64]):
    """A cue, a corridor, then a choice among doors of which some are locked: solved only by remembering the cue.

    An episode has ``corridor_length + 2`` steps. At step 0 one of ``n_cues`` cues is shown; during the corridor
    the cue is no longer observed; at the last step the agent picks a door. Actions: 0 = walk on, ``1 + k`` = open
    door ``k``. The legal actions change over time (:meth:`action_masks`): only "walk on" before the choice; at the
    choice "walk on" is illegal and so are ``n_locked`` doors drawn at random, never the cued one. Opening the cued
    door gives reward 1, another door 0; the episode ends at the choice. An illegal action ends the episode with
    reward -1 (it never happens under a masked policy; :attr:`illegal_actions` counts them).

    Observation (float32, ``n_cues + 2`` values): the cue as one-hot (zeros after step 0), a corridor flag, a choice
    flag. The locked doors are not observed, only masked. A memoryless policy can do no better than a uniform pick
    among the legal doors at the choice, ``1 / (n_cues - n_locked)`` expected return (1/2 with the registered
    ``n_cues=4``, ``n_locked`` 2); a policy that remembers the cue gets 1.

    :param n_cues: Number of cues and doors (at least 2)
    :param corridor_length: Steps between the cue and the choice, during which nothing tells the cue
    :param n_locked: Wrong doors locked (masked) at the choice; by default ``n_cues // 2``
    :param render_mode: ``"rgb_array"`` (what SB3's ``make_vec_env`` asks for) or None: :meth:`render` draws the
        observation above the action mask, one 8-pixel cell per value
    """

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 4}  # noqa: RUF012  (gymnasium's declared attribute)

    def __init__(
        self, n_cues: int = 4, corridor_length: int = 4, n_locked: int | None = None, render_mode: str | None = None
    ) -> None:
        super().__init__()
        self.render_mode = render_mode
        n_locked = n_cues // 2 if n_locked is None else n_locked
        if n_cues < 2 or corridor_length < 0 or not 0 <= n_locked <= n_cues - 2:
            raise ValueError(
                f"need n_cues >= 2, corridor_length >= 0 and 0 <= n_locked <= n_cues - 2: got {n_cues}, "
                f"{corridor_length}, {n_locked} (at least the cued door and one other stay open)"
            )
        self.n_cues = n_cues
        self.corridor_length = corridor_length
        self.n_locked = n_locked
        self.observation_space = spaces.Box(0.0, 1.0, shape=(n_cues + 2,), dtype=np.float32)
        self.action_space = spaces.Discrete(n_cues + 1)
        self.illegal_actions = 0
        self._cue = 0
        self._t = 0
        self._open_doors = np.ones(n_cues, dtype=bool)

    @property
    def _choice_step(self) -> int:
        return self.corridor_length + 1

    def _observation(self) -> np.ndarray:
        obs = np.zeros(self.n_cues + 2, dtype=np.float32)
        if self._t == 0:
            obs[self._cue] = 1.0
        elif self._t < self._choice_step:
            obs[self.n_cues] = 1.0
        else:
            obs[self.n_cues + 1] = 1.0
        return obs

    def action_masks(self) -> np.ndarray:
        """The legal actions now: "walk on" before the choice, the open doors at it."""
        if self._t < self._choice_step:
            return np.array([True] + [False] * self.n_cues)
        return np.concatenate(([False], self._open_doors))

    def render(self) -> np.ndarray | None:
        """The observation above the action mask as an RGB image (``render_mode="rgb_array"``), else None."""
        if self.render_mode != "rgb_array":
            return None
        rows = np.stack([self._observation(), np.concatenate((self.action_masks(), [False]))]).astype(np.uint8) * 255
        return np.repeat(np.repeat(rows, 8, axis=0), 8, axis=1)[..., None].repeat(3, axis=2)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """A new episode: a new cue, and the doors that will be locked at the choice."""
        super().reset(seed=seed)
        self._t = 0
        self._cue = int(self.np_random.integers(self.n_cues))
        wrong = np.delete(np.arange(self.n_cues), self._cue)
        self._open_doors = np.ones(self.n_cues, dtype=bool)
        self._open_doors[self.np_random.choice(wrong, size=self.n_locked, replace=False)] = False
        return self._observation(), {}

    def step(self, action: Any) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict]:
        """Walk on, or open a door (see the class docstring for the rewards and the illegal actions)."""
        action = int(action)
        if not self.action_masks()[action]:
            self.illegal_actions += 1
            return self._observation(), -1.0, True, False, {"illegal_action": True}
        if self._t < self._choice_step:
            self._t += 1
            return self._observation(), 0.0, False, False, {}
        reward = 1.0 if action == 1 + self._cue else 0.0
        return self._observation(), reward, True, False, {"is_success": reward > 0}


class IllegalActionCounter(gym.Wrapper):
    """Counts the actions taken outside the wrapped environment's ``action_masks()`` (read before each step).

    :attr:`illegal_actions` is the count and :attr:`actions` the number of steps; a step with an illegal action also
    gets ``info["illegal_action"] = True``. ``action_masks()`` is passed through, so sb3-contrib's ``get_action_masks``
    and the masked algorithms see the wrapped environment's masks. Discrete action spaces only.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.illegal_actions = 0
        self.actions = 0

    def action_masks(self) -> np.ndarray:
        """The wrapped environment's legal actions."""
        return np.asarray(self.env.unwrapped.action_masks())  # type: ignore[attr-defined]

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict]:
        """The wrapped environment's step, counted (and flagged in ``info``) when ``action`` is illegal."""
        legal = bool(self.action_masks()[int(action)])
        self.actions += 1
        self.illegal_actions += not legal
        obs, reward, terminated, truncated, info = self.env.step(action)
        if not legal:
            info = {**info, "illegal_action": True}
        return obs, reward, terminated, truncated, info


def register_masking_envs() -> None:
    """Register the ids of :data:`MASKING_ENVS` in gymnasium (idempotent)."""
    for env_id, (entry_point, kwargs) in MASKING_ENVS.items():
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=entry_point, kwargs=kwargs)
