"""The closed-form KL[pi_old(.|s), pi_theta(.|s)] of masked categorical policies, over the legal actions only.

sb3-contrib's ``MaskableCategorical`` replaces an illegal action's logit by -1e8, so its probability is 0 (it
underflows) and the remaining probabilities are those of the legal actions renormalised. The KL of two such
distributions with the same mask is therefore the KL of the renormalised legal-action distributions. Computing it
naively as ``sum p_old (log p_old - log p_new)`` over all entries happens to give that for -1e8, but not for a policy
that masks with -inf (``0 * (-inf - -inf) = nan``); here the illegal entries are removed explicitly, so each
contributes exactly 0 and no NaN/inf can appear, whatever value marks them.

The old distribution is kept per sample as its normalised (masked) log-probabilities, one row of ``mask_dim``
floats (:func:`masked_dist_params`), like KLPenaltyPPO's unmasked buffers do; the masks are stored next to it by
sb3-contrib's maskable rollout buffer. ``MultiDiscrete`` and ``MultiBinary`` policies are products of independent
categoricals (sb3-contrib's ``MaskableBernoulliDistribution`` is a 2-way categorical per dimension): their KL is the
sum over the factors.
"""

from __future__ import annotations

import torch as th
import torch.nn.functional as F
from sb3_contrib.common.maskable.distributions import (
    MaskableCategoricalDistribution,
    MaskableDistribution,
    MaskableMultiCategoricalDistribution,
)
from stable_baselines3.common.distributions import Distribution


def _factor_logits(distribution: Distribution) -> list[th.Tensor]:
    """The (masked, normalised) logits of each categorical factor of a built sb3-contrib maskable distribution."""
    if isinstance(distribution, MaskableCategoricalDistribution):
        return [distribution.distribution.logits]
    if isinstance(distribution, MaskableMultiCategoricalDistribution):  # also MaskableBernoulliDistribution
        return [factor.logits for factor in distribution.distributions]
    raise TypeError(
        f"The masked closed-form KL needs one of sb3-contrib's maskable categorical distributions, "
        f"got {type(distribution).__name__}"
    )


def has_masked_closed_form_kl(distribution: Distribution) -> bool:
    """Whether :func:`masked_closed_form_kl` supports this distribution (sb3-contrib's maskable categoricals)."""
    return isinstance(distribution, (MaskableCategoricalDistribution, MaskableMultiCategoricalDistribution))


def masked_dist_params(distribution: MaskableDistribution) -> th.Tensor:
    """Per-sample parameters of a built masked distribution: its log-probabilities, ``(batch, mask_dim)``."""
    return th.cat(_factor_logits(distribution), dim=1)


def masked_categorical_kl(old_logits: th.Tensor, new_logits: th.Tensor, masks: th.Tensor | None) -> th.Tensor:
    """KL[old || new] of categoricals restricted to the legal entries, per row, shape ``(batch,)``.

    Both distributions are renormalised over the entries where ``masks`` is True (illegal entries contribute 0,
    whatever their logits, -1e8 or -inf); ``masks=None`` means every entry is legal.

    :param old_logits: ``(batch, n)`` logits of the old distribution (normalised or not)
    :param new_logits: ``(batch, n)`` logits of the new distribution (normalised or not)
    :param masks: ``(batch, n)``, True (or 1) where the action is legal, or None
    """
    if masks is None:
        old_log_probs = F.log_softmax(old_logits, dim=-1)
        return (old_log_probs.exp() * (old_log_probs - F.log_softmax(new_logits, dim=-1))).sum(dim=-1)
    legal = masks.bool()
    very_negative = th.finfo(old_logits.dtype).min
    # the illegal logits are replaced by the lowest finite value before the softmax: probability 0, no inf - inf
    old_log_probs = F.log_softmax(th.where(legal, old_logits, very_negative), dim=-1)
    new_log_probs = F.log_softmax(th.where(legal, new_logits, very_negative), dim=-1)
    terms = old_log_probs.exp() * (old_log_probs - new_log_probs)
    return th.where(legal, terms, th.zeros((), dtype=terms.dtype, device=terms.device)).sum(dim=-1)


def masked_closed_form_kl(old_params: th.Tensor, new: Distribution, masks: th.Tensor | None) -> th.Tensor:
    """KL[old || new] per sample over the legal actions, ``old`` given by :func:`masked_dist_params`.

    :param old_params: ``(batch, mask_dim)`` from :func:`masked_dist_params` at rollout time
    :param new: the current policy's built maskable distribution on the same observations
    :param masks: ``(batch, mask_dim)`` action masks of the samples (True/1 = legal), or None (no masking)
    :return: shape ``(batch,)``, summed over the independent factors
    """
    new_logits = _factor_logits(new)
    sizes = [logits.shape[-1] for logits in new_logits]
    old_chunks = th.split(old_params, sizes, dim=1)
    mask_chunks: list[th.Tensor | None] = list(th.split(masks, sizes, dim=1)) if masks is not None else [None] * len(sizes)
    kls = [
        masked_categorical_kl(old, logits, mask) for old, logits, mask in zip(old_chunks, new_logits, mask_chunks, strict=True)
    ]
    return kls[0] if len(kls) == 1 else th.stack(kls, dim=1).sum(dim=1)
