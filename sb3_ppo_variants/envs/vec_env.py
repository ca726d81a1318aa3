"""Gymnasium's vector environments as Stable-Baselines3 ``VecEnv`` objects.

:class:`GymnasiumVecEnv` wraps any :class:`gymnasium.vector.VectorEnv` (``SyncVectorEnv``, ``AsyncVectorEnv``, a
native vectorised environment such as ``gymnasium.make_vec("CartPole-v1", vectorization_mode="vector_entry_point")``,
with or without Gymnasium vector wrappers) so that every SB3 algorithm, and every SB3 ``VecEnvWrapper``
(``VecNormalize``, ``VecMonitor``, ...), takes it. What SB3 sees is what :class:`~stable_baselines3.common.vec_env.DummyVecEnv`
gives:

- ``step`` returns ``(obs, rewards, dones, infos)``, ``dones = terminated | truncated``, rewards as float32, ``infos``
  a list of one dict per environment;
- at an episode end the returned observation is already the first observation of the next episode, the last one is
  in ``infos[i]["terminal_observation"]``, and ``infos[i]["TimeLimit.truncated"] = truncated and not terminated`` (SB3
  bootstraps the value of the terminal observation on such timeouts);
- ``infos[i]["episode"] = {"r", "l", "t"}`` at episode ends as SB3's ``Monitor`` writes it (``rollout/ep_rew_mean``),
  unless the wrapped environment already reports an ``"episode"`` entry;
- ``reset()`` takes the seeds of :meth:`seed` and the options of :meth:`set_options` once, as SB3's vector
  environments do.

How the episode ends are handled depends on the vector environment's autoreset mode
(``venv.metadata["autoreset_mode"]``, see https://farama.org/Vector-Autoreset-Mode):

``SAME_STEP``
    The vector environment resets an environment in the step that ends its episode and puts the last observation in
    ``info["final_obs"]``, the step's info in ``info["final_info"]``. This is DummyVecEnv's own behaviour: the adapter
    only renames (``final_obs`` -> ``terminal_observation``, ``final_info`` -> the step's info, the reset's info ->
    :attr:`reset_infos`).
``NEXT_STEP`` (Gymnasium's default)
    The step after an episode end would be a *reset step*: the environment's action is ignored, and it returns the
    first observation of the next episode with reward 0. SB3 must not see that step, and the other environments must
    not advance while one of them resets. So, right after the step that ends an episode, the adapter resets *only* the
    environments whose episode ended: ``venv.reset(options={"reset_mask": done})`` for ``SyncVectorEnv`` and
    ``AsyncVectorEnv`` (and Gymnasium vector wrappers that pass ``reset_mask`` on); a partial reset clears the vector
    environment's pending autoreset, so the reset step never happens. A native vectorised environment has no general
    way to reset some of its environments; for Gymnasium's ``CartPoleVectorEnv`` the adapter does what the environment
    itself would do in its reset step (the same random draw from its generator, one step earlier), see
    :data:`PARTIAL_RESETS`; other native environments need a ``partial_reset`` function (else: a ``TypeError`` that
    says so), since stepping the whole vector to reset some environments would advance all the others.
``DISABLED``
    The vector environment never resets by itself: the adapter resets the ended environments with
    ``reset(options={"reset_mask": done})``, as for ``NEXT_STEP``.

After every partial reset the adapter checks that the environments outside the mask kept their observation: a vector
environment that ignores ``reset_mask`` (and resets everything) is caught with an error instead of training on
broken episodes.

What differs from a ``DummyVecEnv`` of the same ``gym.make`` environments with the same seeds (the tests check that
nothing else does):

- ``NEXT_STEP``/``DISABLED`` with ``reset_mask``: a sub-environment's automatic reset is ``env.reset(seed=None,
  options={})`` (Gymnasium's vector environments pass the options left after removing ``reset_mask``), where
  DummyVecEnv calls ``env.reset()``; the same for every environment that treats ``options={}`` as no options.
- Per-environment reset options (:meth:`set_options` with different dicts) are refused: Gymnasium's vector
  environments take one options dict for all.
- A native vectorised environment (one random generator for all its environments) is seeded with one seed, the
  first of SB3's ``[seed, seed + 1, ...]``; its episodes are the native environment's, not those of ``gym.make``
  environments (other random draws).
- ``infos[i]["episode"]["t"]`` is the wall-clock time since the adapter was created, as Monitor's ``t``, but of the
  adapter, not of each environment.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AsyncVectorEnv, AutoresetMode, SyncVectorEnv, VectorEnv, VectorWrapper
from gymnasium.wrappers.vector import RecordEpisodeStatistics
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env.base_vec_env import VecEnv, VecEnvIndices, VecEnvObs, VecEnvStepReturn

__all__ = ["PARTIAL_RESETS", "GymnasiumVecEnv", "PartialReset", "make_gymnasium_vec_env"]

#: ``partial_reset(venv, mask) -> (batched observations, vector info dict)``: reset the environments where ``mask`` is
#: True and nothing else; the returned observations are those of all environments (only the masked rows are used).
PartialReset = Callable[[VectorEnv, np.ndarray], tuple[Any, dict[str, Any]]]

#: observation spaces SB3's policies take (a ``Dict`` of these too) and action spaces its algorithms take
_SB3_SPACES = (spaces.Box, spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)
#: info keys of a SAME_STEP vector environment that are not the step's info
_SAME_STEP_KEYS = ("final_obs", "final_info")


def _cartpole_partial_reset(venv: VectorEnv, mask: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
    """Gymnasium's ``CartPoleVectorEnv``: reset the masked environments now, exactly as its own reset step would.

    ``CartPoleVectorEnv.step`` overwrites the state of the environments that ended in the previous step with
    ``np_random.uniform(low, high, size=(4, k))``, sets their step count to 0 and clears ``prev_done``; the physics
    before it draws nothing from the generator. Doing the same right after the ending step draws the same numbers
    in the same order (the sequence of ended-environment sets is the same), without the step that would advance the
    other environments.
    """
    needed = ("state", "steps", "prev_done", "np_random", "low", "high")
    missing = [name for name in needed if not hasattr(venv, name)]
    if missing:  # a Gymnasium version whose CartPoleVectorEnv differs from the one this was written for
        raise TypeError(
            f"{type(venv).__name__} lacks {missing}: the adapter's partial reset of CartPoleVectorEnv does not fit this "
            "Gymnasium version; use gymnasium.make_vec(..., vectorization_mode='sync') instead"
        )
    state = venv.state  # type: ignore[attr-defined]
    state[:, mask] = venv.np_random.uniform(low=venv.low, high=venv.high, size=(4, int(mask.sum())))  # type: ignore[attr-defined]
    venv.steps[mask] = 0  # type: ignore[attr-defined]
    venv.prev_done[mask] = False  # type: ignore[attr-defined]
    return state.T.astype(np.float32), {}


def _native_partial_resets() -> dict[type, PartialReset]:
    registry: dict[type, PartialReset] = {}
    try:
        from gymnasium.envs.classic_control.cartpole import CartPoleVectorEnv
    except ImportError:  # pragma: no cover - every Gymnasium >= 1.0 has it
        return registry
    registry[CartPoleVectorEnv] = _cartpole_partial_reset
    return registry


#: partial resets of native vectorised NEXT_STEP environments, by exact class (an environment wrapped in Gymnasium
#: vector wrappers is not covered: the reset would bypass the wrappers)
PARTIAL_RESETS: dict[type, PartialReset] = _native_partial_resets()


def _split_infos(vector_infos: dict[str, Any], num_envs: int) -> list[dict[str, Any]]:
    """Gymnasium's vector info (``{key: batched values, "_key": mask}``, nested for dict values) as one dict per env."""
    infos: list[dict[str, Any]] = [{} for _ in range(num_envs)]
    for key, value in vector_infos.items():
        if isinstance(key, str) and key.startswith("_"):
            continue
        mask = vector_infos.get(f"_{key}")
        per_env = _split_infos(value, num_envs) if isinstance(value, dict) else value
        for i in range(num_envs):
            if mask is None or mask[i]:
                infos[i][key] = per_env[i]
    return infos


def _check_space(space: spaces.Space, what: str, allow_dict: bool) -> None:
    if allow_dict and isinstance(space, spaces.Dict):
        for key, sub_space in space.spaces.items():
            if not isinstance(sub_space, _SB3_SPACES):
                raise TypeError(
                    f"the {what} space's entry {key!r} is {sub_space}: SB3 takes Box, Discrete, MultiDiscrete or "
                    "MultiBinary entries in a Dict observation space (no nesting)"
                )
        return
    if not isinstance(space, _SB3_SPACES):
        accepted = "Box, Discrete, MultiDiscrete, MultiBinary" + (" or Dict of these" if allow_dict else "")
        raise TypeError(f"the {what} space is {space}: SB3's algorithms take {accepted}")


class GymnasiumVecEnv(VecEnv):
    """A :class:`gymnasium.vector.VectorEnv` as an SB3 :class:`~stable_baselines3.common.vec_env.VecEnv` (see the module).

    :param venv: the vector environment (its ``single_observation_space`` and ``single_action_space`` become
        ``observation_space`` and ``action_space``)
    :param monitor: add Monitor-style ``infos[i]["episode"] = {"r", "l", "t"}`` at episode ends (not where the
        environment already reports an ``"episode"`` entry); ``env_is_wrapped(Monitor)`` answers True when set
    :param partial_reset: for a native vectorised ``NEXT_STEP`` environment: a function that resets only the masked
        environments (:data:`PartialReset`); default: :data:`PARTIAL_RESETS` for the environment's class, ``reset_mask``
        for ``SyncVectorEnv``/``AsyncVectorEnv``
    """

    def __init__(self, venv: VectorEnv, monitor: bool = True, partial_reset: PartialReset | None = None) -> None:
        if not isinstance(venv, VectorEnv):
            hint = ""
            if isinstance(venv, VecEnv):
                hint = ": it is already an SB3 VecEnv"
            elif isinstance(venv, gym.Env):
                hint = ": for a single environment use gymnasium.make_vec(env_id, num_envs=...) or SB3's make_vec_env"
            raise TypeError(f"GymnasiumVecEnv wraps a gymnasium.vector.VectorEnv, got {type(venv).__name__}{hint}")
        self.venv = venv
        self.monitor = monitor
        base = venv.unwrapped
        self._is_gymnasium_vectorizer = isinstance(base, (SyncVectorEnv, AsyncVectorEnv))
        _check_space(venv.single_observation_space, "observation", allow_dict=True)
        _check_space(venv.single_action_space, "action", allow_dict=False)
        self.autoreset_mode = self._autoreset_mode(venv)
        self._partial_reset = self._choose_partial_reset(venv, partial_reset)
        num_envs = int(venv.num_envs)
        self._episode_returns = np.zeros(num_envs, dtype=np.float64)
        self._episode_lengths = np.zeros(num_envs, dtype=np.int64)
        self._t_start = time.time()
        self._actions: np.ndarray | None = None
        super().__init__(num_envs, venv.single_observation_space, venv.single_action_space)
        self.metadata = {**dict(venv.metadata), **self.metadata}

    # ------------------------------------------------------------------ set-up

    @staticmethod
    def _autoreset_mode(venv: VectorEnv) -> AutoresetMode:
        mode = venv.metadata.get("autoreset_mode")
        if mode is None:
            warnings.warn(
                f"{venv} has no metadata['autoreset_mode']: assuming Gymnasium's default, AutoresetMode.NEXT_STEP",
                stacklevel=3,
            )
            return AutoresetMode.NEXT_STEP
        return mode if isinstance(mode, AutoresetMode) else AutoresetMode(mode)

    def _choose_partial_reset(self, venv: VectorEnv, partial_reset: PartialReset | None) -> PartialReset | None:
        """How ended environments are reset: ``None`` in SAME_STEP mode (the vector env does it), else a function."""
        if self.autoreset_mode == AutoresetMode.SAME_STEP:
            return None
        if partial_reset is not None:
            return partial_reset
        base = venv.unwrapped
        if self.autoreset_mode == AutoresetMode.DISABLED or self._is_gymnasium_vectorizer:
            if isinstance(base, AsyncVectorEnv) and not base.shared_memory and self.autoreset_mode == AutoresetMode.NEXT_STEP:
                # gymnasium 1.x: the worker clears its pending NEXT_STEP autoreset on reset only with shared memory, so
                # a partially reset environment would reset again at the next step (its action ignored)
                raise ValueError(
                    "AsyncVectorEnv(shared_memory=False) in NEXT_STEP mode does not clear a pending autoreset on a "
                    "partial reset: use shared_memory=True (the default) or autoreset_mode=AutoresetMode.SAME_STEP"
                )
            self._refuse_record_episode_statistics(venv)
            return _reset_mask_reset
        native = PARTIAL_RESETS.get(type(venv))
        if native is not None:
            return native
        raise TypeError(
            f"{venv} is a native vectorised environment in NEXT_STEP autoreset mode with no known way to reset some of "
            "its environments: the step after an episode end would be a reset step that also advances every other "
            "environment, which SB3's VecEnv semantics cannot express. Use gymnasium.make_vec(..., "
            "vectorization_mode='sync' or 'async'), an environment in SAME_STEP mode, or pass "
            "partial_reset=fn(venv, mask) -> (obs, infos) that resets only the masked environments."
        )

    @staticmethod
    def _refuse_record_episode_statistics(venv: VectorEnv) -> None:
        """gymnasium 1.x's vector ``RecordEpisodeStatistics`` looks for ``reset_mask`` in the options after the
        environment below it has popped it, so a partial reset zeroes the statistics of *every* environment."""
        env: Any = venv
        while isinstance(env, VectorWrapper):
            if isinstance(env, RecordEpisodeStatistics):
                raise ValueError(
                    "gymnasium.wrappers.vector.RecordEpisodeStatistics loses the episodes of all environments on the "
                    "partial resets this autoreset mode needs (it misses the reset_mask its inner environment removed "
                    "from the options): leave it out, the adapter reports Monitor-style statistics itself (monitor=True), "
                    "or use autoreset_mode=AutoresetMode.SAME_STEP"
                )
            env = env.env

    # ------------------------------------------------------------------ reset / step

    def reset(self) -> VecEnvObs:
        # SyncVectorEnv/AsyncVectorEnv take a list of seeds (VectorEnv's signature says int)
        obs, vector_infos = self.venv.reset(seed=self._reset_seed(), options=self._reset_options_dict())  # type: ignore[arg-type]
        self.reset_infos = _split_infos(vector_infos, self.num_envs)
        self._episode_returns[:] = 0.0
        self._episode_lengths[:] = 0
        self._reset_seeds()
        self._reset_options()
        return _copy_obs(obs)

    def _reset_seed(self) -> int | list[int | None] | None:
        seeds = list(self._seeds)
        if all(seed is None for seed in seeds):
            return None
        if self._is_gymnasium_vectorizer:
            return seeds  # one seed per sub-environment, as DummyVecEnv
        first = seeds[0]
        if first is None or any(seed != first + i for i, seed in enumerate(seeds)):
            raise ValueError(
                f"a native vectorised environment takes one seed (its environments share a random generator); got the "
                f"per-environment seeds {seeds}: use VecEnv.seed(seed), which sets [seed, seed + 1, ...]"
            )
        return first

    def _reset_options_dict(self) -> dict[str, Any] | None:
        options = list(self._options)
        if all(not option for option in options):
            return None
        if any(option != options[0] for option in options):
            raise ValueError(
                "Gymnasium's vector environments take one options dict for all environments; set_options got "
                f"different ones: {options}"
            )
        return dict(options[0])

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        if self._actions is None:
            raise RuntimeError("step_wait() without step_async()")
        obs, rewards, terminated, truncated, vector_infos = self.venv.step(self._actions)
        self._actions = None
        terminated = np.asarray(terminated, dtype=bool)
        truncated = np.asarray(truncated, dtype=bool)
        rewards = np.asarray(rewards)
        dones = terminated | truncated
        infos = _split_infos(vector_infos, self.num_envs)
        obs = _copy_obs(obs)
        ended: list[int] = np.flatnonzero(dones).tolist()
        if len(ended):
            if self._partial_reset is None:
                self._take_same_step_resets(ended, infos)
            else:
                obs = self._reset_ended(obs, dones, ended, infos)
        for i in range(self.num_envs):
            infos[i]["TimeLimit.truncated"] = bool(truncated[i] and not terminated[i])
        self._episode_returns += rewards
        self._episode_lengths += 1
        for i in ended:
            if self.monitor and "episode" not in infos[i]:
                infos[i]["episode"] = {
                    "r": round(float(self._episode_returns[i]), 6),
                    "l": int(self._episode_lengths[i]),
                    "t": round(time.time() - self._t_start, 6),
                }
        self._episode_returns[ended] = 0.0
        self._episode_lengths[ended] = 0
        return obs, rewards.astype(np.float32), dones, infos

    def _take_same_step_resets(self, ended: list[int], infos: list[dict[str, Any]]) -> None:
        """SAME_STEP: the observation is already the reset one; the step's own info and last observation are in
        ``final_info``/``final_obs``, and what remains at the top level is the reset's info (and, say, the ``"episode"``
        of a Gymnasium ``RecordEpisodeStatistics`` vector wrapper, which stays with the step)."""
        for i in ended:
            top = infos[i]
            if "final_obs" not in top:
                raise RuntimeError(f"{self.venv} is in SAME_STEP mode but did not put final_obs in the info of env {i}")
            step_info = dict(top.get("final_info", {}))
            step_info["terminal_observation"] = top["final_obs"]
            if "episode" in top and "episode" not in step_info:
                step_info["episode"] = top.pop("episode")
            self.reset_infos[i] = {key: value for key, value in top.items() if key not in _SAME_STEP_KEYS}
            infos[i] = step_info

    def _reset_ended(self, obs: VecEnvObs, dones: np.ndarray, ended: list[int], infos: list[dict[str, Any]]) -> VecEnvObs:
        """NEXT_STEP/DISABLED: keep the last observations, reset only the ended environments, use their new rows."""
        for i in ended:
            infos[i]["terminal_observation"] = _obs_row(obs, i)
        assert self._partial_reset is not None
        reset_obs, reset_vector_infos = self._partial_reset(self.venv, dones.copy())
        kept = ~dones
        if not _rows_equal(reset_obs, obs, kept):
            raise RuntimeError(
                f"a partial reset of {self.venv} (mask {dones}) changed the observations of environments outside the "
                "mask: this vector environment does not support partial resets"
            )
        reset_infos = _split_infos(reset_vector_infos, self.num_envs)
        for i in ended:
            self.reset_infos[i] = reset_infos[i]
        return _set_rows(obs, reset_obs, dones)

    # ------------------------------------------------------------------ the rest of SB3's VecEnv interface

    def close(self) -> None:
        self.venv.close()

    def get_images(self) -> Sequence[np.ndarray | None]:
        if self.render_mode != "rgb_array":
            warnings.warn(
                f"The render mode is {self.render_mode}, but this method assumes it is `rgb_array` to obtain images.",
                stacklevel=2,
            )
            return [None] * self.num_envs
        frames = self.venv.render()
        return [None] * self.num_envs if frames is None else list(frames)  # type: ignore[arg-type]

    def has_attr(self, attr_name: str) -> bool:
        """Whether all environments have the attribute, asked without an error (an ``AttributeError`` inside an
        ``AsyncVectorEnv`` worker shuts the worker down; sb3-contrib's MaskablePPO asks for ``action_masks``)."""
        base = self.venv.unwrapped
        if isinstance(base, SyncVectorEnv):
            return all(env.has_wrapper_attr(attr_name) for env in base.envs)
        if isinstance(base, AsyncVectorEnv):
            return all(base.call("has_wrapper_attr", attr_name))
        return hasattr(self.venv, attr_name)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """Sub-environments' attributes (``SyncVectorEnv``/``AsyncVectorEnv``); for a native vectorised environment,
        which has no sub-environments, the vector environment's attribute, once per index."""
        targets = list(self._get_indices(indices))
        base = self.venv.unwrapped
        if isinstance(base, SyncVectorEnv):
            return [base.envs[i].get_wrapper_attr(attr_name) for i in targets]
        if isinstance(base, AsyncVectorEnv):
            values = base.get_attr(attr_name)
            return [values[i] for i in targets]
        value = getattr(self.venv, attr_name)
        return [value for _ in targets]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        targets = list(self._get_indices(indices))
        base = self.venv.unwrapped
        if isinstance(base, SyncVectorEnv):
            for i in targets:
                base.envs[i].set_wrapper_attr(attr_name, value)
        elif sorted(targets) != list(range(self.num_envs)):
            if isinstance(base, AsyncVectorEnv):
                what = "AsyncVectorEnv sets an attribute in all its environments at once"
            else:
                what = f"{self.venv} is a native vectorised environment: its attributes belong to all its environments"
            raise NotImplementedError(f"{what}, so set_attr takes indices=None only")
        elif isinstance(base, AsyncVectorEnv):
            base.set_attr(attr_name, value)
        else:
            setattr(self.venv, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        targets = list(self._get_indices(indices))
        base = self.venv.unwrapped
        if isinstance(base, SyncVectorEnv):
            return [base.envs[i].get_wrapper_attr(method_name)(*method_args, **method_kwargs) for i in targets]
        if isinstance(base, AsyncVectorEnv):
            if sorted(targets) != list(range(self.num_envs)):
                raise NotImplementedError(
                    "AsyncVectorEnv calls a method in all its environments at once: env_method takes indices=None only"
                )
            results = base.call(method_name, *method_args, **method_kwargs)
            return [results[i] for i in targets]
        raise NotImplementedError(
            f"{self.venv} is a native vectorised environment without sub-environments: call its methods on "
            "GymnasiumVecEnv.venv directly"
        )

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """``Monitor``: whether episode statistics are reported (``monitor=True``, or Monitor-wrapped sub-environments);
        other wrappers: the sub-environments of a ``SyncVectorEnv``; a native environment has none (all False)."""
        from stable_baselines3.common.env_util import is_wrapped

        targets = list(self._get_indices(indices))
        base = self.venv.unwrapped
        if isinstance(base, SyncVectorEnv):
            wrapped = [is_wrapped(base.envs[i], wrapper_class) for i in targets]
        elif isinstance(base, AsyncVectorEnv):
            if wrapper_class is not Monitor:
                raise NotImplementedError(
                    "AsyncVectorEnv's sub-environments live in other processes: env_is_wrapped answers for Monitor only"
                )
            wrapped = [False for _ in targets]
        else:
            wrapped = [False for _ in targets]
        if wrapper_class is Monitor and self.monitor:
            return [True for _ in targets]
        return wrapped


def _reset_mask_reset(venv: VectorEnv, mask: np.ndarray) -> tuple[Any, dict[str, Any]]:
    """Gymnasium's partial reset: ``reset(options={"reset_mask": mask})`` (a new dict: the vector env pops the key)."""
    return venv.reset(options={"reset_mask": mask})


def _copy_obs(obs: Any) -> VecEnvObs:
    if isinstance(obs, dict):
        return {key: np.array(value, copy=True) for key, value in obs.items()}
    return np.array(obs, copy=True)


def _obs_row(obs: VecEnvObs, i: int) -> Any:
    if isinstance(obs, dict):
        return {key: value[i].copy() for key, value in obs.items()}
    assert isinstance(obs, np.ndarray)
    return obs[i].copy()


def _rows_equal(new: Any, old: VecEnvObs, rows: np.ndarray) -> bool:
    if isinstance(old, dict):
        return all(np.array_equal(np.asarray(new[key])[rows], old[key][rows], equal_nan=True) for key in old)
    assert isinstance(old, np.ndarray)
    new_rows = np.asarray(new)[rows]
    equal_nan = np.issubdtype(old.dtype, np.floating)
    return bool(np.array_equal(new_rows, old[rows], equal_nan=equal_nan))


def _set_rows(obs: VecEnvObs, new: Any, rows: np.ndarray) -> VecEnvObs:
    if isinstance(obs, dict):
        for key, value in obs.items():
            value[rows] = np.asarray(new[key])[rows]
        return obs
    assert isinstance(obs, np.ndarray)
    obs[rows] = np.asarray(new)[rows]
    return obs


def make_gymnasium_vec_env(
    env_id: str,
    n_envs: int = 1,
    seed: int | None = None,
    vectorization_mode: str | None = None,
    vector_kwargs: dict[str, Any] | None = None,
    wrappers: Sequence[Callable[[gym.Env], gym.Wrapper]] | None = None,
    monitor: bool = True,
    **env_kwargs: Any,
) -> GymnasiumVecEnv:
    """``gymnasium.make_vec(env_id, num_envs=n_envs, ...)`` wrapped in :class:`GymnasiumVecEnv`, seeded as SB3's
    ``make_vec_env`` seeds (``seed``, ``seed + 1``, ... at the first ``reset()``).

    :param vectorization_mode: ``"sync"``, ``"async"``, ``"vector_entry_point"`` (the environment's native vectorised
        implementation, e.g. ``CartPoleVectorEnv``), or None: Gymnasium's choice (the native one where it exists)
    :param vector_kwargs: for the vectorizer, e.g. ``{"autoreset_mode": AutoresetMode.SAME_STEP}``
    :param wrappers: Gymnasium wrappers for each sub-environment (``"sync"``/``"async"`` only)
    :param env_kwargs: for the environment (``max_episode_steps=...`` included)
    """
    venv = gym.make_vec(
        env_id,
        num_envs=n_envs,
        vectorization_mode=vectorization_mode,
        vector_kwargs=vector_kwargs,
        wrappers=wrappers,
        **env_kwargs,
    )
    try:
        vec_env = GymnasiumVecEnv(venv, monitor=monitor)
    except BaseException:
        venv.close()
        raise
    if seed is not None:
        vec_env.seed(seed)
    return vec_env
