"""The PPO controls other libraries define (docs/controls.md), each checked against numbers worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch as th

from sb3_ppo_variants.common.controls import adapt_learning_rate, compute_gae, normalize_advantages
from sb3_ppo_variants.common.losses import dual_clip_fraction, surrogate_loss, value_loss

# ---------------------------------------------------------------------------------------------------- dual-clip

# eps = 0.2, c = 3
DC_RATIO = [0.5, 1.5, 4.0, 4.0, 1.1]
DC_ADV = [-1.0, -1.0, -1.0, 2.0, -2.0]


def test_dual_clip_value_and_gradient_by_hand():
    # sample  r    A    r*A   clip(r)*A  min    c*A   dual: A<0 -> max(min, c*A)   d objective / d r
    # 0       0.5  -1   -0.5  -0.8       -0.8   -3    -0.8                         0 (clipped term, constant)
    # 1       1.5  -1   -1.5  -1.2       -1.5   -3    -1.5                         A = -1
    # 2       4.0  -1   -4.0  -1.2       -4.0   -3    -3.0  (dual clip active)     0
    # 3       4.0   2    8.0   2.4        2.4    6     2.4  (A > 0: min only)      0
    # 4       1.1  -2   -2.2  -2.2       -2.2   -6    -2.2                         A = -2
    # objective mean = (-0.8 - 1.5 - 3.0 + 2.4 - 2.2) / 5 = -5.1 / 5 = -1.02 -> loss 1.02
    # d loss / d r = -(d objective / d r) / 5 = [0, 0.2, 0, 0, 0.4]
    ratio = th.tensor(DC_RATIO, requires_grad=True)
    loss = surrogate_loss(ratio, th.tensor(DC_ADV), 0.2, dual_clip=3.0)
    assert loss.item() == pytest.approx(1.02)
    loss.backward()
    assert th.allclose(ratio.grad, th.tensor([0.0, 0.2, 0.0, 0.0, 0.4]))
    assert dual_clip_fraction(ratio, th.tensor(DC_ADV), 3.0).item() == pytest.approx(0.2)  # sample 2 only


def test_without_dual_clip_the_negative_advantage_is_unbounded():
    # as above but sample 2 keeps min = -4.0 with gradient A = -1: loss = 6.1 / 5 = 1.22, d loss / d r_2 = 0.2
    ratio = th.tensor(DC_RATIO, requires_grad=True)
    loss = surrogate_loss(ratio, th.tensor(DC_ADV), 0.2)
    assert loss.item() == pytest.approx(1.22)
    loss.backward()
    assert th.allclose(ratio.grad, th.tensor([0.0, 0.2, 0.2, 0.0, 0.4]))


def test_dual_clip_needs_clipping():
    with pytest.raises(ValueError, match="needs a clip_range"):
        surrogate_loss(th.ones(2), th.ones(2), None, dual_clip=3.0)


# ---------------------------------------------------------------------------------------------------- value loss

V = [1.0, 2.0, 0.0, 3.0]
V_OLD = [0.5, 2.5, 0.0, 2.0]
RET = [2.0, 0.0, 1.0, 2.5]
# eps_vf = 0.2: V - V_old = [0.5, -0.5, 0, 1.0] -> clipped [0.2, -0.2, 0, 0.2] -> V_clip = [0.7, 2.3, 0.0, 2.2]
# (V - R)^2      = [1.0, 4.0, 1.0, 0.25]
# (V_clip - R)^2 = [1.69, 5.29, 1.0, 0.09]


def _value_loss_and_grad(clip_range_vf, form):
    values = th.tensor(V, requires_grad=True)
    loss = value_loss(values, th.tensor(V_OLD), th.tensor(RET), clip_range_vf, form)
    loss.backward()
    return loss.item(), values.grad


def test_unclipped_value_loss_by_hand():
    # mean([1, 4, 1, 0.25]) = 1.5625; d/dV = 2 (V - R) / 4 = [-0.5, 1.0, -0.5, 0.25]
    loss, grad = _value_loss_and_grad(None, "prediction")
    assert loss == pytest.approx(1.5625)
    assert th.allclose(grad, th.tensor([-0.5, 1.0, -0.5, 0.25]))
    assert _value_loss_and_grad(None, "max")[0] == pytest.approx(1.5625)  # without clipping both forms are the MSE


def test_sb3_value_clipping_by_hand():
    # mean((R - V_clip)^2) = (1.69 + 5.29 + 1.0 + 0.09) / 4 = 2.0175
    # gradient only where the clip is inactive (sample 2): 2 (0 - 1) / 4 = -0.5
    loss, grad = _value_loss_and_grad(0.2, "prediction")
    assert loss == pytest.approx(2.0175)
    assert th.allclose(grad, th.tensor([0.0, 0.0, -0.5, 0.0]))


def test_max_form_value_clipping_by_hand():
    # max = [1.69 (clipped), 5.29 (clipped), 1.0 (equal), 0.25 (unclipped)] -> mean = 8.23 / 4 = 2.0575
    # gradient where the unclipped error is kept: sample 2 (2 (0 - 1) / 4 = -0.5) and sample 3 (2 (3 - 2.5) / 4 = 0.25);
    # sample 3 is where the forms differ: SB3's clipped prediction gives it no gradient
    loss, grad = _value_loss_and_grad(0.2, "max")
    assert loss == pytest.approx(2.0575)
    assert th.allclose(grad, th.tensor([0.0, 0.0, -0.5, 0.25]))


def test_unknown_value_clip_form():
    with pytest.raises(ValueError, match="'prediction' or 'max'"):
        value_loss(th.ones(2), th.ones(2), th.ones(2), 0.2, "huber")


# ---------------------------------------------------------------------------------------------------- learning-rate rule


@pytest.mark.parametrize(
    ("lr", "kl", "expected"),
    [
        (1e-3, 0.03, 1e-3 / 1.5),  # kl > 2 * 0.01: divide
        (1e-3, 0.001, 1.5e-3),  # kl < 0.01 / 2: multiply
        (1e-3, 0.01, 1e-3),  # inside the band: unchanged
        (1e-3, 0.02, 1e-3),  # on the upper threshold (strict >): unchanged
        (1e-3, 0.005, 1e-3),  # on the lower threshold (strict <): unchanged
        (1e-3, 0.0, 1.5e-3),  # no change of policy yet (first minibatch): multiply
        (1.2e-5, 0.5, 1e-5),  # 8e-6 clamped to the lower bound
        (8e-3, 0.0001, 1e-2),  # 1.2e-2 clamped to the upper bound
        (1e-5, 0.5, 1e-5),  # at the lower bound and told to go lower: stays
        (1e-2, 0.0, 1e-2),  # at the upper bound and told to go higher: stays
        (1e-3, float("nan"), 1e-3 / 1.5),  # a diverged KL lowers the rate
        (1e-3, float("inf"), 1e-3 / 1.5),
    ],
)
def test_adaptive_learning_rate_rule_defaults(lr, kl, expected):
    assert adapt_learning_rate(lr, kl, 0.01) == pytest.approx(expected, rel=1e-12)


def test_adaptive_learning_rate_rule_parameters():
    # margin 1.5, factor 2, bounds [1e-4, 4e-3], target 0.02: thresholds 0.03 and 0.02 / 1.5 = 0.01333
    rule = dict(kl_margin=1.5, factor=2.0, lr_min=1e-4, lr_max=4e-3)
    assert adapt_learning_rate(1e-3, 0.031, 0.02, **rule) == pytest.approx(5e-4)
    assert adapt_learning_rate(1e-3, 0.029, 0.02, **rule) == pytest.approx(1e-3)
    assert adapt_learning_rate(1e-3, 0.014, 0.02, **rule) == pytest.approx(1e-3)
    assert adapt_learning_rate(1e-3, 0.013, 0.02, **rule) == pytest.approx(2e-3)
    assert adapt_learning_rate(3e-3, 0.0, 0.02, **rule) == pytest.approx(4e-3)
    assert adapt_learning_rate(1.5e-4, 1.0, 0.02, **rule) == pytest.approx(1e-4)


# ---------------------------------------------------------------------------------------------------- GAE, normalisation


def test_gae_by_hand():
    # gamma = lambda = 0.5, two envs, three steps
    # env 0: r = [1, 0, 2], V = [0.5, 1, 1], s_2 starts a new episode (s_1 was terminal), V(s_3) = 2, not done
    #   t=2: delta = 2 + 0.5 * 2 - 1 = 2                      A = 2
    #   t=1: next is a new episode: delta = 0 - 1 = -1         A = -1
    #   t=0: delta = 1 + 0.5 * 1 - 0.5 = 1                    A = 1 + 0.25 * (-1) = 0.75
    # env 1: r = [0, 0, 1], V = 0, no episode start, s_3 begins a new episode (done): V(s_3) = 4 is not used
    #   t=2: delta = 1, A = 1;  t=1: A = 0 + 0.25 * 1 = 0.25;  t=0: A = 0.0625
    rewards = np.array([[1.0, 0.0], [0.0, 0.0], [2.0, 1.0]], dtype=np.float32)
    values = np.array([[0.5, 0.0], [1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    starts = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    advantages, returns = compute_gae(rewards, values, starts, np.array([2.0, 4.0]), np.array([False, True]), 0.5, 0.5)
    np.testing.assert_allclose(advantages, [[0.75, 0.0625], [-1.0, 0.25], [2.0, 1.0]])
    np.testing.assert_allclose(returns, [[1.25, 0.0625], [0.0, 0.25], [3.0, 1.0]])


def test_normalize_advantages_by_hand():
    # A = [1, 2, 3, 6]: mean 3, sample std sqrt((4 + 1 + 0 + 9) / 3) = sqrt(14 / 3)
    expected = (np.array([1.0, 2.0, 3.0, 6.0]) - 3.0) / (math.sqrt(14 / 3) + 1e-8)
    np.testing.assert_allclose(normalize_advantages(np.array([1, 2, 3, 6], dtype=np.float32)), expected, rtol=1e-6)
    np.testing.assert_allclose(normalize_advantages(th.tensor([1.0, 2.0, 3.0, 6.0])).numpy(), expected, rtol=1e-6)
