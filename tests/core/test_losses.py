"""The loss terms against values computed by hand."""

import math

import pytest
import torch as th

from sb3_ppo_variants.core.losses import clip_fraction, kl_penalty_loss, reinforce_loss, surrogate_loss

RATIO = th.tensor([0.5, 0.9, 1.0, 1.1, 1.5])
ADV = th.tensor([1.0, -2.0, 3.0, -1.0, 2.0])


def test_clipped_surrogate_by_hand():
    # eps = 0.2: clip(r) = [0.8, 0.9, 1.0, 1.1, 1.2]
    # r*A       = [0.5, -1.8, 3.0, -1.1, 3.0]
    # clip(r)*A = [0.8, -1.8, 3.0, -1.1, 2.4]
    # min       = [0.5, -1.8, 3.0, -1.1, 2.4] -> mean = 3.0 / 5 = 0.6 -> loss = -0.6
    assert surrogate_loss(RATIO, ADV, 0.2).item() == pytest.approx(-0.6)


def test_clipped_surrogate_pessimistic_side():
    # negative advantage, ratio below 1 - eps: r*A = -0.5, clip(r)*A = -0.8, the pessimistic min keeps -0.8
    assert surrogate_loss(th.tensor([0.5]), th.tensor([-1.0]), 0.2).item() == pytest.approx(0.8)
    # positive advantage and ratio above 1 + eps: min(1.5, 1.2) = 1.2
    assert surrogate_loss(th.tensor([1.5]), th.tensor([1.0]), 0.2).item() == pytest.approx(-1.2)


def test_unclipped_surrogate_by_hand():
    # mean(r*A) = (0.5 - 1.8 + 3.0 - 1.1 + 3.0) / 5 = 3.6 / 5 = 0.72
    assert surrogate_loss(RATIO, ADV, None).item() == pytest.approx(-0.72)


def test_clip_fraction_by_hand():
    # |r - 1| > 0.2 for 0.5 and 1.5 only
    assert clip_fraction(RATIO, 0.2).item() == pytest.approx(0.4)


def test_kl_penalty_loss_by_hand():
    kl = th.tensor([0.01, 0.02, 0.03, 0.04, 0.0])  # mean 0.02
    # -(0.72 - 3 * 0.02) = -0.66
    assert kl_penalty_loss(RATIO, ADV, kl, beta=3.0).item() == pytest.approx(-0.66)
    # with clipping: -(0.6 - 3 * 0.02) = -0.54
    assert kl_penalty_loss(RATIO, ADV, kl, beta=3.0, clip_range=0.2).item() == pytest.approx(-0.54)


def test_reinforce_loss_and_gradient_by_hand():
    # pi = softmax(logits); gradient of -mean(log pi(a) * G) w.r.t. logits = -mean((onehot(a) - pi) * G)
    logits = th.tensor([[0.0, 0.0], [math.log(3.0), 0.0]], requires_grad=True)
    actions = th.tensor([0, 1])
    weights = th.tensor([1.0, -1.0])
    log_prob = th.distributions.Categorical(logits=logits).log_prob(actions)
    loss = reinforce_loss(log_prob, weights)
    # log pi = [log 0.5, log 0.25]; loss = -(log 0.5 * 1 + log 0.25 * -1) / 2 = -(log 2) / 2
    assert loss.item() == pytest.approx(-math.log(2) / 2)
    loss.backward()
    # row 0: pi = [0.5, 0.5], a = 0, G = 1:  -(1/2) * ([1, 0] - [0.5, 0.5]) * 1 = [-0.25, 0.25]
    # row 1: pi = [0.75, 0.25], a = 1, G = -1: -(1/2) * ([0, 1] - [0.75, 0.25]) * -1 = [-0.375, 0.375]
    expected = th.tensor([[-0.25, 0.25], [-0.375, 0.375]])
    assert th.allclose(logits.grad, expected)
