"""The core: the shared algorithm, in torch only (loop, hooks, losses, buffers, controls, checks, persistence).

:mod:`~sb3_ppo_variants.core.algorithm` holds :class:`~sb3_ppo_variants.core.algorithm.PolicyGradientAlgorithm`;
the algorithms (``clip_ppo/``, ``kl_penalty_ppo/``, ``reinforce/``) and the feature folders (``masking/``) build on it.
Speed paths are not here: they live in :mod:`sb3_ppo_variants._lean`, which the core reaches through its gate alone.
"""
