"""Lean construction of SB3's action distributions: the same numbers and random draws, fewer calls.

Every ``torch.distributions`` object re-derives its batch shape and normalises its parameters through generic code,
a noticeable share of a small MLP's step. :func:`action_distribution` is SB3's ``policy._get_action_dist_from_latent``
for the exact classes :class:`~stable_baselines3.common.distributions.CategoricalDistribution`,
:class:`~stable_baselines3.common.distributions.DiagGaussianDistribution` and
:class:`~stable_baselines3.common.distributions.StateDependentNoiseDistribution` (gSDE), whose ``distribution``
attribute becomes a :class:`LeanCategorical` / :class:`LeanNormal`. These are subclasses of torch's ``Categorical`` /
``Normal`` with the same parameters and the same arithmetic for the normalised logits, the probabilities, the samples,
``log_prob`` and ``entropy`` (so the random draws and the sampled actions are those of SB3), built without torch's
generic constructor. Any other distribution, or a policy class that overrides ``_get_action_dist_from_latent``, goes
through SB3's method (see :mod:`sb3_ppo_variants._lean.structure` for when the fast paths run at all).

The lean classes set private attributes of torch's distributions (``_param``, ``_num_events``, ``_batch_shape``, ...)
and of SB3's gSDE distribution (``_latent_sde``). :func:`lean_distributions_available` checks once per process, on
small tensors, that they still give exactly torch's and SB3's numbers and draws; where they do not (a renamed
internal in a new release), SB3's method runs. :func:`no_distribution_validation` likewise touches torch's
validation flag only where it can read it.
"""

from __future__ import annotations

import functools

import torch as th
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy
from torch.distributions import Categorical, Normal

from sb3_ppo_variants._lean.modules import run_module
from sb3_ppo_variants.core import internals


class LeanCategorical(Categorical):
    """``Categorical(logits=...)`` for a ``(batch, n)`` logits tensor, built without torch's generic constructor.

    Same normalisation (``logits - logsumexp``), same ``probs`` (softmax, computed on first use), same sampling;
    ``log_prob`` gathers the stored actions' log-probabilities directly and ``entropy`` is torch's formula.
    """

    def __init__(self, logits: th.Tensor) -> None:
        self.logits = logits - logits.logsumexp(dim=-1, keepdim=True)
        self._param = self.logits
        self._num_events = logits.shape[-1]
        self._batch_shape = logits.shape[:-1]
        self._event_shape = th.Size()

    def log_prob(self, value: th.Tensor) -> th.Tensor:
        """Log-probability of the actions ``value`` (shape ``(batch,)``)."""
        if value.shape != self._batch_shape:
            return super().log_prob(value)
        return self.logits.gather(-1, value.long().unsqueeze(-1)).squeeze(-1)

    def entropy(self) -> th.Tensor:
        """Entropy per sample (torch's formula: ``-sum(p * clamp(log p))``)."""
        logits = th.clamp(self.logits, min=th.finfo(self.logits.dtype).min)
        return -(logits * self.probs).sum(-1)


class LeanNormal(Normal):
    """``Normal(loc, scale)`` for two tensors of the same shape, built without torch's generic constructor
    (argument broadcasting and batch-shape bookkeeping); torch's own ``log_prob``, ``entropy`` and sampling."""

    def __init__(self, loc: th.Tensor, scale: th.Tensor) -> None:
        self.loc = loc
        self.scale = scale
        self._batch_shape = loc.shape
        self._event_shape = th.Size()


def _same(a: th.Tensor, b: th.Tensor) -> bool:
    return a.shape == b.shape and bool(th.equal(a, b))


def _draws(distribution: th.distributions.Distribution) -> th.Tensor:
    with th.random.fork_rng():
        th.manual_seed(0)
        return distribution.sample()


def _lean_matches_torch() -> bool:
    logits = th.linspace(-2.0, 3.0, 12).reshape(3, 4)
    reference, lean = Categorical(logits=logits), LeanCategorical(logits)
    actions = th.tensor([0, 3, 1])
    categorical = (
        _same(reference.logits, lean.logits)
        and _same(reference.probs, lean.probs)
        and _same(reference.log_prob(actions), lean.log_prob(actions))
        and _same(reference.entropy(), lean.entropy())
        and _same(_draws(reference), _draws(lean))
    )
    loc, scale = th.linspace(-1.0, 1.0, 6).reshape(3, 2), th.linspace(0.5, 2.0, 6).reshape(3, 2)
    normal, lean_normal = Normal(loc, scale), LeanNormal(loc, scale)
    value = th.zeros(3, 2)
    gaussian = (
        _same(normal.log_prob(value), lean_normal.log_prob(value))
        and _same(normal.entropy(), lean_normal.entropy())
        and _same(_draws(normal), _draws(lean_normal))
        and normal.batch_shape == lean_normal.batch_shape
    )
    return categorical and gaussian


def _lean_gsde_matches_sb3() -> bool:
    sb3, ours = StateDependentNoiseDistribution(2), StateDependentNoiseDistribution(2)
    _, log_std = sb3.proba_distribution_net(latent_dim=3, log_std_init=-0.5)
    mean, latent = th.linspace(-1.0, 1.0, 8).reshape(4, 2), th.linspace(-2.0, 2.0, 12).reshape(4, 3)
    sb3.proba_distribution(mean, log_std, latent)
    variance = th.mm(latent**2, ours.get_std(log_std) ** 2)
    ours._latent_sde = latent
    ours.distribution = LeanNormal(mean, th.sqrt(variance + ours.epsilon))
    return _same(sb3.distribution.scale, ours.distribution.scale) and _same(sb3._latent_sde, ours._latent_sde)


@functools.cache
def lean_distributions_available() -> bool:
    """Whether the lean classes give exactly torch's and SB3's numbers and draws in this process (checked once)."""
    try:
        # the check draws random numbers and initialises a layer: the caller's random state must not move
        with th.random.fork_rng(), th.no_grad():
            return _lean_matches_torch() and _lean_gsde_matches_sb3()
    except Exception:  # any change of the internals we rely on: use SB3's own construction
        return False


class no_distribution_validation:
    """Skip torch's argument validation of distributions inside our own computations, and restore the user's setting.

    Validation re-checks every logits/scale tensor each time a distribution is built (a noticeable share of a small
    MLP's step); our explicit checks cover what it would catch: non-finite environment output in every rollout step
    and non-finite losses or parameters after every update. Callbacks and user code run outside this scope. Where the
    current setting cannot be read (torch's private ``Distribution._validate_args``), nothing is changed.

    A plain class rather than a generator context manager: the rollout loop enters it at every step, and one instance
    may be entered again after it was exited.
    """

    def __enter__(self) -> None:
        previous = internals.private(th.distributions.Distribution, "_validate_args")
        self._previous = previous if isinstance(previous, bool) else None
        if self._previous is not None:
            th.distributions.Distribution.set_default_validate_args(False)

    def __exit__(self, *exc_info: object) -> None:
        if self._previous is not None:
            th.distributions.Distribution.set_default_validate_args(self._previous)


def action_distribution(policy: ActorCriticPolicy, latent_pi: th.Tensor) -> Distribution:
    """SB3's ``policy._get_action_dist_from_latent(latent_pi)``, with the lean torch distributions where they apply."""
    dist = policy.action_dist
    if (
        type(policy)._get_action_dist_from_latent is ActorCriticPolicy._get_action_dist_from_latent
        and lean_distributions_available()
    ):
        dist_type = type(dist)
        if dist_type is CategoricalDistribution:
            dist.distribution = LeanCategorical(run_module(policy.action_net, latent_pi))  # type: ignore[attr-defined]
            return dist
        if dist_type is DiagGaussianDistribution:
            mean = run_module(policy.action_net, latent_pi)
            # SB3: Normal(mean, ones_like(mean) * exp(log_std))
            dist.distribution = LeanNormal(mean, th.ones_like(mean) * policy.log_std.exp())  # type: ignore[attr-defined]
            return dist
        if dist_type is StateDependentNoiseDistribution:
            assert isinstance(dist, StateDependentNoiseDistribution)
            mean = run_module(policy.action_net, latent_pi)
            # SB3's proba_distribution: std of a_j = sqrt(sum_i latent_i^2 * sigma_ij^2 + eps)
            dist._latent_sde = latent_pi if dist.learn_features else latent_pi.detach()
            variance = th.mm(dist._latent_sde**2, dist.get_std(policy.log_std) ** 2)
            dist.distribution = LeanNormal(mean, th.sqrt(variance + dist.epsilon))
            return dist
    return policy._get_action_dist_from_latent(latent_pi)
