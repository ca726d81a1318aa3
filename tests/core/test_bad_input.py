"""Bad input fails at construction with a TypeError/ValueError naming the parameter and what is allowed."""

import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from stable_baselines3.common.env_util import make_vec_env

from sb3_ppo_variants import REINFORCE, SPO, ClipPPO, KLPenaltyPPO
from tests.conftest import ALGORITHMS

ALL = ALGORITHMS

# (parameter, bad value, exception, words the message must contain)
SHARED_CASES = [
    ("learning_rate", 0.0, ValueError, "> 0"),
    ("learning_rate", -1e-3, ValueError, "> 0"),
    ("learning_rate", "fast", TypeError, "callable"),
    ("learning_rate", [1e-3], TypeError, "callable"),
    ("learning_rate", float("nan"), ValueError, "finite"),
    ("learning_rate", lambda p: -p, ValueError, "learning_rate"),
    ("n_steps", 0, ValueError, ">= 1"),
    ("n_steps", 2.5, TypeError, "int"),
    ("batch_size", 0, ValueError, ">= 1"),
    ("n_epochs", 0, ValueError, ">= 1"),
    ("n_epochs", "10", TypeError, "int"),
    ("gamma", 1.5, ValueError, "<= 1.0"),
    ("gamma", -0.1, ValueError, ">= 0.0"),
    ("ent_coef", -0.01, ValueError, ">= 0.0"),
    ("vf_coef", "half", TypeError, "float"),
    ("max_grad_norm", 0.0, ValueError, "> 0.0"),
    ("target_kl", 0.0, ValueError, "> 0.0"),
    ("sde_sample_freq", -2, ValueError, ">= -1"),
    ("stats_window_size", 0, ValueError, ">= 1"),
    ("use_sde", "yes", TypeError, "bool"),
    ("policy_kwargs", [("net_arch", [8])], TypeError, "dict or None"),
    ("rollout_buffer_kwargs", "size=3", TypeError, "dict or None"),
    ("rollout_buffer_class", dict, TypeError, "RolloutBuffer subclass"),
    ("verbose", -1, ValueError, ">= 0"),
    ("verbose", "loud", TypeError, "int"),
    ("seed", -3, ValueError, ">= 0"),
    ("seed", 1.5, TypeError, "int"),
    ("tensorboard_log", 42, TypeError, "path"),
    ("device", "gpu0", ValueError, "'cpu'"),
    ("max_grad_norm", float("inf"), ValueError, "finite"),
]

#: The PPO-family controls (docs/controls.md), for ClipPPO and KLPenaltyPPO.
CONTROL_CASES = [
    ("dual_clip", 1.0, ValueError, "> 1.0"),
    ("dual_clip", 0.5, ValueError, "> 1.0"),
    ("dual_clip", "3", TypeError, "float"),
    ("value_clip_form", "huber", ValueError, "'prediction', 'max'"),
    ("normalize_advantage_scope", "episode", ValueError, "'minibatch', 'batch'"),
    ("normalize_advantage_scope", None, ValueError, "'minibatch', 'batch'"),
    ("recompute_advantage", 1, TypeError, "bool"),
    ("adaptive_lr_target_kl", 0.0, ValueError, "> 0.0"),
    ("adaptive_lr_target_kl", -0.01, ValueError, "> 0.0"),
    ("adaptive_lr_target_kl", "0.01", TypeError, "float"),
    ("adaptive_lr_every", "epoch", ValueError, "'minibatch', 'update'"),
    ("adaptive_lr_kl_margin", 1.0, ValueError, "> 1.0"),
    ("adaptive_lr_kl_margin", 0.5, ValueError, "> 1.0"),
    ("adaptive_lr_factor", 1.0, ValueError, "> 1.0"),
    ("adaptive_lr_factor", float("inf"), ValueError, "finite"),
    ("adaptive_lr_min", 0.0, ValueError, "> 0.0"),
    ("adaptive_lr_max", -1e-3, ValueError, "> 0.0"),
]

PER_CLASS_CASES = {
    ClipPPO: [
        *CONTROL_CASES,
        ("clip_range", 0.0, ValueError, "> 0"),
        ("clip_range", -0.2, ValueError, "> 0"),
        ("clip_range", "0.2", TypeError, "lin_"),
        ("clip_range", {"eps": 0.2}, TypeError, "callable"),
        # the asymmetric pair (eps_low, eps_high) of clip-higher
        ("clip_range", (0.3, 0.2), ValueError, "got eps_low=0.3 > eps_high=0.2"),
        ("clip_range", ["lin_0.3", "lin_0.2"], ValueError, "eps_high >= eps_low"),
        ("clip_range", (0.2, "lin_0.28"), ValueError, "eps_low=0.2 > eps_high=0 at progress 0.0"),
        (
            "clip_range",
            (0.2,),
            ValueError,
            "the pair (eps_low, eps_high), each a float > 0 or a schedule; got tuple of length 1",
        ),
        ("clip_range", [0.1, 0.2, 0.3], ValueError, "got list of length 3"),
        ("clip_range", (0.0, 0.2), ValueError, "`eps_low` must be > 0.0"),
        ("clip_range", (0.2, -0.1), ValueError, "`eps_high` must be > 0.0"),
        ("clip_range", (None, 0.2), TypeError, "`eps_low` must be a float"),
        ("clip_range_vf", 0.0, ValueError, "> 0"),
        ("gae_lambda", 1.01, ValueError, "<= 1.0"),
        ("normalize_advantage", 1, TypeError, "bool"),
        ("batch_size", 1, ValueError, "batch_size"),  # advantage normalisation needs >= 2 samples
    ],
    KLPenaltyPPO: [
        *CONTROL_CASES,
        ("kl_target", 0.0, ValueError, "> 0"),
        ("kl_target", -0.01, ValueError, "> 0"),
        ("kl_target", "lin_x", TypeError, "lin_"),
        ("beta", -1.0, ValueError, ">= 1e-06"),
        ("beta_tolerance", 1.0, ValueError, "> 1.0"),
        ("beta_tolerance", 0.5, ValueError, "> 1.0"),
        ("beta_factor", 1.0, ValueError, "> 1.0"),
        ("beta_min", -1.0, ValueError, ">= 0.0"),
        ("kl_estimator", "exact", ValueError, "'closed_form', 'sample_low_var', 'sample_log_ratio'"),
        ("adaptive_beta", "yes", TypeError, "bool"),
        ("clip_range", 0.0, ValueError, "> 0"),
        ("clip_range", (0.2, 0.28), TypeError, "a float, a callable schedule"),  # the asymmetric pair is ClipPPO's only
    ],
    SPO: [
        *(case for case in CONTROL_CASES if case[0] != "dual_clip"),
        ("epsilon", 0.0, ValueError, "must be > 0.0, got 0.0"),
        ("epsilon", -0.2, ValueError, "must be > 0.0, got -0.2"),
        ("epsilon", "lin_0.2", ValueError, "must stay > 0 over training"),
        ("epsilon", lambda progress: 0.2 * progress, ValueError, "must stay > 0 over training"),
        ("epsilon", None, TypeError, "must be a float or a schedule"),
        ("epsilon", "0.2", TypeError, "lin_"),
    ],
    REINFORCE: [
        ("normalize_returns", "episode", ValueError, "'batch', 'timestep', 'none'"),
        ("normalize_returns", None, ValueError, "'batch', 'timestep', 'none'"),
        ("use_baseline", "no", TypeError, "bool"),
    ],
}

CASES = [(cls, *case) for cls in ALL for case in SHARED_CASES + PER_CLASS_CASES[cls]]


@pytest.mark.parametrize(("cls", "name", "value", "error", "words"), CASES, ids=lambda v: getattr(v, "__name__", repr(v))[:20])
def test_bad_constructor_argument(cls, name, value, error, words):
    with pytest.raises(error) as info:
        cls("MlpPolicy", "CartPole-v1", **{"n_steps": 64, name: value})
    message = str(info.value)
    assert f"`{name}`" in message, message
    assert words in message, message
    assert cls.__name__ in message, message


@pytest.mark.parametrize("name", ["clip_range", "dual_clip"])
def test_spo_has_no_clip(name):
    """SPO's epsilon takes the clip's role: ClipPPO's clip parameters are not SPO's (Python's own TypeError)."""
    with pytest.raises(TypeError, match=f"unexpected keyword argument '{name}'"):
        SPO("MlpPolicy", "CartPole-v1", **{name: 0.2})


def test_inverted_beta_bounds():
    with pytest.raises(ValueError, match=re.escape("`beta_min` (1.0) must be < `beta_max` (0.5)")):
        KLPenaltyPPO("MlpPolicy", "CartPole-v1", beta_min=1.0, beta_max=0.5)


@pytest.mark.parametrize("cls", [ClipPPO, KLPenaltyPPO])
def test_control_combinations(cls):
    """Inverted learning-rate bounds, a rate outside them, dual-clip without clipping; REINFORCE has no controls."""
    with pytest.raises(ValueError, match=re.escape("`adaptive_lr_min` (0.01) must be < `adaptive_lr_max` (0.001)")):
        cls("MlpPolicy", "CartPole-v1", adaptive_lr_min=1e-2, adaptive_lr_max=1e-3)
    with pytest.raises(
        ValueError, match=re.escape("`learning_rate` (0.05) must lie within [`adaptive_lr_min`, `adaptive_lr_max`]")
    ):
        cls("MlpPolicy", "CartPole-v1", learning_rate=0.05, adaptive_lr_target_kl=0.01)
    cls("MlpPolicy", "CartPole-v1", learning_rate=0.05)  # without the adaptive rate the bounds do not apply
    with pytest.raises(ValueError, match=f"{cls.__name__}: `dual_clip` applies on top of the clipped surrogate"):
        cls("MlpPolicy", "CartPole-v1", dual_clip=3.0, clip_range=None)
    cls("MlpPolicy", "CartPole-v1", dual_clip=3.0, clip_range=0.2)
    with pytest.raises(TypeError, match="adaptive_lr_target_kl"):
        REINFORCE("MlpPolicy", "CartPole-v1", adaptive_lr_target_kl=0.01)


class _TupleActionEnv(gym.Env):
    observation_space = spaces.Box(-1, 1, (2,))
    action_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3)))

    def reset(self, *, seed=None, options=None):
        return np.zeros(2, dtype=np.float32), {}

    def step(self, action):
        return np.zeros(2, dtype=np.float32), 0.0, True, False, {}


@pytest.mark.parametrize("cls", ALL)
def test_unsupported_action_space(cls):
    with pytest.raises(ValueError, match="action space of `env` must be one of Box, Discrete, MultiDiscrete, MultiBinary"):
        cls("MlpPolicy", _TupleActionEnv())


@pytest.mark.parametrize("cls", ALL)
def test_unknown_policy(cls):
    with pytest.raises(ValueError, match="`policy` must be one of"):
        cls("LstmPolicy", "CartPole-v1")
    with pytest.raises(TypeError, match="`policy` must be an ActorCriticPolicy"):
        cls(dict, "CartPole-v1")


def test_timestep_normalisation_needs_two_envs():
    with pytest.raises(ValueError, match=r"`normalize_returns=.timestep.`.*needs >= 2 envs; the env has 1"):
        REINFORCE("MlpPolicy", "CartPole-v1", normalize_returns="timestep")
    REINFORCE("MlpPolicy", make_vec_env("CartPole-v1", n_envs=2), normalize_returns="timestep")


def test_closed_form_kl_needs_a_known_distribution():
    """A policy whose action distribution has no closed form here is refused at construction."""
    from stable_baselines3.common.distributions import Distribution
    from stable_baselines3.common.policies import ActorCriticPolicy

    class _OpaqueDistribution(Distribution):  # a user-defined distribution we know nothing about
        def proba_distribution_net(self, *args, **kwargs):
            raise NotImplementedError

        def proba_distribution(self, *args, **kwargs):
            raise NotImplementedError

        def log_prob(self, x):
            raise NotImplementedError

        def entropy(self):
            return None

        def sample(self):
            raise NotImplementedError

        def mode(self):
            raise NotImplementedError

        def actions_from_params(self, *args, **kwargs):
            raise NotImplementedError

        def log_prob_from_params(self, *args, **kwargs):
            raise NotImplementedError

    class _OpaquePolicy(ActorCriticPolicy):
        def _build(self, lr_schedule):
            super()._build(lr_schedule)
            self.action_dist = _OpaqueDistribution()

    with pytest.raises(ValueError, match="`kl_estimator='closed_form'` has no closed form for the action distribution"):
        KLPenaltyPPO(_OpaquePolicy, "CartPole-v1")
    KLPenaltyPPO(_OpaquePolicy, "CartPole-v1", kl_estimator="sample_low_var")  # the sample estimates still work


@pytest.mark.parametrize("cls", ALL)
@pytest.mark.parametrize(("value", "error"), [(0, ValueError), (-5, ValueError), (1.5, ValueError), ("1e5", TypeError)])
def test_bad_learn_budget(cls, value, error):
    model = cls("MlpPolicy", "CartPole-v1", n_steps=64)
    with pytest.raises(error, match="`total_timesteps`"):
        model.learn(value)


def test_float_budget_works():
    model = ClipPPO("MlpPolicy", "CartPole-v1", n_steps=64, batch_size=64, n_epochs=1).learn(1.28e2)
    assert model.num_timesteps == 128


def test_int_argument_bounds_and_messages() -> None:
    """The argparse type the CLIs share: ints >= minimum, the same message for a non-int and a too-small value."""
    import argparse

    from sb3_ppo_variants.cli_args import int_argument

    positive = int_argument(1)
    assert positive("3") == 3 and positive("1") == 1
    for text in ("0", "-2", "x", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match=rf"expected an int >= 1, got '{text}'"):
            positive(text)
    seed = int_argument(0, "a seed (an int >= 0)")
    assert seed("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match=r"expected a seed \(an int >= 0\), got '-1'"):
        seed("-1")
