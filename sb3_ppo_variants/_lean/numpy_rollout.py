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
probability boundary). ``tests/lean/test_numpy_policy.py`` compares the step with SB3's ``policy.forward`` on the same
draws.

It runs only where the lean path runs (the policy is exactly SB3's, no hooks: see
:mod:`sb3_ppo_variants._lean.structure`), and only for the parts listed above, exactly those classes, on the CPU in
float32; :func:`numpy_rollout_step` returns None otherwise and the torch lean path runs. The update has its NumPy
counterpart, forward and backward: :mod:`sb3_ppo_variants._lean.numpy_update`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.distributions import (
    DiagGaussianDistribution,
    Distribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_ppo_variants._lean.distributions import LeanCategorical, LeanNormal
from sb3_ppo_variants._lean.numpy_dists import NumpyCategorical, NumpyGaussian, NumpyGsde
from sb3_ppo_variants._lean.numpy_net import MAX_LAYER_WORK, NumpyPolicyNet, parameter_view, policy_net

#: actions, values (None without the critic), log-probabilities, a function building the torch distribution, and a
#: function giving the distribution's parameters flat per sample (the logits, or the means then the standard
#: deviations: the layout of :func:`sb3_ppo_variants.kl_penalty_ppo.kl.dist_params`) without building it in torch
StepOutputs = tuple[th.Tensor, th.Tensor | None, th.Tensor, Callable[[], Distribution], Callable[[], th.Tensor]]


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


class NumpyRolloutStep:
    """One rollout step of an exact SB3 ``MlpPolicy`` in NumPy (see the module docstring); build with
    :func:`numpy_rollout_step`. Views of the parameters' memory are taken at construction (in-place changes are
    seen): the gate keeps one while the policy's structure, which includes each parameter's memory address, is the
    same (:class:`~sb3_ppo_variants._lean.structure.StructureCache`)."""

    def __init__(self, policy: ActorCriticPolicy, net: NumpyPolicyNet) -> None:
        self.policy = policy
        self.net = net
        self.widest = net.widest
        self.kind = {DiagGaussianDistribution: "gaussian", StateDependentNoiseDistribution: "gsde"}.get(
            type(policy.action_dist), "categorical"
        )
        # log_std read at every step through a view (a change between two steps shows, as in SB3)
        self.log_std: np.ndarray = parameter_view(policy.log_std) if self.kind != "categorical" else np.empty(0)  # type: ignore[arg-type]
        self._noise_tensor: th.Tensor | None = None
        self._exponential_tensor: th.Tensor | None = None

    def applies(self, obs: th.Tensor) -> bool:
        """Whether this batch of observations is small enough for the NumPy step (:data:`MAX_LAYER_WORK`)."""
        return obs.device.type == "cpu" and obs.shape[0] * self.widest <= MAX_LAYER_WORK

    def act(self, obs: th.Tensor, with_values: bool) -> StepOutputs:
        """Actions, values (``with_values``), log-probabilities, and functions building the torch distribution and
        giving its flat parameters (:data:`StepOutputs`)."""
        net = self.net
        x = obs.numpy().astype(np.float32, copy=False)
        x = x.reshape(x.shape[0], -1)
        values = None
        if with_values:
            values = th.from_numpy(net.value_head.forward(net.critic.forward(x)))
        latent = net.actor.forward(x)
        out = net.action_head.forward(latent)
        if self.kind == "gaussian":
            # SB3: Normal(mean, ones_like(mean) * exp(log_std)); rsample: loc + eps * scale, eps from torch's generator
            gaussian = NumpyGaussian(out, self.log_std)
            actions = out + self._noise(out.shape) * gaussian.std
            return self._gaussian(actions, gaussian, values)
        if self.kind == "gsde":
            return self._gsde(out, latent, values)
        categorical = NumpyCategorical(out)
        logits = categorical.log_p
        actions = self._categorical_draw(categorical.p)
        log_prob = categorical.log_prob(actions)

        def distribution() -> Distribution:
            return self._distribution(LeanCategorical(th.from_numpy(logits)))

        return th.from_numpy(actions), values, th.from_numpy(log_prob), distribution, lambda: th.from_numpy(logits)

    def _gaussian(self, actions: np.ndarray, gaussian: NumpyGaussian, values: th.Tensor | None) -> StepOutputs:
        """Outputs for Gaussian actions: torch's ``Normal.log_prob`` formula, summed over action dimensions."""
        mean, scale = gaussian.mean, gaussian.scale
        log_prob = gaussian.log_prob(actions)

        def distribution() -> Distribution:
            return self._distribution(LeanNormal(th.from_numpy(mean), th.from_numpy(scale)))

        def flat_params() -> th.Tensor:
            return th.from_numpy(np.concatenate([mean, scale], axis=1))

        return th.from_numpy(actions), values, th.from_numpy(log_prob), distribution, flat_params

    def _gsde(self, mean: np.ndarray, latent: np.ndarray, values: th.Tensor | None) -> StepOutputs:
        """gSDE (SB3's ``StateDependentNoiseDistribution``): the standard deviations of :class:`NumpyGsde`, the action
        ``mean + latent @ exploration matrix`` (the matrices torch sampled at the last ``reset_noise``: one, or one per
        env)."""
        dist = self.policy.action_dist
        assert isinstance(dist, StateDependentNoiseDistribution)
        gsde = NumpyGsde(mean, self.log_std, latent, dist)
        matrices = dist.exploration_matrices
        if len(latent) == 1 or matrices is None or len(latent) != len(matrices):
            noise = latent @ dist.exploration_mat.detach().numpy()
        else:
            noise = (latent[:, None, :] @ matrices.detach().numpy())[:, 0, :]
        return self._gaussian(mean + noise, gsde, values)

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
    """A :class:`NumpyRolloutStep` for ``policy``, or None where one of its layers is not an exact supported class.

    The gate checks first that the lean path applies (exact SB3 policy, no hooks).
    """
    net = policy_net(policy, contiguous=False)
    return None if net is None else NumpyRolloutStep(policy, net)
