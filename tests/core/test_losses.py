"""The loss terms against values computed by hand."""

import math

import pytest
import torch as th

from sb3_ppo_variants.core.losses import (
    clip_fraction,
    clip_fractions,
    kl_penalty_loss,
    reinforce_loss,
    spo_loss,
    surrogate_loss,
)

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


# --------------------------------------------------------------------------- clip-higher (DAPO) and SPO
# crafted samples at and past each boundary of [1 - 0.2, 1 + 0.28], both signs of the advantage
ASYM = (0.2, 0.28)
ASYM_RATIO = th.tensor([0.7, 0.7, 0.8, 1.28, 1.4, 1.4, 1.25])
ASYM_ADV = th.tensor([1.0, -1.0, -1.0, 1.0, 1.0, -1.0, 1.0])


def test_asymmetric_surrogate_value_and_gradient_by_hand():
    # clip(r) to [0.8, 1.28]:         [0.8, 0.8, 0.8, 1.28, 1.28, 1.28, 1.25]
    # min(r A, clip(r) A):            [0.7 (r A), -0.8 (clip), -0.8 (tie), 1.28 (tie), 1.28 (clip), -1.4 (r A), 1.25]
    # d/dr of the min: A where r A is the min or on a tie at a boundary (half each, and clamp passes its boundary),
    # 0 where the clipped term is the min:   [1, 0, -1, 1, 0, -1, 1]
    ratio = ASYM_RATIO.clone().requires_grad_(True)
    loss = surrogate_loss(ratio, ASYM_ADV, ASYM)
    assert loss.item() == pytest.approx(-(0.7 - 0.8 - 0.8 + 1.28 + 1.28 - 1.4 + 1.25) / 7)
    loss.backward()
    expected = -th.tensor([1.0, 0.0, -1.0, 1.0, 0.0, -1.0, 1.0]) / 7
    assert th.allclose(ratio.grad, expected)


def test_asymmetric_clip_lets_a_positive_advantage_grow_past_the_symmetric_bound():
    # r = 1.25 with A > 0: inside 1 + 0.28 (full gradient), outside 1 + 0.2 (clipped, no gradient)
    for clip_range, objective, grad in (((0.2, 0.28), 1.25, 1.0), (0.2, 1.2, 0.0)):
        ratio = th.tensor([1.25], requires_grad=True)
        loss = surrogate_loss(ratio, th.tensor([1.0]), clip_range)
        loss.backward()
        assert loss.item() == pytest.approx(-objective)
        assert ratio.grad.item() == -grad  # the loss is minus the objective
    # the low side is the symmetric one's: a negative advantage is clipped below 1 - 0.2 in both
    assert surrogate_loss(th.tensor([0.7]), th.tensor([-1.0]), (0.2, 0.28)).item() == pytest.approx(0.8)


def test_equal_sides_are_the_symmetric_clip_bit_for_bit():
    ratio = th.exp(0.3 * th.randn(1000, generator=th.Generator().manual_seed(0)))
    advantages = th.randn(1000, generator=th.Generator().manual_seed(1))
    for eps in (0.1, 0.2, 0.3):
        assert th.equal(surrogate_loss(ratio, advantages, (eps, eps)), surrogate_loss(ratio, advantages, eps))
        assert th.equal(clip_fractions(ratio, (eps, eps))["clip_fraction"], clip_fraction(ratio, eps))


def test_clip_fractions_per_side_by_hand():
    # RATIO = [0.5, 0.9, 1.0, 1.1, 1.5] with [1 - 0.2, 1 + 0.28]: 0.5 below, 1.5 above
    fractions = clip_fractions(RATIO, (0.2, 0.28))
    assert fractions["clip_fraction_low"].item() == pytest.approx(0.2)
    assert fractions["clip_fraction_high"].item() == pytest.approx(0.2)
    assert fractions["clip_fraction"].item() == pytest.approx(0.4)
    # (0.05, 0.3): 0.5 and 0.9 below 0.95; nothing above 1.3 but 1.5
    fractions = clip_fractions(RATIO, (0.05, 0.3))
    assert [fractions[k].item() for k in ("clip_fraction_low", "clip_fraction_high")] == pytest.approx([0.4, 0.2])


# SPO, eps = 0.2: L = r A - |A| / 0.4 * (r - 1)^2, dL/dr = A - |A| (r - 1) / 0.2
SPO_RATIO = th.tensor([1.2, 1.5, 0.8, 0.5, 1.0, 1.1, 1.3])
SPO_ADV = th.tensor([1.0, 1.0, -1.0, -2.0, 3.0, -1.0, 0.0])


def test_spo_loss_value_and_gradient_by_hand():
    # L per sample:   1.2 - 2.5 * 0.04 = 1.1        (A > 0, at its optimum 1 + eps)
    #                 1.5 - 2.5 * 0.25 = 0.875      (A > 0, past it)
    #                -0.8 - 2.5 * 0.04 = -0.9       (A < 0, at its optimum 1 - eps)
    #                -1.0 - 5.0 * 0.25 = -2.25      (A < 0, past it)
    #                 3.0 - 0          = 3.0        (r = 1)
    #                -1.1 - 2.5 * 0.01 = -1.125     (A < 0, ratio on the wrong side)
    #                 0                             (A = 0: no term at all)
    # dL/dr:          1 - 0.2 / 0.2 = 0;  1 - 0.5 / 0.2 = -1.5;  -1 + 0.2 / 0.2 = 0;  -2 + 2 * 0.5 / 0.2 = 3;  3;
    #                -1 - 0.1 / 0.2 = -1.5;  0
    ratio = SPO_RATIO.clone().requires_grad_(True)
    loss = spo_loss(ratio, SPO_ADV, 0.2)
    assert loss.item() == pytest.approx(-(1.1 + 0.875 - 0.9 - 2.25 + 3.0 - 1.125) / 7)
    loss.backward()
    assert th.allclose(ratio.grad, -th.tensor([0.0, -1.5, 0.0, 3.0, 3.0, -1.5, 0.0]) / 7, atol=1e-6)


def test_spo_objective_peaks_at_the_clip_boundary():
    """For each sample the objective is largest at r = 1 + sign(A) eps (the paper's point: it stays at the boundary)."""
    grid = th.linspace(0.5, 1.5, 2001)
    for advantage, peak in ((2.0, 1.1), (-0.5, 0.9)):
        objective = -th.stack([spo_loss(r.reshape(1), th.tensor([advantage]), 0.1) for r in grid])
        assert grid[objective.argmax()].item() == pytest.approx(peak, abs=1e-3)
