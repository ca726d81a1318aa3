"""MaskedCueCorridor-v0, the masked task that needs memory, and the masked recurrent algorithms on it.

The fast tests check the environment (masks per phase, the locked doors, the penalty and count of an illegal action,
what a memoryless policy can reach) and count the illegal actions the masked recurrent algorithms take in training
and in a masked evaluation (none). The slow test trains each with its zoo_configs/<algo>.yml entry and asks for a
return only a policy that remembers the cue reaches.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
import yaml
from gymnasium.utils.env_checker import check_env
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import DummyVecEnv
from torch import nn

from sb3_ppo_variants.masking.envs import IllegalActionCounter, MaskedCueCorridorEnv, register_masking_envs
from sb3_ppo_variants.registry import RECURRENT_ALGOS

ENV_ID = "MaskedCueCorridor-v0"
CONFIG_DIR = Path(__file__).resolve().parents[2] / "zoo_configs"
MASKED_RECURRENT = ["clip_ppo_lstm_mask", "kl_ppo_lstm_mask", "reinforce_lstm_mask"]
#: Keys of a config entry that are rl_zoo3's, not the constructor's.
RUN_KEYS = ("n_envs", "n_timesteps", "policy")


def _entry(algo: str) -> dict[str, Any]:
    with open(CONFIG_DIR / f"{algo}.yml") as file:
        return dict(yaml.safe_load(file)[ENV_ID])


def _model(algo: str, seed: int = 0, **overrides: Any) -> tuple[Any, DummyVecEnv]:
    """The algorithm with its zoo_configs entry for MaskedCueCorridor-v0, on envs wrapped in IllegalActionCounter."""
    entry = {**_entry(algo), **overrides}
    kwargs = {key: value for key, value in entry.items() if key not in RUN_KEYS}
    kwargs["policy_kwargs"] = eval(kwargs["policy_kwargs"], {"nn": nn, "dict": dict})
    register_masking_envs()
    env = make_vec_env(ENV_ID, n_envs=entry["n_envs"], seed=seed, wrapper_class=IllegalActionCounter)
    assert isinstance(env, DummyVecEnv)
    return RECURRENT_ALGOS[algo](entry["policy"], env, seed=seed, device="cpu", **kwargs), env


def _illegal(env: DummyVecEnv) -> tuple[int, int]:
    counters = [e for e in env.envs if isinstance(e, IllegalActionCounter)]  # make_vec_env: wrapper_class outermost
    assert len(counters) == env.num_envs
    return sum(c.illegal_actions for c in counters), sum(c.actions for c in counters)


def _evaluate(model: Any, episodes: int, seed: int = 1000) -> tuple[float, int]:
    """Mean return of deterministic, masked episodes with the LSTM state carried, and the illegal actions taken."""
    env = IllegalActionCounter(MaskedCueCorridorEnv(**gym.spec(ENV_ID).kwargs))
    returns = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=seed + episode)
        state, episode_start, done, total = None, np.ones(1, dtype=bool), False, 0.0
        while not done:
            action, state = model.predict(obs, state, episode_start, deterministic=True, action_masks=env.action_masks())
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            done, episode_start = terminated or truncated, np.zeros(1, dtype=bool)
        returns.append(total)
    return float(np.mean(returns)), env.illegal_actions


# ---------------------------------------------------------------------------------------------------- the env


def test_env_passes_gymnasium_checks_and_is_registered() -> None:
    register_masking_envs()
    env = gym.make(ENV_ID)
    check_env(env.unwrapped)
    assert isinstance(env.unwrapped, MaskedCueCorridorEnv)
    assert (env.unwrapped.n_cues, env.unwrapped.corridor_length, env.unwrapped.n_locked) == (4, 4, 2)
    image = gym.make(ENV_ID, render_mode="rgb_array")
    image.reset(seed=0)
    frame = image.render()
    assert isinstance(frame, np.ndarray) and frame.shape == (16, 48, 3) and frame.dtype == np.uint8


def test_masks_change_over_time_and_the_cue_is_seen_only_at_the_start() -> None:
    env = MaskedCueCorridorEnv(n_cues=4, corridor_length=3)
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        cue = int(np.argmax(obs[:4]))
        assert obs[:4].sum() == 1 and obs[4:].sum() == 0
        for _ in range(4):  # the cue step and 3 corridor steps: only "walk on"
            assert env.action_masks().tolist() == [True, False, False, False, False]
            obs, reward, terminated, _, _ = env.step(0)
            assert reward == 0 and not terminated and obs[:4].sum() == 0
        assert obs[5] == 1
        mask = env.action_masks()
        assert not mask[0] and mask[1 + cue] and mask.sum() == 2  # 2 of the 3 wrong doors are locked
        _, reward, terminated, _, info = env.step(1 + cue)
        assert reward == 1 and terminated and info["is_success"]


def test_a_memoryless_policy_gets_half() -> None:
    """Picking uniformly among the open doors, the best a policy that does not know the cue can do, gets 1/2."""
    env, rng, wins = MaskedCueCorridorEnv(), np.random.default_rng(0), 0
    for seed in range(2000):
        env.reset(seed=seed)
        terminated, reward = False, 0.0
        while not terminated:
            action = rng.choice(np.flatnonzero(env.action_masks()))
            _, reward, terminated, _, _ = env.step(action)  # type: ignore[assignment]
        wins += reward == 1
    assert abs(wins / 2000 - 0.5) < 0.05


def test_an_illegal_action_ends_the_episode_and_is_counted() -> None:
    env = IllegalActionCounter(MaskedCueCorridorEnv())
    env.reset(seed=0)
    _, reward, terminated, _, info = env.step(1)  # a door in the corridor
    assert (reward, terminated, info["illegal_action"]) == (-1.0, True, True)
    assert env.illegal_actions == 1 and env.actions == 1 and env.unwrapped.illegal_actions == 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("kwargs", [{"n_cues": 1}, {"corridor_length": -1}, {"n_cues": 3, "n_locked": 2}])
def test_env_rejects_impossible_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="n_cues >= 2"):
        MaskedCueCorridorEnv(**kwargs)


# ---------------------------------------------------------------------------------------------------- the algorithms


@pytest.mark.parametrize("algo", MASKED_RECURRENT)
def test_no_illegal_action_in_training_or_masked_evaluation(algo: str) -> None:
    th.set_num_threads(1)
    model, env = _model(algo)
    model.learn(512)
    illegal, actions = _illegal(env)
    assert actions >= 512 and illegal == 0
    _, illegal = _evaluate(model, episodes=20)
    assert illegal == 0


def test_the_counter_sees_illegal_actions_of_an_unmasked_policy() -> None:
    """The counting itself works: actions drawn without the masks hit locked doors and the corridor's doors."""
    env = IllegalActionCounter(MaskedCueCorridorEnv())
    env.reset(seed=0)
    env.action_space.seed(0)
    for _ in range(200):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    assert env.illegal_actions > 50


#: A policy that does not remember the cue reaches 0.5 at most (test_a_memoryless_policy_gets_half).
LEARNED = 0.8


@pytest.mark.slow
@pytest.mark.parametrize("algo", MASKED_RECURRENT)
def test_masked_recurrent_algorithms_learn_to_remember_the_cue(algo: str) -> None:
    th.set_num_threads(1)
    model, env = _model(algo)
    model.learn(_entry(algo)["n_timesteps"])
    mean_return, illegal = _evaluate(model, episodes=100)
    assert _illegal(env)[0] == 0 and illegal == 0
    assert mean_return >= LEARNED, f"{algo}: mean return {mean_return:.2f} < {LEARNED} over 100 episodes"
