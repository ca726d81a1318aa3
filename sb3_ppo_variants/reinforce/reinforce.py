"""REINFORCE with the normalised discounted reward-to-go (Williams 1992), inside SB3's rollouts."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.type_aliases import GymEnv, Schedule

from sb3_ppo_variants.core.algorithm import PolicyGradientAlgorithm
from sb3_ppo_variants.core.backends import PolicyOutputs
from sb3_ppo_variants.core.checks import check_choice
from sb3_ppo_variants.core.losses import reinforce_loss
from sb3_ppo_variants.reinforce.buffers import NORMALIZATION_MODES, DictRewardToGoRolloutBuffer, RewardToGoRolloutBuffer


class REINFORCE(PolicyGradientAlgorithm):
    """REINFORCE: the policy gradient ``E[sum_t grad log pi(a_t|s_t) * G_t]`` with the reward-to-go ``G_t``.

    ``G_t = sum_{t' >= t} gamma^(t'-t) r_t'`` inside the episode: rewards before ``t`` are left out (they do
    not depend on ``a_t``; leaving them out keeps the estimate unbiased and lowers its variance). The weights
    are normalised, ``(G - mean) / std``, over the batch (default), per time step across the parallel envs,
    or not at all; where the std is 0 the weights are 0. By default one gradient step per rollout.

    With ``use_baseline=True`` a learned state value ``V(s)`` is trained on ``G_t`` (value loss ``vf_coef``) and the
    weights are ``G_t - V(s_t)`` before normalisation. Without it, no critic is trained or used anywhere: the
    value head gets no gradient and never enters the loss, returns or rollouts.

    Episode ends:

    - termination ends the reward-to-go;
    - time-limit truncation: with a baseline, ``gamma * V(terminal obs)`` is added to the last reward (SB3's
      treatment of time limits as non-terminal). Without one, the reward-to-go stops at the truncation: for
      the time-limited task the environment defines, that is the exact return, so the estimate is unbiased for
      it, and no value from an untrained critic is ever added;
    - the end of a rollout cuts episodes that go on: with a baseline they are bootstrapped with ``V(s_T)``.
      Without one, their reward-to-go is unknown, and those steps are left out of the loss and of the
      normalisation statistics (``train/valid_fraction`` logs the share kept). Their episode goes on in the next
      rollout, where the rest of it is used once it ends. Choose ``n_steps`` long enough to hold whole
      episodes (for example ``n_steps`` >= 2 x the typical episode length).

    :param policy: The policy: an alias (``MlpPolicy``, ``CnnPolicy``, ``MultiInputPolicy``) or a policy class
    :param env: The environment: a Gymnasium env, a VecEnv, or a registered id such as ``"CartPole-v1"``
    :param learning_rate: Adam's step size: a float, a schedule (called with the progress remaining, 1 at the start and 0 at
        the end) or ``"lin_<float>"``
    :param n_steps: Steps collected per environment before each update; a rollout holds ``n_steps * n_envs`` samples
    :param batch_size: Minibatch size; ``None`` (default) uses the whole rollout for one gradient step
    :param n_epochs: Passes over the rollout in each update, default 1 (on-policy); more than 1 reuses the batch
        without importance weights, which is no longer plain REINFORCE
    :param gamma: Discount factor, in [0, 1]
    :param normalize_returns: How the weights are normalised: ``"batch"`` (default), ``"timestep"`` (per step across the
        parallel envs, the course's original form; needs >= 2 envs) or ``"none"``
    :param use_baseline: Whether to learn a state-value baseline (and bootstrap cut episodes with it)
    :param ent_coef: Weight c2 >= 0 of the entropy bonus in the loss
    :param vf_coef: Weight c1 >= 0 of the value loss in the loss (only with ``use_baseline``)
    :param max_grad_norm: Gradients are rescaled so that their global norm is at most this, > 0
    :param use_sde: Explore with generalised state-dependent noise (gSDE) instead of independent Gaussian noise
    :param sde_sample_freq: With gSDE, draw a new noise matrix every this many steps (-1: once per rollout)
    :param rollout_buffer_class: Rollout buffer class (default:
        :class:`~sb3_ppo_variants.reinforce.buffers.RewardToGoRolloutBuffer` or its Dict variant); a class of your own
        must subclass one of those two (REINFORCE's weights are the reward-to-go they compute; SB3's GAE
        ``RolloutBuffer`` is refused at construction)
    :param rollout_buffer_kwargs: Extra keyword arguments of the rollout buffer's constructor
    :param target_kl: SB3's early stop of the epochs at an approximate KL above ``1.5 * target_kl`` (``None``: off)
    :param stats_window_size: How many recent episodes the ``rollout/`` statistics (mean return, length, success) average
    :param tensorboard_log: Folder for TensorBoard event files (``None``: none are written; needs the ``tensorboard`` package)
    :param policy_kwargs: Extra keyword arguments of the policy's constructor (``net_arch``, ``activation_fn``, ...)
    :param verbose: 0: silent; 1: training logs and what the algorithm chose (device, backends); 2: debug output
    :param seed: Seed of Python's, NumPy's and torch's generators and of the environment
    :param device: Where the networks live: ``"auto"`` (a GPU when there is one), ``"cpu"``, ``"cuda"``, ... or a
        ``torch.device``
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
        learning_rate: float | Schedule = 1e-3,
        n_steps: int = 1024,
        batch_size: int | None = None,
        n_epochs: int = 1,
        gamma: float = 0.99,
        normalize_returns: str = "batch",
        use_baseline: bool = False,
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
        numerics: str = "fast",
        threads: int | str | None = "auto",
        _init_setup_model: bool = True,
    ):
        owner = type(self).__name__
        normalize_returns = check_choice("normalize_returns", normalize_returns, NORMALIZATION_MODES, owner=owner)
        if not isinstance(use_baseline, (bool, np.bool_)):
            raise TypeError(f"{owner}: `use_baseline` must be a bool, got {use_baseline!r}")
        reserved = sorted(set(rollout_buffer_kwargs or {}) & {"normalize", "bootstrap"})
        if reserved:
            raise ValueError(
                f"{owner}: `rollout_buffer_kwargs` must not set {', '.join(reserved)}: REINFORCE passes them itself, "
                "from `normalize_returns` and `use_baseline`"
            )
        super().__init__(
            policy,
            env,
            learning_rate=learning_rate,
            n_steps=n_steps,
            batch_size=batch_size,
            n_epochs=n_epochs,
            gamma=gamma,
            gae_lambda=1.0,
            clip_range_vf=None,
            normalize_advantage=False,  # the buffer normalises the reward-to-go (see `normalize_returns`)
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
            numerics=numerics,
            threads=threads,
        )
        if normalize_returns == "timestep" and self.env is not None and self.env.num_envs < 2:
            raise ValueError(
                f"{owner}: `normalize_returns='timestep'` normalises across the parallel envs at each step "
                "and needs >= 2 envs; "
                f"the env has {self.env.num_envs}. Use normalize_returns='batch' or a VecEnv with more envs."
            )
        self.normalize_returns = normalize_returns
        self.use_baseline = bool(use_baseline)
        self._warned_no_episode = False
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        if self.rollout_buffer_class is None:
            self.rollout_buffer_class = self._required_rollout_buffer(isinstance(self.observation_space, spaces.Dict))
        super()._setup_model()

    def _required_rollout_buffer(self, dict_obs: bool) -> type[RolloutBuffer] | None:
        return DictRewardToGoRolloutBuffer if dict_obs else RewardToGoRolloutBuffer

    def _required_rollout_buffer_reason(self) -> str:
        return (
            "(REINFORCE's weights are the normalised reward-to-go this buffer computes, not GAE; it is given "
            "`normalize` and `bootstrap` from `normalize_returns` and `use_baseline`)"
        )

    def _rollout_buffer_extra_kwargs(self) -> dict[str, Any]:
        return {"normalize": self.normalize_returns, "bootstrap": self.use_baseline}

    @property
    def uses_critic(self) -> bool:
        """The critic exists in the policy but is trained and used only with ``use_baseline``."""
        return self.use_baseline

    def _bootstrap_truncations(self, rewards: np.ndarray, dones: np.ndarray, infos: list[dict[str, Any]]) -> None:
        # Without a baseline there is no trained critic: the reward-to-go simply stops at the truncation.
        if self.use_baseline:
            super()._bootstrap_truncations(rewards, dones, infos)

    def _on_update_start(self) -> None:
        buffer = self.rollout_buffer
        valid_fraction = getattr(buffer, "valid_fraction", 1.0)
        self.logger.record("train/return_mean", getattr(buffer, "return_mean", float("nan")))
        self.logger.record("train/return_std", getattr(buffer, "return_std", float("nan")))
        self.logger.record("train/valid_fraction", valid_fraction)
        if valid_fraction == 0.0 and not self._warned_no_episode:
            warnings.warn(
                f"REINFORCE: no episode ended within a rollout of n_steps={self.n_steps}, so this update has no sample "
                "(without a baseline, steps whose episode is still running are left out). "
                "Increase n_steps beyond the episode length or use use_baseline=True.",
                stacklevel=2,
            )
            self._warned_no_episode = True

    def _policy_loss(
        self,
        batch: Any,
        outputs: PolicyOutputs,
        log_prob: th.Tensor,
        ratio: th.Tensor,
        advantages: th.Tensor,
    ) -> tuple[th.Tensor, dict[str, th.Tensor]]:
        loss = reinforce_loss(log_prob, advantages)
        return loss, {"policy_loss": loss.detach()}
