"""The recurrent buffers give sb3-contrib's RecurrentRolloutBuffer's minibatches, field by field."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib.common.recurrent.buffers import RecurrentDictRolloutBuffer, RecurrentRolloutBuffer
from sb3_contrib.common.recurrent.type_aliases import RNNStates

from sb3_ppo_variants.recurrent.buffers import (
    RecurrentDictSequenceRolloutBuffer,
    RecurrentRewardToGoRolloutBuffer,
    RecurrentSequenceRolloutBuffer,
    Sequences,
)

N_STEPS, N_ENVS, LAYERS, HIDDEN = 12, 3, 2, 4
SHAPE = (N_STEPS, LAYERS, N_ENVS, HIDDEN)


def _fill(buffers, observation_space, action_space, seed=0, **extra):
    """The same random rollout (episode starts included) into every buffer."""
    rng = np.random.default_rng(seed)
    for _ in range(N_STEPS):
        if isinstance(observation_space, spaces.Dict):
            obs = {
                key: rng.normal(size=(N_ENVS, *space.shape)).astype(np.float32)
                for key, space in observation_space.spaces.items()
            }
        else:
            obs = rng.normal(size=(N_ENVS, *observation_space.shape)).astype(np.float32)
        action = rng.integers(0, action_space.n, size=(N_ENVS, 1))
        reward = rng.normal(size=N_ENVS).astype(np.float32)
        start = rng.random(N_ENVS) < 0.3
        value, log_prob = (
            th.as_tensor(rng.normal(size=(N_ENVS, 1)), dtype=th.float32),
            th.as_tensor(rng.normal(size=N_ENVS), dtype=th.float32),
        )
        states = RNNStates(
            *(
                tuple(th.as_tensor(rng.normal(size=(LAYERS, N_ENVS, HIDDEN)), dtype=th.float32) for _ in range(2))
                for _ in range(2)
            )
        )
        step_extra = {key: make(rng) for key, make in extra.items()}
        for buffer in buffers:
            kwargs = {} if type(buffer) in (RecurrentRolloutBuffer, RecurrentDictRolloutBuffer) else step_extra
            buffer.add(obs, action, reward, start, value, log_prob, lstm_states=states, **kwargs)
    last = th.as_tensor(rng.normal(size=(N_ENVS, 1)), dtype=th.float32)
    dones = rng.random(N_ENVS) < 0.5
    for buffer in buffers:
        buffer.compute_returns_and_advantage(last, dones)


def _assert_same(ours, reference):
    for name in ("actions", "old_values", "old_log_prob", "advantages", "returns", "episode_starts", "mask"):
        assert th.equal(getattr(ours, name).to(th.float32), getattr(reference, name).to(th.float32)), name
    if isinstance(reference.observations, dict):
        for key in reference.observations:
            assert th.equal(ours.observations[key], reference.observations[key]), key
    else:
        assert th.equal(ours.observations, reference.observations)
    for ours_half, reference_half in zip(ours.lstm_states, reference.lstm_states, strict=True):
        for a, b in zip(ours_half, reference_half, strict=True):
            assert th.equal(a, b)


@pytest.mark.parametrize("batch_size", [None, 5, 8, 36])
@pytest.mark.parametrize("dict_obs", [False, True])
def test_same_minibatches_as_sb3_contrib(batch_size, dict_obs):
    action_space = spaces.Discrete(3)
    if dict_obs:
        observation_space = spaces.Dict({"a": spaces.Box(-1, 1, (2,)), "b": spaces.Box(-1, 1, (3,))})
        classes = (RecurrentDictSequenceRolloutBuffer, RecurrentDictRolloutBuffer)
    else:
        observation_space = spaces.Box(-1, 1, (2,))
        classes = (RecurrentSequenceRolloutBuffer, RecurrentRolloutBuffer)
    ours, reference = (cls(N_STEPS, observation_space, action_space, SHAPE, "cpu", n_envs=N_ENVS) for cls in classes)
    _fill([ours, reference], observation_space, action_space)
    for epoch in range(3):
        np.random.seed(epoch)
        expected = list(reference.get(batch_size))
        np.random.seed(epoch)
        got = list(ours.get(batch_size))
        assert len(got) == len(expected)
        for a, b in zip(got, expected, strict=True):
            _assert_same(a, b)


def test_stored_fields_are_padded_with_the_last_real_step():
    observation_space, action_space = spaces.Box(-1, 1, (2,)), spaces.Discrete(3)
    buffer = RecurrentSequenceRolloutBuffer(
        N_STEPS, observation_space, action_space, SHAPE, "cpu", n_envs=N_ENVS, dist_params_dim=3, mask_dim=3
    )
    extra = dict(
        dist_params=lambda rng: th.as_tensor(rng.normal(size=(N_ENVS, 3)), dtype=th.float32),
        action_masks=lambda rng: rng.random((N_ENVS, 3)) < 0.7,
    )
    _fill([buffer], observation_space, action_space, **extra)
    np.random.seed(0)
    for batch in buffer.get(7):
        real = batch.mask > 0
        n_seq = batch.lstm_states.pi[0].shape[1]
        params = batch.old_dist_params.reshape(n_seq, -1, 3)
        masks = batch.action_masks.reshape(n_seq, -1, 3)
        lengths = real.reshape(n_seq, -1).sum(dim=1)
        for seq, length in enumerate(lengths.tolist()):
            assert th.equal(params[seq, length:], params[seq, length - 1].expand_as(params[seq, length:]))
            assert th.equal(masks[seq, length:], masks[seq, length - 1].expand_as(masks[seq, length:]))
    # the stored values themselves, in the flattened (env-major) order
    flat = buffer.samples_in_order()
    assert th.equal(flat.old_dist_params[flat.mask > 0], th.as_tensor(buffer.dist_params))


def test_sequences_cut_at_episode_starts_and_at_the_first_step():
    starts = np.array([0, 0, 1, 0, 0, 0, 1, 1, 0], dtype=bool)
    seq = Sequences(np.array([1, 2, 3, 4, 5, 6, 7, 8]), starts)
    # minibatch steps 1..8: sequences [1], [2, 3, 4, 5], [6], [7, 8]
    assert seq.start_positions.tolist() == [0, 1, 5, 6] and seq.max_length == 4
    assert seq.indices.reshape(4, 4).tolist() == [[1, 1, 1, 1], [2, 3, 4, 5], [6, 6, 6, 6], [7, 8, 8, 8]]
    assert seq.real.reshape(4, 4).sum(axis=1).tolist() == [1, 4, 1, 2]


def test_reward_to_go_buffer_masks_the_steps_of_unknown_return():
    observation_space, action_space = spaces.Box(-1, 1, (2,)), spaces.Discrete(3)
    buffer = RecurrentRewardToGoRolloutBuffer(N_STEPS, observation_space, action_space, SHAPE, "cpu", n_envs=N_ENVS)
    _fill([buffer], observation_space, action_space)
    np.random.seed(0)
    (batch,) = list(buffer.get(None))
    real = batch.mask > 0
    assert int(real.sum()) == int(buffer.valid.sum())
    # the masked-out steps are each env's last steps after its last episode start (unfinished episodes)
    assert th.equal(batch.advantages[real].sort().values, th.as_tensor(buffer.advantages[buffer.valid]).sort().values)
