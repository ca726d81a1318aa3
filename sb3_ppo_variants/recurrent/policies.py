"""The masked recurrent policy: sb3-contrib's ``RecurrentActorCriticPolicy`` with sb3-contrib's maskable distributions.

sb3-contrib ships an LSTM policy (``RecurrentActorCriticPolicy``) and maskable distributions
(``make_masked_proba_distribution``, used by ``MaskableActorCriticPolicy``) but no policy with both.
:class:`MaskableRecurrentActorCriticPolicy` is the recurrent policy whose action distribution is the maskable one, and
whose ``forward``, ``get_distribution``, ``evaluate_actions``, ``predict`` take ``action_masks=`` as the maskable
policy's do. Its networks are the recurrent policy's; the action head has the maskable policy's shape and
initialisation (for ``Discrete`` and ``MultiDiscrete`` the same as the unmasked head's; ``MultiBinary(n)`` gets
``2 n`` logits, one per outcome, as sb3-contrib's ``MaskableBernoulliDistribution``).

Each public method sets the masks for the duration of its call and runs the recurrent policy's own method, whose
distribution step (:meth:`MaskableRecurrentActorCriticPolicy._get_action_dist_from_latent`) applies them, so that
the recurrent computation is written once, in sb3-contrib.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import partial
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from sb3_contrib.common.maskable.distributions import MaskableDistribution, make_masked_proba_distribution
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from sb3_contrib.common.recurrent.type_aliases import RNNStates
from stable_baselines3.common.torch_layers import CombinedExtractor, NatureCNN
from stable_baselines3.common.type_aliases import Schedule


class MaskableRecurrentActorCriticPolicy(RecurrentActorCriticPolicy):
    """sb3-contrib's ``RecurrentActorCriticPolicy`` with invalid-action masking (``Discrete``, ``MultiDiscrete``,
    ``MultiBinary`` action spaces). Parameters are ``RecurrentActorCriticPolicy``'s; ``use_sde`` must be False."""

    #: the masks of the public call in progress (None: every action is legal)
    _call_masks: Any = None

    def __init__(
        self, observation_space: spaces.Space, action_space: spaces.Space, lr_schedule: Schedule, *args: Any, **kwargs: Any
    ):
        if kwargs.get("use_sde", False):
            raise ValueError(
                f"{type(self).__name__}: `use_sde=True` (gSDE) is for continuous actions; masked policies are categorical"
            )
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _build(self, lr_schedule: Schedule) -> None:
        super()._build(lr_schedule)
        self.action_dist = make_masked_proba_distribution(self.action_space)
        if isinstance(self.action_space, spaces.MultiBinary):  # two logits per binary action (MaskableBernoulli)
            self.action_net = self.action_dist.proba_distribution_net(latent_dim=self.mlp_extractor.latent_dim_pi)
            if self.ortho_init:
                self.action_net.apply(partial(self.init_weights, gain=0.01))
        # the optimizer is built again over every parameter by RecurrentActorCriticPolicy.__init__, after the LSTMs

    def _get_action_dist_from_latent(self, latent_pi: th.Tensor) -> MaskableDistribution:  # type: ignore[override]
        distribution = self.action_dist.proba_distribution(action_logits=self.action_net(latent_pi))
        if self._call_masks is not None:
            distribution.apply_masking(self._call_masks)  # type: ignore[attr-defined]
        return distribution  # type: ignore[return-value]

    @contextlib.contextmanager
    def _masks(self, action_masks: Any) -> Iterator[None]:
        """``action_masks`` for the duration of a public call (None: those of the call in progress, if any)."""
        if action_masks is None:
            yield
            return
        previous, self._call_masks = self._call_masks, action_masks
        try:
            yield
        finally:
            self._call_masks = previous

    def forward(  # type: ignore[override]
        self,
        obs: th.Tensor,
        lstm_states: RNNStates,
        episode_starts: th.Tensor,
        deterministic: bool = False,
        action_masks: np.ndarray | th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor, RNNStates]:
        """The recurrent policy's ``forward``, sampling only the legal actions of ``action_masks``."""
        with self._masks(action_masks):
            return super().forward(obs, lstm_states, episode_starts, deterministic)

    def get_distribution(  # type: ignore[override]
        self,
        obs: th.Tensor,
        lstm_states: tuple[th.Tensor, th.Tensor],
        episode_starts: th.Tensor,
        action_masks: np.ndarray | th.Tensor | None = None,
    ) -> tuple[MaskableDistribution, tuple[th.Tensor, ...]]:
        """The masked action distribution and the actor's new LSTM states."""
        with self._masks(action_masks):
            return super().get_distribution(obs, lstm_states, episode_starts)  # type: ignore[return-value]

    def evaluate_actions(  # type: ignore[override]
        self,
        obs: th.Tensor,
        actions: th.Tensor,
        lstm_states: RNNStates,
        episode_starts: th.Tensor,
        action_masks: np.ndarray | th.Tensor | None = None,
    ) -> tuple[th.Tensor, th.Tensor, th.Tensor]:
        """Values, log-probabilities and entropy of the masked policy."""
        with self._masks(action_masks):
            return super().evaluate_actions(obs, actions, lstm_states, episode_starts)

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: tuple[np.ndarray, ...] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
        action_masks: np.ndarray | None = None,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...] | None]:
        """The recurrent policy's ``predict``, choosing among the legal actions of ``action_masks``."""
        with self._masks(action_masks):
            return super().predict(observation, state, episode_start, deterministic)


class MaskableRecurrentActorCriticCnnPolicy(MaskableRecurrentActorCriticPolicy):
    """:class:`MaskableRecurrentActorCriticPolicy` with SB3's ``NatureCNN`` features (image observations)."""

    def __init__(self, *args: Any, features_extractor_class: Any = NatureCNN, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


class MaskableRecurrentMultiInputActorCriticPolicy(MaskableRecurrentActorCriticPolicy):
    """:class:`MaskableRecurrentActorCriticPolicy` with SB3's ``CombinedExtractor`` (Dict observations)."""

    def __init__(self, *args: Any, features_extractor_class: Any = CombinedExtractor, **kwargs: Any):
        super().__init__(*args, features_extractor_class=features_extractor_class, **kwargs)


MaskableMlpLstmPolicy = MaskableRecurrentActorCriticPolicy
MaskableCnnLstmPolicy = MaskableRecurrentActorCriticCnnPolicy
MaskableMultiInputLstmPolicy = MaskableRecurrentMultiInputActorCriticPolicy
