"""The rollout step of SB3's MLP policy in NumPy: the same function and random draws, a fraction of the overhead.

In a rollout the policy sees a handful of observations per step (one with SB3's defaults for MuJoCo). Each torch
call then costs 5-10 µs of dispatch for microseconds of arithmetic, and SB3's step makes about twenty of them (the
two MLPs, the heads, the distribution, sampling, log-probability), while a NumPy call costs about one. Rollouts need
no gradients, so :class:`NumpyRolloutStep` computes the step of an exact SB3 ``MlpPolicy`` in NumPy, on the policy's
own parameter memory (read-only views, ``log_std`` included, so an in-place change of a parameter between two steps
is seen at the next one):

- observations cast to float32 (SB3's ``preprocess_obs`` of a non-image ``Box``), flattened;
- each ``Linear`` as ``x @ W.T + b``, ``Tanh`` as ``np.tanh``, ``ReLU`` as ``np.maximum(x, 0)``, for the actor and
  the critic halves of SB3's ``MlpExtractor`` and the action and value heads;
- ``DiagGaussianDistribution``: the noise is drawn by torch exactly as ``Normal.rsample`` draws it
  (``torch.empty(shape).normal_()``: the same generator, the same numbers), the action is ``mean + noise * std``
  and the log-probability is torch's ``Normal.log_prob`` formula summed over action dimensions;
- gSDE (``StateDependentNoiseDistribution``, PPO's unsquashed form with ``exp(log_std)``): the standard deviations
  from the actor's latent and ``log_std``, the action ``mean + latent @ exploration matrix`` with the matrices torch
  sampled at the last ``reset_noise`` (no draw at the step, as in SB3);
- ``CategoricalDistribution``: the logits normalised by their log-sum-exp, and the action drawn as
  ``Categorical.sample`` draws it, by ``torch.multinomial(probs, 1, True)``. On the CPU torch computes that one draw
  per row as ``argmax(probs / q)`` with ``q = torch.empty_like(probs).exponential_()`` (the exponential form of the
  Gumbel-max trick); the step draws ``q`` the same way and takes the argmax in NumPy, a third of the call's cost
  (its input checks and the tensor round trip). This is how torch implements the call, not a documented contract:
  :func:`exponential_draws_match_multinomial` checks it once per process on the installed torch (same actions, same
  generator state afterwards, the user's generator untouched), and where it does not hold, and for probabilities
  that are NaN (a diverged policy: torch's own error is raised), ``torch.multinomial`` itself runs.

What differs from SB3's torch computation is float rounding: NumPy's matrix products and ``tanh`` may round the last
bit differently from torch's. The random draws are the same numbers, so a seeded run takes the same actions
up to that rounding (a categorical draw could only flip where the uniform number falls within rounding of a
probability boundary). ``tests/test_numpy_policy.py`` compares the step with SB3's ``policy.forward`` on the same
draws.

It runs only where the lean path runs (the policy is exactly SB3's, no hooks: see
:mod:`sb3_ppo_variants.common.policies`), and only for the parts listed above, exactly those classes, on the CPU in
float32; :func:`numpy_rollout_step` returns None otherwise and the torch lean path runs. The update has its NumPy
counterpart, forward and backward: :mod:`sb3_ppo_variants.common.numpy_update`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    Distribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import FlattenExtractor, MlpExtractor
from torch import nn

from sb3_ppo_variants.common.distributions import LeanCategorical, LeanNormal, lean_distributions_available

#: torch's ``Normal.log_prob`` constant, ``log(sqrt(2 pi))``, computed the same way
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
#: the most multiply-adds (rows x inputs x outputs) of one layer the NumPy step takes on: below 2**18 OpenBLAS (NumPy's
#: BLAS on Linux and Windows) multiplies on one thread, as torch does here; above it the call overhead NumPy saves
#: is small against the arithmetic, and the torch lean path runs
MAX_LAYER_WORK = 2**18
#: actions, values (None without the critic), log-probabilities, a function building the torch distribution, and a
#: function giving the distribution's parameters flat per sample (the logits, or the means then the standard
#: deviations: the layout of :func:`sb3_ppo_variants.kl_penalty_ppo.kl.dist_params`) without building it in torch
StepOutputs = tuple[th.Tensor, th.Tensor | None, th.Tensor, Callable[[], Distribution], Callable[[], th.Tensor]]
#: a layer of the NumPy forward: ("linear", W.T, b) or ("tanh", None, None) / ("relu", None, None)
Layer = tuple[str, Any, Any]


#: :func:`exponential_draws_match_multinomial`'s answer (None: not asked yet in this process)
_EXPONENTIAL_DRAWS: bool | None = None


def exponential_draws_match_multinomial() -> bool:
    """Whether, on this torch, ``torch.multinomial(probs, 1, True)`` of CPU float32 probabilities picks
    ``argmax(probs / q)`` per row with ``q = torch.empty_like(probs).exponential_()`` and leaves the generator where that
    draw leaves it. Checked once per process on random probabilities of a few shapes (including zeros and a single
    action), inside ``torch.random.fork_rng`` (the user's generator state is restored afterwards)."""
    global _EXPONENTIAL_DRAWS
    if _EXPONENTIAL_DRAWS is None:
        _EXPONENTIAL_DRAWS = _check_exponential_draws()
    return _EXPONENTIAL_DRAWS


def _check_exponential_draws() -> bool:
    shapes = [(1, 1), (1, 2), (8, 2), (3, 5), (64, 3), (257, 7), (1024, 2)]
    with th.random.fork_rng(devices=[]):
        th.manual_seed(20261207)
        for rows, actions in shapes:
            probs = th.rand(rows, actions) ** 3
            probs[0, 0] = 0.0 if actions > 1 else 1.0  # a zero probability, never drawn
            probs /= probs.sum(dim=1, keepdim=True)
            state = th.get_rng_state()
            expected = th.multinomial(probs, 1, True).T.reshape(-1)
            after = th.get_rng_state()
            th.set_rng_state(state)
            q = th.empty(probs.shape, dtype=th.float32).exponential_().numpy()
            drawn = (probs.numpy() / q).argmax(axis=1)
            if not (np.array_equal(drawn, expected.numpy()) and th.equal(after, th.get_rng_state())):
                return False
    return True


def _array(parameter: th.Tensor) -> np.ndarray:
    """A read-only NumPy view of a parameter's memory (no copy: later in-place changes are seen)."""
    array = parameter.detach().numpy()
    array.flags.writeable = False
    return array


def _layers(module: nn.Module) -> list[Layer] | None:
    """The NumPy layers of an exact ``Linear``, or a ``Sequential`` of exact ``Linear``/``Tanh``/``ReLU``."""
    modules = list(module) if type(module) is nn.Sequential else [module]
    layers: list[Layer] = []
    for layer in modules:
        kind = type(layer)
        if kind is nn.Linear:
            if layer.bias is None:
                return None
            layers.append(("linear", _array(layer.weight).T, _array(layer.bias)))  # type: ignore[arg-type]
        elif kind is nn.Tanh:
            layers.append(("tanh", None, None))
        elif kind is nn.ReLU:
            layers.append(("relu", None, None))
        else:
            return None
    return layers


def _run(layers: list[Layer], x: np.ndarray) -> np.ndarray:
    for kind, weight_t, bias in layers:
        if kind == "linear":
            x = x @ weight_t + bias
        elif kind == "tanh":
            x = np.tanh(x)
        else:
            x = np.maximum(x, 0.0, dtype=x.dtype)
    return x


def supported_policy(policy: ActorCriticPolicy) -> bool:
    """Whether every part of the policy's rollout step is one :class:`NumpyRolloutStep` computes (exact classes)."""
    space = policy.observation_space
    if type(policy) is not ActorCriticPolicy or not isinstance(space, spaces.Box):
        return False
    if is_image_space(space, check_channels=False) and policy.normalize_images:
        return False
    extractors = (
        [policy.features_extractor]
        if policy.share_features_extractor
        else [policy.pi_features_extractor, policy.vf_features_extractor]
    )
    # the extractor and its own Flatten module, exactly as SB3 builds them (a replaced .flatten is honoured by torch)
    if any(type(extractor) is not FlattenExtractor or type(extractor.flatten) is not nn.Flatten for extractor in extractors):
        return False
    flattens: list[Any] = [extractor.flatten for extractor in extractors]
    if any((flatten.start_dim, flatten.end_dim) != (1, -1) for flatten in flattens):
        return False
    if type(policy.mlp_extractor) is not MlpExtractor:
        return False
    dist = policy.action_dist
    if type(dist) is StateDependentNoiseDistribution:
        # gSDE with exp(log_std) and no squashing (PPO's default); expln and tanh-squashed actions keep torch
        if dist.use_expln or dist.bijector is not None or dist.learn_features:
            return False
    elif type(dist) not in (DiagGaussianDistribution, CategoricalDistribution):
        return False
    parameters = list(policy.parameters())
    return all(p.device.type == "cpu" and p.dtype == th.float32 for p in parameters) and lean_distributions_available()


class NumpyRolloutStep:
    """One rollout step of an exact SB3 ``MlpPolicy`` in NumPy (see the module docstring); build with
    :func:`numpy_rollout_step`. Views of the parameters' memory are taken at construction (in-place changes are
    seen): our algorithms keep one while the policy's structure, which includes each parameter's memory address, is
    the same (:class:`~sb3_ppo_variants.common.policies.StructureCache`)."""

    def __init__(self, policy: ActorCriticPolicy, actor: list[Layer], critic: list[Layer], heads: tuple) -> None:
        self.policy = policy
        self.actor, self.critic = actor, critic
        self.action_head, self.value_head = heads
        self.widest = max(w.shape[0] * w.shape[1] for kind, w, _ in [*actor, *critic, *heads[0], *heads[1]] if w is not None)
        self.kind = {DiagGaussianDistribution: "gaussian", StateDependentNoiseDistribution: "gsde"}.get(
            type(policy.action_dist), "categorical"
        )
        # log_std read at every step through a view (a change between two steps shows, as in SB3)
        self.log_std: np.ndarray = _array(policy.log_std) if self.kind != "categorical" else np.empty(0)  # type: ignore[arg-type]
        self._noise_tensor: th.Tensor | None = None
        self._exponential_tensor: th.Tensor | None = None

    def applies(self, obs: th.Tensor) -> bool:
        """Whether this batch of observations is small enough for the NumPy step (:data:`MAX_LAYER_WORK`)."""
        return obs.device.type == "cpu" and obs.shape[0] * self.widest <= MAX_LAYER_WORK

    def act(self, obs: th.Tensor, with_values: bool) -> StepOutputs:
        """Actions, values (``with_values``), log-probabilities, and functions building the torch distribution and
        giving its flat parameters (:data:`StepOutputs`)."""
        x = obs.numpy().astype(np.float32, copy=False)
        x = x.reshape(x.shape[0], -1)
        values = None
        if with_values:
            values = th.from_numpy(_run(self.value_head, _run(self.critic, x)))
        latent = _run(self.actor, x)
        out = _run(self.action_head, latent)
        if self.kind == "gaussian":
            mean = out
            # SB3: Normal(mean, ones_like(mean) * exp(log_std)); rsample: loc + eps * scale, eps from torch's generator
            std = np.exp(self.log_std)
            actions = mean + self._noise(mean.shape) * std
            scale = np.ones_like(mean) * std
            return self._gaussian(actions, mean, scale, values)
        if self.kind == "gsde":
            return self._gsde(out, latent, values)
        shifted = out - out.max(axis=1, keepdims=True)
        logits = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        probs = np.exp(logits)
        actions = self._categorical_draw(probs)
        actions_t = th.from_numpy(actions)
        log_prob = logits[np.arange(len(actions)), actions]

        def categorical() -> Distribution:
            return self._distribution(LeanCategorical(th.from_numpy(logits)))

        return actions_t, values, th.from_numpy(log_prob), categorical, lambda: th.from_numpy(logits)

    def _gaussian(self, actions: np.ndarray, mean: np.ndarray, scale: np.ndarray, values: th.Tensor | None) -> StepOutputs:
        """Outputs for Gaussian actions: torch's ``Normal.log_prob`` formula, summed over action dimensions."""
        log_prob = (-((actions - mean) ** 2) / (2 * scale**2) - np.log(scale) - _LOG_SQRT_2PI).sum(axis=1)

        def distribution() -> Distribution:
            return self._distribution(LeanNormal(th.from_numpy(mean), th.from_numpy(scale)))

        def flat_params() -> th.Tensor:
            return th.from_numpy(np.concatenate([mean, scale], axis=1))

        return th.from_numpy(actions), values, th.from_numpy(log_prob), distribution, flat_params

    def _gsde(self, mean: np.ndarray, latent: np.ndarray, values: th.Tensor | None) -> StepOutputs:
        """gSDE (SB3's ``StateDependentNoiseDistribution``): std of action j is ``sqrt(sum_i latent_i^2 sigma_ij^2 +
        eps)``, the action is ``mean + latent @ exploration matrix`` (the matrices torch sampled at the last
        ``reset_noise``: one, or one per env)."""
        dist = self.policy.action_dist
        assert isinstance(dist, StateDependentNoiseDistribution)
        std = np.exp(self.log_std)
        if not dist.full_std:
            shape = (int(dist.latent_sde_dim), int(dist.action_dim))  # type: ignore[arg-type]
            std = np.ones(shape, dtype=np.float32) * std
        scale = np.sqrt((latent**2) @ (std**2) + dist.epsilon)
        matrices = dist.exploration_matrices
        if len(latent) == 1 or matrices is None or len(latent) != len(matrices):
            noise = latent @ dist.exploration_mat.detach().numpy()
        else:
            noise = (latent[:, None, :] @ matrices.detach().numpy())[:, 0, :]
        return self._gaussian(mean + noise, mean, scale, values)

    def _categorical_draw(self, probs: np.ndarray) -> np.ndarray:
        """One action per row of ``probs``: ``Categorical.sample``'s ``torch.multinomial(probs, 1, True)`` draw,
        computed as torch computes it on the CPU where :func:`exponential_draws_match_multinomial` (module docstring)."""
        total = float(probs.sum())  # NaN where a probability is (torch raises for it): every other row sums to 1
        if total == total and exponential_draws_match_multinomial():
            return (probs / self._exponential(probs.shape)).argmax(axis=1).astype(np.int64, copy=False)
        return th.multinomial(th.from_numpy(probs), 1, True).T.reshape(-1).numpy()

    def _exponential(self, shape: tuple[int, ...]) -> np.ndarray:
        """``torch.empty(shape).exponential_()`` (multinomial's draw), filling a kept tensor of that shape."""
        if self._exponential_tensor is None or tuple(self._exponential_tensor.shape) != shape:
            self._exponential_tensor = _kept_tensor(shape)
        return self._exponential_tensor.exponential_().numpy()

    def _noise(self, shape: tuple[int, ...]) -> np.ndarray:
        """Standard normal noise from torch's generator: the numbers ``torch.empty(shape).normal_()`` draws (filling
        a kept tensor of the same shape draws the same numbers, without allocating one per step)."""
        if self._noise_tensor is None or tuple(self._noise_tensor.shape) != shape:
            self._noise_tensor = _kept_tensor(shape)
        return self._noise_tensor.normal_().numpy()

    def _distribution(self, torch_distribution: Any) -> Distribution:
        dist = self.policy.action_dist
        dist.distribution = torch_distribution  # type: ignore[attr-defined]
        return dist


def _kept_tensor(shape: tuple[int, ...]) -> th.Tensor:
    """A float32 tensor the step refills at every call: a normal tensor even when made under inference mode (where the
    rollouts run), so that filling it in place stays allowed outside inference mode as well."""
    with th.inference_mode(False):
        return th.empty(shape, dtype=th.float32)


def numpy_rollout_step(policy: ActorCriticPolicy) -> NumpyRolloutStep | None:
    """A :class:`NumpyRolloutStep` for ``policy``, or None where one of its parts is not an exact supported class.

    The caller checks first that the lean path applies (exact SB3 policy, no hooks).
    """
    if not supported_policy(policy):
        return None
    extractor = policy.mlp_extractor
    actor, critic = _layers(extractor.policy_net), _layers(extractor.value_net)
    action_head, value_head = _layers(policy.action_net), _layers(policy.value_net)
    if actor is None or critic is None or action_head is None or value_head is None:
        return None
    return NumpyRolloutStep(policy, actor, critic, (action_head, value_head))
