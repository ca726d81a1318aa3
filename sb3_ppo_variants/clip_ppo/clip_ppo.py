"""ClipPPO: PPO with the clipped surrogate objective (Schulman et al. 2017, arXiv 1707.06347, section 3)."""

from __future__ import annotations

from typing import Any

import torch as th
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule
from stable_baselines3.common.utils import FloatSchedule

from sb3_ppo_variants.core.algorithm import PolicyGradientAlgorithm
from sb3_ppo_variants.core.backends import PolicyOutputs
from sb3_ppo_variants.core.checks import check_clip_range, check_dual_clip
from sb3_ppo_variants.core.losses import clip_fraction, clip_fractions, dual_clip_fraction, surrogate_loss


class ClipPPO(PolicyGradientAlgorithm):
    """Proximal Policy Optimization with the clipped surrogate objective.

    Paper: https://arxiv.org/abs/1707.06347 (eq. 7 and 9). The loss of a minibatch is
    ``-L^CLIP + c1 * L^VF - c2 * H``, with ``L^CLIP = E[min(r A, clip(r, 1 - eps, 1 + eps) A)]``.
    ``clip_range=None`` gives the unclipped surrogate ``L^CPI = E[r A]`` (the paper's "no clipping or
    penalty" baseline); ``clip_range=(eps_low, eps_high)`` clips the ratio to ``[1 - eps_low, 1 + eps_high]``
    ("clip-higher", DAPO: Yu et al. 2025, https://arxiv.org/abs/2503.14476). With the same arguments and seed,
    ClipPPO computes what SB3's ``PPO`` computes; its parameters and defaults are SB3 ``PPO``'s.

    :param policy: The policy: an alias (``MlpPolicy``, ``CnnPolicy``, ``MultiInputPolicy``) or a policy class
    :param env: The environment: a Gymnasium env, a VecEnv, or a registered id such as ``"CartPole-v1"``
    :param learning_rate: Adam's step size: a float, a schedule (called with the progress remaining, 1 at the start and 0 at
        the end) or ``"lin_<float>"``
    :param n_steps: Steps collected per environment before each update; a rollout holds ``n_steps * n_envs`` samples
    :param batch_size: Minibatch size, <= n_steps * n_envs (``None``: the whole rollout)
    :param n_epochs: Passes over the rollout in each update
    :param gamma: Discount factor, in [0, 1]
    :param gae_lambda: The lambda of generalised advantage estimation, in [0, 1] (0: one-step TD, 1: Monte Carlo)
    :param clip_range: Clipping parameter epsilon > 0, it can be a function of the current progress
        remaining (from 1 to 0) or a ``"lin_<float>"`` string. ``None`` disables clipping (L^CPI). A pair
        ``(eps_low, eps_high)`` (a tuple or list, each side a float > 0, a schedule or ``"lin_<float>"``, with
        ``eps_high >= eps_low``) clips asymmetrically to ``[1 - eps_low, 1 + eps_high]`` (DAPO's clip-higher uses
        ``(0.2, 0.28)``) and logs ``train/clip_range_low``/``_high`` and ``train/clip_fraction_low``/``_high`` beside
        ``train/clip_fraction`` (both sides); ``(eps, eps)`` trains exactly as ``eps``
    :param clip_range_vf: Keep the new value prediction within this distance of the rollout's value in the value
        loss (a float, a schedule or ``"lin_<float>"``; ``None``, the default: no clipping). The distance is in reward
        units, so a good value depends on the reward scale
    :param normalize_advantage: Standardise the advantages (mean 0, std 1) before the loss (where:
        ``normalize_advantage_scope``)
    :param ent_coef: Weight c2 >= 0 of the entropy bonus in the loss
    :param vf_coef: Weight c1 >= 0 of the value loss in the loss
    :param max_grad_norm: Gradients are rescaled so that their global norm is at most this, > 0
    :param use_sde: Explore with generalised state-dependent noise (gSDE) instead of independent Gaussian noise
    :param sde_sample_freq: With gSDE, draw a new noise matrix every this many steps (-1: once per rollout)
    :param rollout_buffer_class: The rollout buffer class (``None``: ours, SB3's buffer with faster minibatch
        gathers); your subclass of SB3's ``RolloutBuffer``/``DictRolloutBuffer`` is used as it is
    :param rollout_buffer_kwargs: Extra keyword arguments of the rollout buffer's constructor
    :param target_kl: Stop the epochs of an update at the first minibatch whose approximate KL to the rollout policy
        exceeds ``1.5 * target_kl`` (SB3's early stop; clipping alone does not bound the step). ``None``: no stop
    :param stats_window_size: How many recent episodes the ``rollout/`` statistics (mean return, length, success) average
    :param tensorboard_log: Folder for TensorBoard event files (``None``: none are written; needs the ``tensorboard`` package)
    :param policy_kwargs: Extra keyword arguments of the policy's constructor (``net_arch``, ``activation_fn``, ...)
    :param verbose: 0: silent; 1: training logs and what the algorithm chose (device, backends); 2: debug output
    :param seed: Seed of Python's, NumPy's and torch's generators and of the environment
    :param device: Where the networks live: ``"auto"`` (a GPU when there is one), ``"cpu"``, ``"cuda"``, ... or a
        ``torch.device``
    :param dual_clip: Dual-clip constant c > 1 (Ye et al. 2020; Tianshou's ``dual_clip``; 3 is common): for a negative
        advantage the objective becomes ``max(min(r A, clip(r, 1 - eps, 1 + eps) A), c A)``. ``None`` (default): off.
        Needs ``clip_range``.
    :param normalize_advantage_scope: Over which samples ``normalize_advantage`` normalises: ``"minibatch"`` (SB3,
        default) or ``"batch"`` (the whole rollout, once per update; rsl_rl, RLlib). ``normalize_advantage=False``: off.
    :param value_clip_form: How ``clip_range_vf`` clips the value loss: ``"prediction"`` (SB3, default: clip the
        prediction around the old value, then MSE) or ``"max"`` (OpenAI baselines / CleanRL:
        ``max((V - R)^2, (V_clip - R)^2)``); no effect without ``clip_range_vf``
    :param recompute_advantage: Before each epoch after the first, recompute the critic's values of the whole batch and
        GAE with them (Tianshou's ``recompute_advantage``; Andrychowicz et al. 2020). Default False.
    :param adaptive_lr_target_kl: KL target of the KL-adaptive learning rate (rsl_rl's ``desired_kl``, typically
        0.01); ``None`` (default) follows ``learning_rate``. When set, the rate is multiplied by
        ``adaptive_lr_factor`` when the KL is below ``target / adaptive_lr_kl_margin``, divided by it above
        ``target * adaptive_lr_kl_margin``, clamped to ``[adaptive_lr_min, adaptive_lr_max]``; it replaces a
        ``learning_rate`` schedule (whose start value becomes the initial rate, with a warning). Distinct from
        ``target_kl`` (SB3's early stop). The adapted rate is saved with the model and logged as
        ``train/learning_rate``.
    :param adaptive_lr_every: ``"minibatch"`` (rsl_rl, default: before each gradient step, from the approximate KL of
        that minibatch measured before the step) or ``"update"`` (once per update, from the approximate KL over the
        whole batch after the update; the rate of the next update)
    :param adaptive_lr_kl_margin: The band of the rule, > 1 (default 2)
    :param adaptive_lr_factor: The multiplier of the rule, > 1 (default 1.5)
    :param adaptive_lr_min: Lower bound of the adapted rate, > 0 (default 1e-5)
    :param adaptive_lr_max: Upper bound of the adapted rate, > ``adaptive_lr_min`` (default 1e-2)
    :param numerics: ``"fast"`` (default): our arithmetic (Adam's fused kernel where you chose no implementation; the
        NumPy rollout step and update for SB3's ``MlpPolicy`` on the CPU), the same math and random draws as SB3 with
        float rounding differences; ``"sb3"``: SB3's arithmetic, bit for bit. Saved with the model.
    :param threads: torch's and BLAS's thread count inside ``learn()``: ``"auto"`` (default: one thread for a small
        policy, unless you set torch's count yourself), an int N, or ``None`` (leave them as they are). Restored
        afterwards; ``verbose >= 1`` says what was done (:mod:`sb3_ppo_variants.threads`)
    :param _init_setup_model: Build the networks and the buffer at construction (``False`` is for ``load()``)
    """

    def __init__(
        self,
        policy: str | type[ActorCriticPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 3e-4,
        n_steps: int = 2048,
        batch_size: int | None = 64,
        n_epochs: int = 10,
        gamma: float = 0.99,
        gae_lambda: float = 0.95,
        clip_range: float | Schedule | tuple[float | Schedule, float | Schedule] | None = 0.2,
        clip_range_vf: float | Schedule | None = None,
        normalize_advantage: bool = True,
        ent_coef: float = 0.0,
        vf_coef: float = 0.5,
        max_grad_norm: float = 0.5,
        use_sde: bool = False,
        sde_sample_freq: int = -1,
        rollout_buffer_class: type[RolloutBuffer] | None = None,
        rollout_buffer_kwargs: dict[str, Any] | None = None,
        target_kl: float | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        dual_clip: float | None = None,
        normalize_advantage_scope: str = "minibatch",
        value_clip_form: str = "prediction",
        recompute_advantage: bool = False,
        adaptive_lr_target_kl: float | None = None,
        adaptive_lr_every: str = "minibatch",
        adaptive_lr_kl_margin: float = 2.0,
        adaptive_lr_factor: float = 1.5,
        adaptive_lr_min: float = 1e-5,
        adaptive_lr_max: float = 1e-2,
        numerics: str = "fast",
        threads: int | str | None = "auto",
        _init_setup_model: bool = True,
    ):
        clip_range = check_clip_range(clip_range, owner=type(self).__name__)
        dual_clip = check_dual_clip(dual_clip, clip_range, owner=type(self).__name__)
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=gae_lambda,
            clip_range_vf=clip_range_vf,
            normalize_advantage=normalize_advantage,
            ent_coef=ent_coef,
            vf_coef=vf_coef,
            max_grad_norm=max_grad_norm,
            use_sde=use_sde,
            sde_sample_freq=sde_sample_freq,
            rollout_buffer_class=rollout_buffer_class,
            rollout_buffer_kwargs=rollout_buffer_kwargs,
            target_kl=target_kl,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            policy_kwargs=policy_kwargs,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            normalize_advantage_scope=normalize_advantage_scope,
            value_clip_form=value_clip_form,
            recompute_advantage=recompute_advantage,
            adaptive_lr_target_kl=adaptive_lr_target_kl,
            adaptive_lr_every=adaptive_lr_every,
            adaptive_lr_kl_margin=adaptive_lr_kl_margin,
            adaptive_lr_factor=adaptive_lr_factor,
            adaptive_lr_min=adaptive_lr_min,
            adaptive_lr_max=adaptive_lr_max,
            numerics=numerics,
            threads=threads,
        )
        self.clip_range: Any = clip_range
        self.dual_clip = dual_clip
        #: this update's clip range: one epsilon, the pair (eps_low, eps_high), or None
        self._current_clip_range: float | tuple[float, float] | None = None
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        super()._setup_model()
        if isinstance(self.clip_range, tuple):
            self.clip_range = tuple(FloatSchedule(side) for side in self.clip_range)
        elif self.clip_range is not None:
            self.clip_range = FloatSchedule(self.clip_range)

    def _on_update_start(self) -> None:
        progress = self._current_progress_remaining
        if isinstance(self.clip_range, tuple):
            low, high = (side(progress) for side in self.clip_range)
            self._current_clip_range = (low, high)
            self.logger.record("train/clip_range_low", low)
            self.logger.record("train/clip_range_high", high)
        else:
            self._current_clip_range = None if self.clip_range is None else self.clip_range(progress)
            if self._current_clip_range is not None:
                self.logger.record("train/clip_range", self._current_clip_range)

    def _policy_loss(
        self,
        batch: Any,
        outputs: PolicyOutputs,
        log_prob: th.Tensor,
        ratio: th.Tensor,
        advantages: th.Tensor,
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        clip_range = self._current_clip_range
        loss = surrogate_loss(ratio, advantages, clip_range, self.dual_clip)
        if clip_range is None:
            return loss, {}
        if isinstance(clip_range, tuple):
            extra = clip_fractions(ratio, clip_range)
        else:
            extra = {"clip_fraction": clip_fraction(ratio, clip_range)}
        if self.dual_clip is not None:
            extra["dual_clip_fraction"] = dual_clip_fraction(ratio, advantages, self.dual_clip)
        return loss, extra
