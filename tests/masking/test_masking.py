"""Invalid-action masking: MaskableClipPPO, MaskableKLPenaltyPPO, MaskableREINFORCE, MaskableSPO (sb3_ppo_variants.masking)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from sb3_contrib import MaskablePPO
from sb3_contrib.common.envs import InvalidActionEnvDiscrete, InvalidActionEnvMultiBinary, InvalidActionEnvMultiDiscrete
from sb3_contrib.common.maskable.callbacks import MaskableEvalCallback
from sb3_contrib.common.maskable.distributions import MaskableCategoricalDistribution, MaskableMultiCategoricalDistribution
from sb3_contrib.common.maskable.evaluation import evaluate_policy
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from sb3_contrib.common.maskable.utils import get_action_masks
from sb3_contrib.common.wrappers import ActionMasker
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.envs import IdentityEnv
from stable_baselines3.common.policies import ActorCriticPolicy
from torch.distributions import Categorical, kl_divergence

from sb3_ppo_variants import MaskableClipPPO, MaskableKLPenaltyPPO, MaskableREINFORCE, MaskableSPO
from sb3_ppo_variants.masking.kl import masked_categorical_kl, masked_closed_form_kl, masked_dist_params
from sb3_ppo_variants.masking.masks import check_action_masks, mask_dim

ALGOS = {
    "clip_ppo_mask": MaskableClipPPO,
    "kl_ppo_mask": MaskableKLPenaltyPPO,
    "reinforce_mask": MaskableREINFORCE,
    "spo_mask": MaskableSPO,
}
#: SB3's Adam arithmetic (our default is the fused kernel, equal up to float rounding)
SB3_ADAM = dict(optimizer_kwargs=dict(eps=1e-5, fused=False, foreach=False))


def _discrete() -> gym.Env:
    return InvalidActionEnvDiscrete(dim=20, n_invalid_actions=10)


def _multi_discrete() -> gym.Env:
    return InvalidActionEnvMultiDiscrete(dims=[5, 10], n_invalid_actions=6)


def _multi_binary() -> gym.Env:
    return InvalidActionEnvMultiBinary(dims=4, n_invalid_actions=2)


ENVS = {"discrete": _discrete, "multi_discrete": _multi_discrete, "multi_binary": _multi_binary}


def _params(model) -> th.Tensor:
    return th.nn.utils.parameters_to_vector(model.policy.parameters()).detach()


# ---------------------------------------------------------------------------------------------- 1. equivalence


@pytest.mark.parametrize("env_name", ["discrete", "multi_discrete", "multi_binary"])
@pytest.mark.parametrize("adam", ["sb3", "fused"])
def test_same_parameters_as_maskable_ppo_after_three_updates(env_name, adam):
    kwargs = dict(n_steps=64, batch_size=16, n_epochs=4, ent_coef=0.01, seed=3, device="cpu")
    reference = MaskablePPO("MlpPolicy", ENVS[env_name](), **kwargs)
    reference.learn(3 * 64)
    ours = MaskableClipPPO("MlpPolicy", ENVS[env_name](), policy_kwargs=SB3_ADAM if adam == "sb3" else None, **kwargs)
    ours.learn(3 * 64)
    fresh = MaskableClipPPO("MlpPolicy", ENVS[env_name](), **kwargs)
    assert ours._n_updates == reference._n_updates == 12
    assert (_params(fresh) - _params(ours)).abs().max() > 1e-4  # it trained
    assert (_params(reference) - _params(ours)).abs().max() <= 1e-5


# ---------------------------------------------------------------------------------------------- 2. masked KL


def _masked_dist(logits: th.Tensor, masks: th.Tensor) -> MaskableCategoricalDistribution:
    dist = MaskableCategoricalDistribution(logits.shape[1]).proba_distribution(logits)
    dist.apply_masking(masks)
    return dist


def test_masked_categorical_kl_hand_computed():
    old = th.tensor([[0.0, 1.0, 2.0, 5.0]])
    new = th.tensor([[1.0, 0.0, 0.0, -3.0]])
    masks = th.tensor([[True, True, False, False]])
    # legal actions 0, 1: p_old = softmax(0, 1) = (1, e) / (1 + e), p_new = softmax(1, 0) = (e, 1) / (1 + e),
    # log(p_old / p_new) = (-1, +1): KL = (e - 1) / (e + 1); the illegal logits 2 and 5 (old), 0 and -3 (new) play no part
    e = np.e
    p, q = np.array([1.0, e]) / (1.0 + e), np.array([e, 1.0]) / (1.0 + e)
    expected = float(np.sum(p * np.log(p / q)))
    kl = masked_closed_form_kl(masked_dist_params(_masked_dist(old, masks)), _masked_dist(new, masks), masks)
    assert kl.shape == (1,)
    assert kl.item() == pytest.approx(expected, rel=1e-5)
    assert expected == pytest.approx((e - 1) / (e + 1))


def test_masked_multi_categorical_kl_hand_computed_and_torch():
    dims = [3, 2]
    old = th.tensor([[0.0, 2.0, -1.0, 0.5, 0.0], [1.0, 1.0, 1.0, 3.0, 0.0]])
    new = th.tensor([[1.0, -1.0, 4.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0, 1.0]])
    masks = th.tensor([[True, True, False, True, True], [False, True, False, True, True]])

    def build(logits):
        dist = MaskableMultiCategoricalDistribution(dims).proba_distribution(logits)
        dist.apply_masking(masks)
        return dist

    kl = masked_closed_form_kl(masked_dist_params(build(old)), build(new), masks)
    # by hand: state 0, factor 0 over {0, 1}: p=(1, e^2)/(1+e^2), q=(e, e^-1)/(e+e^-1); factor 1 over {0, 1}
    p = np.array([1.0, np.e**2]) / (1 + np.e**2)
    q = np.array([np.e, np.e**-1]) / (np.e + np.e**-1)
    p1 = np.array([np.exp(0.5), 1.0]) / (np.exp(0.5) + 1.0)
    q1 = np.array([0.5, 0.5])
    # state 1: factor 0 has a single legal action (KL 0), factor 1 over {0, 1}
    p2 = np.array([np.e**3, 1.0]) / (np.e**3 + 1.0)
    q2 = np.array([1.0, np.e]) / (1.0 + np.e)
    hand = [np.sum(p * np.log(p / q)) + np.sum(p1 * np.log(p1 / q1)), np.sum(p2 * np.log(p2 / q2))]
    assert kl.numpy() == pytest.approx(np.array(hand), rel=1e-5)
    # torch's kl_divergence of the renormalised legal-action distributions
    for state in range(2):
        total = 0.0
        for cols in (slice(0, 3), slice(3, 5)):
            legal = masks[state, cols]
            total += kl_divergence(
                Categorical(logits=old[state, cols][legal]), Categorical(logits=new[state, cols][legal])
            ).item()
        assert kl[state].item() == pytest.approx(total, rel=1e-5, abs=1e-7)


def test_masked_kl_single_legal_action_and_inf_logits_give_zero_not_nan():
    masks = th.tensor([[False, False, True, False], [True, True, True, True]])
    old = th.tensor([[3.0, -2.0, 0.1, 8.0], [0.0, 0.0, 0.0, 0.0]])
    new = th.tensor([[-5.0, 7.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]], requires_grad=True)
    kl = masked_closed_form_kl(masked_dist_params(_masked_dist(old, masks)), _masked_dist(new, masks), masks)
    assert th.isfinite(kl).all() and kl.tolist() == pytest.approx([0.0, 0.0], abs=1e-7)
    kl.sum().backward()
    assert th.isfinite(new.grad).all()
    # a policy that masks with -inf (not sb3-contrib's -1e8): still no NaN
    minus_inf = th.tensor([[-np.inf, -np.inf, 0.0, -np.inf], [0.0, 1.0, 2.0, 3.0]])
    kl_inf = masked_categorical_kl(minus_inf, minus_inf.clone(), masks)
    assert th.isfinite(kl_inf).all() and kl_inf.tolist() == pytest.approx([0.0, 0.0], abs=1e-7)
    # without masks: the ordinary categorical KL
    a, b = th.randn(5, 4), th.randn(5, 4)
    expected = kl_divergence(Categorical(logits=a), Categorical(logits=b))
    assert th.allclose(masked_categorical_kl(a, b, None), expected, atol=1e-6)


def test_kl_penalty_ppo_masked_learning_has_finite_kl_and_beta():
    model = MaskableKLPenaltyPPO("MlpPolicy", _multi_discrete(), n_steps=64, batch_size=32, n_epochs=2, seed=0, device="cpu")
    model.learn(128)
    kl = model.measure_kl()
    assert np.isfinite(kl) and kl >= 0 and np.isfinite(model.current_beta)
    for estimator in ("sample_low_var", "sample_log_ratio"):
        MaskableKLPenaltyPPO(
            "MlpPolicy", _discrete(), n_steps=64, batch_size=32, n_epochs=2, kl_estimator=estimator, seed=0, device="cpu"
        ).learn(128)


def test_reinforce_log_probs_are_those_of_the_masked_policy():
    model = MaskableREINFORCE("MlpPolicy", _discrete(), n_steps=200, seed=0, device="cpu")
    model.learn(200)
    buffer = model.rollout_buffer
    batch = next(buffer.get())
    masks = batch.action_masks.bool()
    assert (~masks).any()
    # the stored rollout log-probabilities are the masked policy's: mass only on legal actions
    dist = model.policy.get_distribution(batch.observations, action_masks=batch.action_masks)
    assert th.allclose(dist.distribution.probs[~masks], th.zeros(()), atol=1e-30)
    legal_taken = masks.gather(1, batch.actions.long())
    assert legal_taken.all()


# ---------------------------------------------------------------------------------------------- 4. never illegal


class _CountIllegal(gym.Wrapper):
    """Counts actions outside the current state's mask (sb3-contrib's convention: per-choice entries)."""

    def __init__(self, env: gym.Env):
        super().__init__(env)
        self.illegal = 0
        self.steps = 0

    def action_masks(self) -> np.ndarray:
        return np.asarray(self.env.unwrapped.action_masks(), dtype=bool)

    def step(self, action):
        masks = self.action_masks()
        space = self.action_space
        if isinstance(space, spaces.Discrete):
            chosen = [int(action)]
        else:
            sizes = list(space.nvec) if isinstance(space, spaces.MultiDiscrete) else [2] * space.n
            offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
            chosen = list(offsets + np.asarray(action).reshape(-1))
        self.illegal += int(not masks[chosen].all())
        self.steps += 1
        return self.env.step(action)


@pytest.mark.integration
@pytest.mark.parametrize("algo", sorted(ALGOS))
@pytest.mark.parametrize("env_name", ["discrete", "multi_discrete"])
def test_never_an_illegal_action_in_training_and_predict(algo, env_name):
    """10k environment steps of training and 10k of predict with masks: no action outside the mask."""
    vec_env = make_vec_env(lambda: _CountIllegal(ENVS[env_name]()), n_envs=8, seed=0)
    kwargs = dict(n_steps=125, batch_size=500, n_epochs=1) if algo != "reinforce_mask" else dict(n_steps=125)
    model = ALGOS[algo]("MlpPolicy", vec_env, seed=0, device="cpu", learning_rate=3e-3, **kwargs)
    model.learn(10_000)
    assert sum(vec_env.get_attr("steps")) == 10_000
    assert sum(vec_env.get_attr("illegal")) == 0
    # predict with the masks of sb3-contrib's get_action_masks, stochastic and deterministic
    eval_env = make_vec_env(lambda: _CountIllegal(ENVS[env_name]()), n_envs=16, seed=1)
    obs = eval_env.reset()
    for step in range(10_000 // 16 + 1):
        actions, _ = model.predict(obs, action_masks=get_action_masks(eval_env), deterministic=step % 2 == 0)
        obs, *_ = eval_env.step(actions)
    assert sum(eval_env.get_attr("steps")) >= 10_000
    assert sum(eval_env.get_attr("illegal")) == 0


def test_unmasked_policy_does_choose_illegal_actions():
    """The counter really counts: without masks, an untrained policy picks illegal actions."""
    vec_env = make_vec_env(lambda: _CountIllegal(_discrete()), n_envs=1, seed=0)
    model = MaskableClipPPO("MlpPolicy", vec_env, n_steps=256, batch_size=64, n_epochs=1, seed=0, device="cpu")
    model.learn(256, use_masking=False)
    assert vec_env.get_attr("illegal")[0] > 50


# ---------------------------------------------------------------------------------------------- interface


@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_save_load_predict_evaluate_and_eval_callback(algo, tmp_path):
    cls = ALGOS[algo]
    model = cls("MlpPolicy", _discrete(), n_steps=128, seed=0, device="cpu")
    eval_env = make_vec_env(_discrete, n_envs=1, seed=5)
    callback = MaskableEvalCallback(eval_env, eval_freq=128, n_eval_episodes=2, warn=False)
    model.learn(256, callback=callback)
    assert callback.n_calls >= 256 and np.isfinite(callback.last_mean_reward)
    model.save(tmp_path / "model")
    loaded = cls.load(tmp_path / "model", env=_discrete(), device="cpu")
    assert type(loaded) is cls and isinstance(loaded.policy, MaskableActorCriticPolicy)
    assert type(loaded.rollout_buffer) is type(model.rollout_buffer)
    assert th.equal(_params(model), _params(loaded))
    if algo == "kl_ppo_mask":
        assert loaded.current_beta == model.current_beta
    obs = np.stack([_discrete().reset(seed=i)[0] for i in range(4)])
    masks = np.zeros((4, 20), dtype=bool)
    masks[np.arange(4), [3, 7, 11, 19]] = True
    for m in (model, loaded):
        actions, _ = m.predict(obs, action_masks=masks)
        assert actions.tolist() == [3, 7, 11, 19]
    mean, _ = evaluate_policy(loaded, make_vec_env(_discrete, n_envs=1, seed=1), n_eval_episodes=2, warn=False)
    assert np.isfinite(mean)
    loaded.learn(128)  # continues training


def test_action_masker_wrapper_and_dict_observations():
    class DictIdentity(gym.Wrapper):
        def __init__(self, env):
            super().__init__(env)
            self.observation_space = spaces.Dict({"state": env.observation_space})

        def reset(self, **kwargs):
            obs, info = self.env.reset(**kwargs)
            return {"state": obs}, info

        def step(self, action):
            obs, *rest = self.env.step(action)
            return ({"state": obs}, *rest)

    def masks(env: gym.Env) -> np.ndarray:
        allowed = np.zeros(6, dtype=bool)
        allowed[env.unwrapped.state] = True
        allowed[0] = True
        return allowed

    for cls in ALGOS.values():
        env = ActionMasker(DictIdentity(IdentityEnv(dim=6, ep_length=20)), masks)
        model = cls("MultiInputPolicy", env, n_steps=64, seed=0, device="cpu")
        model.learn(128)
        assert model.rollout_buffer.action_masks.sum() < model.rollout_buffer.action_masks.size


def test_mlp_policy_is_sb3_contrib_maskable_and_other_policies_are_refused():
    assert MaskableClipPPO.policy_aliases["MlpPolicy"] is MaskableActorCriticPolicy
    with pytest.raises(TypeError, match="must be a MaskableActorCriticPolicy subclass"):
        MaskableClipPPO(ActorCriticPolicy, _discrete(), device="cpu")
    with pytest.raises(ValueError, match="not maskable"):
        MaskableClipPPO("MlpPolicy", "Pendulum-v1", device="cpu")


# ---------------------------------------------------------------------------------------------- 6. bad input


def test_env_without_action_masks_is_refused_with_use_masking():
    model = MaskableClipPPO("MlpPolicy", IdentityEnv(dim=4), n_steps=32, batch_size=32, device="cpu")
    with pytest.raises(ValueError, match=r"action_masks\(\).*ActionMasker.*use_masking=False"):
        model.learn(32)
    model.learn(32, use_masking=False)  # fine without masking
    with pytest.raises(TypeError, match="`use_masking` must be a bool"):
        model.learn(32, use_masking="yes")


class _BadMasks(gym.Wrapper):
    def __init__(self, env, masks):
        super().__init__(env)
        self._masks = masks

    def action_masks(self):
        return self._masks


@pytest.mark.parametrize(
    ("masks", "error", "match"),
    [
        (np.ones(19, dtype=bool), ValueError, r"shape \(1, 20\).*got shape \(1, 19\)"),
        (np.ones((2, 20), dtype=bool), ValueError, r"shape \(1, 20\)"),
        (np.array(["yes"] * 20), TypeError, "booleans"),
        (np.full(20, 0.5), TypeError, "all 0 or 1"),
        (np.zeros(20, dtype=bool), ValueError, "no action in state 0"),
    ],
)
def test_bad_masks_from_the_env(masks, error, match):
    model = MaskableClipPPO("MlpPolicy", _BadMasks(_discrete(), masks), n_steps=32, batch_size=32, device="cpu")
    with pytest.raises(error, match=match):
        model.learn(32)


def test_bad_masks_in_predict_and_multi_discrete_dimension_without_legal_choice():
    model = MaskableClipPPO("MlpPolicy", _discrete(), n_steps=32, batch_size=32, device="cpu")
    obs = np.array([4, 5, 6])  # three observations of Discrete(20)
    with pytest.raises(ValueError, match=r"shape \(3, 20\)"):
        model.predict(obs, action_masks=np.ones((2, 20), dtype=bool))
    with pytest.raises(ValueError, match=r"shape \(1, 20\)"):
        model.predict(obs[0], action_masks=np.ones(10, dtype=bool))
    with pytest.raises(TypeError, match="booleans"):
        model.predict(obs, action_masks=np.full((3, 20), "x"))
    masks = np.ones((3, 20), dtype=bool)
    masks[2] = False
    with pytest.raises(ValueError, match="no action in state 2"):
        model.predict(obs, action_masks=masks)
    # 0/1 integers are fine
    model.predict(obs, action_masks=np.ones((3, 20), dtype=np.int64))
    space = spaces.MultiDiscrete([2, 3])
    assert mask_dim(space) == 5 and mask_dim(spaces.MultiBinary(3)) == 6
    with pytest.raises(ValueError, match=r"no action in action dimension 1 \(mask entries 2..4\) in state 0"):
        check_action_masks([True, False, False, False, False], space, 1)


def test_masks_match_get_action_masks_of_a_vec_env():
    vec_env = make_vec_env(_multi_discrete, n_envs=3, seed=0)
    vec_env.reset()
    masks = check_action_masks(get_action_masks(vec_env), vec_env.action_space, 3)
    assert masks.shape == (3, 15) and masks.dtype == np.bool_


# ---------------------------------------------------------------------------------------------- rl_zoo3


def test_zoo_registers_the_masked_algorithms_with_the_unmasked_samplers():
    import gymnasium
    from rl_zoo3 import hyperparams_opt, utils

    from sb3_ppo_variants.registry import MASKABLE_ALGOS
    from sb3_ppo_variants.zoo import SAMPLERS, register_zoo, zoo_config

    register_zoo()
    for name, unmasked in (("clip_ppo_mask", "clip_ppo"), ("kl_ppo_mask", "kl_ppo"), ("reinforce_mask", "reinforce")):
        assert utils.ALGOS[name] is MASKABLE_ALGOS[name] is ALGOS[name]
        assert hyperparams_opt.HYPERPARAMS_SAMPLER[name] is SAMPLERS[unmasked]
        assert zoo_config(name).is_file()
    env = gymnasium.make("InvalidActionDiscrete-v0")
    assert len(env.unwrapped.action_masks()) == 20


@pytest.mark.slow
@pytest.mark.parametrize("algo", sorted(ALGOS))
def test_zoo_train_and_enjoy_on_an_env_with_action_masks(algo, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo), "MPLBACKEND": "Agg"}
    common = ["--algo", algo, "--env", "InvalidActionMultiDiscrete-v0", "-f", str(tmp_path), "--seed", "0"]
    for args in (["train", *common, "-n", "1024", "--eval-freq", "-1"], ["enjoy", *common[:-2], "--no-render", "-n", "200"]):
        result = subprocess.run(
            [sys.executable, "-m", "sb3_ppo_variants.zoo", *args], env=env, capture_output=True, text=True, timeout=400
        )
        assert result.returncode == 0, result.stderr[-3000:]
    model = ALGOS[algo].load(next(tmp_path.glob(f"{algo}/InvalidActionMultiDiscrete-v0_1/*.zip")), device="cpu")
    assert model.num_timesteps >= 1024


# ---------------------------------------------------------------------------------------------- 5. lean path


def test_lean_maskable_categorical_equals_sb3_contrib_bit_for_bit():
    from sb3_contrib.common.maskable.distributions import MaskableCategorical

    from sb3_ppo_variants._lean.maskable import LeanMaskableCategorical

    generator = th.Generator().manual_seed(0)
    logits = th.randn(64, 7, generator=generator)
    masks = th.rand(64, 7, generator=generator) > 0.5
    masks[:, 3] = True
    for mask in (masks, None):
        ours, theirs = LeanMaskableCategorical(logits, mask), MaskableCategorical(logits=logits, masks=mask)
        assert th.equal(ours.logits, theirs.logits) and th.equal(ours.probs, theirs.probs)
        assert th.equal(ours.entropy(), theirs.entropy())
        actions = theirs.sample()
        assert th.equal(ours.log_prob(actions), theirs.log_prob(actions))
        th.manual_seed(1)
        first = ours.sample()
        th.manual_seed(1)
        assert th.equal(first, theirs.sample())


class _SubclassedMaskablePolicy(MaskableActorCriticPolicy):
    """A user's subclass: the loop must call its public methods."""


@pytest.mark.parametrize("env_name", ["discrete", "multi_discrete", "multi_binary"])
def test_lean_path_only_for_exact_sb3_contrib_policies_and_same_results_as_public(env_name):
    from sb3_ppo_variants._lean.maskable import is_exact_sb3_contrib_maskable_policy

    def lean_maskable(policy):
        return is_exact_sb3_contrib_maskable_policy(policy)

    kwargs = dict(n_steps=64, batch_size=32, n_epochs=2, ent_coef=0.01, seed=5, device="cpu", policy_kwargs=SB3_ADAM)
    # built and trained one after the other: sb3-contrib's envs draw their illegal actions from numpy's global RNG
    lean = MaskableKLPenaltyPPO("MlpPolicy", ENVS[env_name](), **kwargs)
    assert lean_maskable(lean.policy)
    handle = lean.policy.action_net.register_forward_hook(lambda *args: None)
    assert not lean_maskable(lean.policy)  # a hook turns the lean path off
    handle.remove()
    lean.policy.forward = lean.policy.forward  # a method replaced on the object, too
    assert not lean_maskable(lean.policy)
    del lean.policy.forward
    lean.learn(128)
    public = MaskableKLPenaltyPPO(_SubclassedMaskablePolicy, ENVS[env_name](), **kwargs)
    assert not lean_maskable(public.policy)
    public.learn(128)
    assert (_params(lean) - _params(public)).abs().max() <= 1e-6
    assert lean.current_beta == public.current_beta
