"""Checks of the LSTM state and the episode starts a user passes to ``predict``, with errors that say what was expected.

``RecurrentPPO.predict`` takes ``state`` (the (hidden, cell) pair the previous call returned, each of shape
``(n_lstm_layers, n_envs, lstm_hidden_size)``) and ``episode_start`` (one flag per env); a state of the wrong shape
fails deep inside torch's LSTM, and episode starts of the wrong length are broadcast silently. Here both are checked
first.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from sb3_ppo_variants.core.checks import n_observations


def check_recurrent_predict(
    owner: str,
    policy: Any,
    observation_space: spaces.Space,
    observation: Any,
    state: Any,
    episode_start: Any,
) -> None:
    """Raise a ``ValueError`` naming ``state`` or ``episode_start`` where its shape does not fit ``observation``."""
    n_envs = n_observations(observation, observation_space)
    if n_envs is None:
        return  # the policy's own checks report a malformed observation
    lstm = policy.lstm_actor
    expected = (lstm.num_layers, n_envs, lstm.hidden_size)
    if state is not None:
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise ValueError(
                f"{owner}: `state` must be the (hidden, cell) pair that predict() returned, each of shape {expected} "
                f"(n_lstm_layers, n_envs, lstm_hidden_size), or None; got {_describe(state)}"
            )
        for name, array in zip(("hidden", "cell"), state, strict=True):
            shape = np.shape(array)
            if tuple(shape) != expected:
                raise ValueError(
                    f"{owner}: `state` must be a (hidden, cell) pair of arrays of shape {expected} (n_lstm_layers, "
                    f"n_envs, lstm_hidden_size) for {n_envs} observation(s); its {name} state has shape {tuple(shape)}"
                )
    if episode_start is not None:
        size = np.size(episode_start)
        if size != n_envs or np.ndim(episode_start) > 2:
            raise ValueError(
                f"{owner}: `episode_start` must hold one bool per observation, shape ({n_envs},), or be None; got "
                f"shape {np.shape(episode_start)}"
            )


def _describe(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} item(s)"
    return f"{type(value).__name__} of shape {np.shape(value)}" if hasattr(value, "shape") else repr(value)
