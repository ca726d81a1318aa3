"""Closed-form KL against torch's kl_divergence; sample estimates against the closed form."""

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    BernoulliDistribution,
    CategoricalDistribution,
    DiagGaussianDistribution,
    MultiCategoricalDistribution,
    StateDependentNoiseDistribution,
    make_proba_distribution,
)
from torch.distributions import Bernoulli, Categorical, Independent, Normal, kl_divergence

from sb3_ppo_variants.kl_penalty_ppo.kl import (
    closed_form_kl,
    dist_params,
    dist_params_dim,
    has_closed_form_kl,
    sample_kl_k1,
    sample_kl_k3,
)

BATCH = 7


def _gen(seed):
    return th.Generator().manual_seed(seed)


def _categorical(seed, n=4):
    d = CategoricalDistribution(n)
    return d.proba_distribution(th.randn(BATCH, n, generator=_gen(seed)))


def _multi_categorical(seed, nvec=(3, 2, 4)):
    d = MultiCategoricalDistribution(list(nvec))
    return d.proba_distribution(th.randn(BATCH, sum(nvec), generator=_gen(seed)))


def _bernoulli(seed, n=5):
    d = BernoulliDistribution(n)
    return d.proba_distribution(th.randn(BATCH, n, generator=_gen(seed)))


def _gaussian(seed, n=3):
    d = DiagGaussianDistribution(n)
    g = _gen(seed)
    return d.proba_distribution(th.randn(BATCH, n, generator=g), 0.5 * th.randn(n, generator=g))


def _gsde(seed, n=3, latent=6):
    d = StateDependentNoiseDistribution(n)
    g = _gen(seed)
    d.proba_distribution(
        th.randn(BATCH, n, generator=g), 0.3 * th.randn(latent, n, generator=g), th.randn(BATCH, latent, generator=g)
    )
    return d


def _torch_view(dist):
    """The torch distribution over whole actions (independent factors joined)."""
    if isinstance(dist, CategoricalDistribution):
        return dist.distribution
    if isinstance(dist, BernoulliDistribution):
        return Independent(dist.distribution, 1)
    if isinstance(dist, (DiagGaussianDistribution, StateDependentNoiseDistribution)):
        return Independent(dist.distribution, 1)
    raise AssertionError(dist)


MAKERS = {"categorical": _categorical, "bernoulli": _bernoulli, "gaussian": _gaussian, "gsde": _gsde}


@pytest.mark.parametrize("kind", sorted(MAKERS))
def test_closed_form_equals_torch_kl_divergence(kind):
    old, new = MAKERS[kind](0), MAKERS[kind](1)
    ours = closed_form_kl(dist_params(old), new)
    reference = kl_divergence(_torch_view(old), _torch_view(new))
    assert ours.shape == (BATCH,)
    assert th.allclose(ours, reference, rtol=1e-5, atol=1e-6)
    # KL of a distribution with itself is 0
    assert th.allclose(closed_form_kl(dist_params(new), new), th.zeros(BATCH), atol=1e-6)


def test_multi_categorical_closed_form_is_the_sum_over_factors():
    old, new = _multi_categorical(0), _multi_categorical(1)
    reference = sum(kl_divergence(o, n) for o, n in zip(old.distribution, new.distribution, strict=True))
    assert th.allclose(closed_form_kl(dist_params(old), new), reference, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("space", "dim"),
    [
        (spaces.Discrete(5), 5),
        (spaces.MultiDiscrete([3, 2, 4]), 9),
        (spaces.MultiBinary(6), 6),
        (spaces.Box(-1, 1, (3,)), 6),
    ],
)
def test_params_width_matches_the_space(space, dim):
    assert dist_params_dim(space) == dim
    dist = make_proba_distribution(space)
    assert has_closed_form_kl(dist)
    latent = th.randn(BATCH, 8)
    net = dist.proba_distribution_net(8)
    net = net[0] if isinstance(net, tuple) else net
    if isinstance(dist, DiagGaussianDistribution):
        built = dist.proba_distribution(net(latent), th.zeros(3))
    else:
        built = dist.proba_distribution(net(latent))
    assert dist_params(built).shape == (BATCH, dim)


@pytest.mark.parametrize("kind", ["categorical", "bernoulli", "gaussian"])
def test_sample_estimates_agree_with_closed_form(kind):
    """With 100k actions drawn from pi_old, k1 and k3 match the exact KL within 4 standard errors."""
    th.manual_seed(0)
    n = 100_000
    maker = MAKERS[kind]
    # one state repeated: the estimate is then of a single KL value
    old_one, new_one = maker(2), maker(3)
    old_view, new_view = _torch_view(old_one), _torch_view(new_one)
    exact = kl_divergence(old_view, new_view)[0].item()
    old_dist = _expand_first(old_view, n)
    new_dist = _expand_first(new_view, n)
    actions = old_dist.sample()
    log_ratio = new_dist.log_prob(actions) - old_dist.log_prob(actions)
    for estimator in (sample_kl_k1, sample_kl_k3):
        values = estimator(log_ratio).double()
        stderr = values.std().item() / np.sqrt(n)
        assert abs(values.mean().item() - exact) < 4 * stderr + 1e-9, (estimator.__name__, values.mean().item(), exact)
    assert (sample_kl_k3(log_ratio) >= 0).all()
    assert exact > 1e-3


def _expand_first(dist, n):
    if isinstance(dist, Categorical):
        return Categorical(logits=dist.logits[:1].expand(n, -1))
    base = dist.base_dist
    if isinstance(base, Bernoulli):
        return Independent(Bernoulli(logits=base.logits[:1].expand(n, -1)), 1)
    return Independent(Normal(base.loc[:1].expand(n, -1), base.scale[:1].expand(n, -1)), 1)
