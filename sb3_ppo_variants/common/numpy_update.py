"""The gradient of SB3's MLP policy in NumPy: forward, loss and backward written out, gradients into ``.grad``.

A PPO minibatch of SB3's defaults is 64 samples through two 64x64 MLPs: torch spends most of such a step in
dispatch (about fifty forward and backward kernels and the autograd engine) for microseconds of arithmetic each,
and its ``tanh`` kernel is several times slower than NumPy's at these sizes. :class:`NumpyPolicyGradient` computes
what the lean path computes in torch for one minibatch of an exact SB3 ``MlpPolicy``: the two MLPs, the action and
value heads, the log-probabilities and entropy of the batch's actions, with every intermediate kept, and then the
backward pass by hand, from the gradients of the loss with respect to those per-sample quantities down to every
parameter, written into the parameters' ``.grad`` (buffers kept for the update, so the optimizer step and the gradient
clipping run unchanged, and after the update ``.grad`` holds the last minibatch's clipped gradients, as with SB3).

The loss itself (the clipped surrogate, the value loss, the entropy bonus, the KL penalty) is written with its
gradient in :mod:`sb3_ppo_variants.common.numpy_losses` and assembled by the algorithm
(:meth:`~sb3_ppo_variants.common.base.PolicyGradientAlgorithm._numpy_minibatch_loss`).

The derivatives, per sample, with ``z`` the logits, ``p = softmax(z)``, ``mu``/``s`` the Gaussian mean and standard
deviation and ``a`` the action (each checked against autograd in ``tests/test_numpy_update.py``):

- categorical: ``d log p_a / dz = onehot(a) - p``; ``dH/dz = -p (log p + H)``; for the closed-form
  ``KL[p0 || p]``: ``dKL/dz = p - p0``;
- Gaussian, per action dimension: ``d log N / d mu = (a - mu) / s^2``, ``d log N / ds = ((a - mu)^2 / s^2 - 1) / s``;
  ``dH/ds = 1 / s``; ``dKL[N(mu0, s0) || N(mu, s)] / d mu = (mu - mu0) / s^2`` and ``/ds = 1/s - (s0^2 + (mu - mu0)^2)
  / s^3``; then ``s = exp(log_std)`` (DiagGaussian), or gSDE's ``s = sqrt(latent^2 @ exp(log_std)^2 + eps)`` with the
  latent detached, as SB3 detaches it (``learn_features=False``);
- ``Linear``: ``dW = g^T x``, ``db = sum(g)``, ``dx = g W``; ``tanh``: ``g (1 - y^2)``; ``ReLU``: ``g [y > 0]``.

Where torch splits a gradient between the two equal arguments of ``minimum``/``maximum``, or passes it at the
boundary of ``clamp``, the NumPy functions do the same, so the gradients differ from torch's only by float rounding.
It runs under the same conditions as the NumPy rollout step (:mod:`sb3_ppo_variants.common.numpy_policy`), while
the optimizer is the default fused Adam, and only where the algorithm's loss is exactly ours (no override of the
loss methods): see :meth:`~sb3_ppo_variants.common.base.PolicyGradientAlgorithm._numpy_update`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch as th
from stable_baselines3.common.distributions import DiagGaussianDistribution, StateDependentNoiseDistribution
from stable_baselines3.common.policies import ActorCriticPolicy
from torch import nn

from sb3_ppo_variants.common.numpy_policy import MAX_LAYER_WORK, supported_policy

#: torch's ``Normal.entropy`` constant, ``0.5 + 0.5 log(2 pi)``, and ``log(sqrt(2 pi))`` of ``Normal.log_prob``
_GAUSSIAN_ENTROPY = 0.5 + 0.5 * math.log(2 * math.pi)
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))


#: the most pieces :func:`matmul` cuts a product into before handing it to torch
MAX_PIECES = 16


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` in float32 on one thread (as the torch update runs with ``torch.set_num_threads(1)``).

    OpenBLAS (NumPy's BLAS) multiplies on one thread up to :data:`MAX_LAYER_WORK` multiply-adds and on every core
    above. A larger product is cut into pieces under that size: row blocks of ``a`` written into row blocks of the
    result, or, where ``a`` has few rows (a weight gradient ``g^T x`` over a long batch), blocks of the inner dimension
    whose products are added (float rounding only). A product that would need more than :data:`MAX_PIECES` pieces runs
    in torch, on the threads the user gave torch, as the torch update's would. An inner dimension of 1 is a
    broadcast product.
    """
    rows, inner = a.shape
    columns = b.shape[1]
    if inner == 1:
        return np.multiply(a, b, out=out)
    if rows * inner * columns <= MAX_LAYER_WORK:
        return np.matmul(a, b, out=out)
    if out is None:
        out = np.empty((rows, columns), dtype=np.result_type(a, b))
    block = MAX_LAYER_WORK // (inner * columns)
    if block >= 8 and -(-rows // block) <= MAX_PIECES:
        for start in range(0, rows, block):
            np.matmul(a[start : start + block], b, out=out[start : start + block])
        return out
    depth = MAX_LAYER_WORK // (rows * columns)
    if depth >= 8 and -(-inner // depth) <= MAX_PIECES:
        np.matmul(a[:, :depth], b[:depth], out=out)
        partial = np.empty_like(out)
        for start in range(depth, inner, depth):
            np.matmul(a[:, start : start + depth], b[start : start + depth], out=partial)
            out += partial
        return out
    th.mm(th.from_numpy(a), th.from_numpy(b), out=th.from_numpy(out))
    return out


class NumpyBatch:
    """A minibatch of the rollout buffer as NumPy arrays: ``batch.<field>`` of the torch minibatch (CPU tensors),
    read without a copy on first access (``observations``, ``actions``, ``old_log_prob``, ``advantages``, ...)."""

    def __init__(self, batch: Any) -> None:
        self._batch = batch

    def __getattr__(self, name: str) -> np.ndarray:
        array = getattr(self._batch, name).detach().numpy()
        setattr(self, name, array)
        return array


class _Gradients:
    """The parameters' gradient buffers: views into one flat float32 array (``flat``: the gradient clipping reads
    and scales all of them in one call), each shared with its parameter's ``.grad`` tensor."""

    def __init__(self, parameters: list[nn.Parameter]) -> None:
        self.parameters = parameters
        sizes = [p.numel() for p in parameters]
        self.flat = np.zeros(sum(sizes), dtype=np.float32)
        offsets = np.cumsum([0, *sizes])
        self.buffers = {
            id(p): self.flat[start:end].reshape(tuple(p.shape))
            for p, start, end in zip(parameters, offsets[:-1], offsets[1:], strict=True)
        }
        self.written: set[int] = set()

    def __getitem__(self, parameter: nn.Parameter) -> np.ndarray:
        self.written.add(id(parameter))
        return self.buffers[id(parameter)]

    def publish(self) -> None:
        """Point the ``.grad`` of every parameter written this minibatch at its buffer; the others get None (torch
        leaves the gradient of a parameter the loss does not reach at None, and Adam skips it) and a zero buffer
        (so that ``flat`` holds exactly the gradients)."""
        for parameter in self.parameters:
            buffer = self.buffers[id(parameter)]
            if id(parameter) in self.written:
                grad = parameter.grad
                if grad is None or grad.data_ptr() != buffer.ctypes.data:
                    parameter.grad = th.from_numpy(buffer)
            elif parameter.grad is not None:
                parameter.grad = None
                buffer[...] = 0
        self.written.clear()


class _Mlp:
    """An exact ``Sequential`` of ``Linear``/``Tanh``/``ReLU`` (or one ``Linear``): forward keeping every layer's
    input, and backward into the gradient buffers."""

    def __init__(self, module: nn.Module) -> None:
        modules = list(module) if type(module) is nn.Sequential else [module]
        self.layers: list[tuple[str, Any]] = []
        for layer in modules:
            kind = type(layer)
            if kind is nn.Linear and layer.bias is not None:
                self.layers.append(("linear", layer))
            elif kind is nn.Tanh:
                self.layers.append(("tanh", None))
            elif kind is nn.ReLU:
                self.layers.append(("relu", None))
            else:
                raise TypeError(f"no NumPy layer for {kind.__name__}")

    def run(self, x: np.ndarray) -> list[np.ndarray]:
        """The input of every layer, then the output (``result[-1]``)."""
        values = [x]
        for kind, layer in self.layers:
            if kind == "linear":
                # a C-ordered copy of W^T (OpenBLAS multiplies faster by it than by the transposed view)
                x = matmul(x, np.ascontiguousarray(layer.weight.detach().numpy().T))
                x += layer.bias.detach().numpy()
            elif kind == "tanh":
                x = np.tanh(x)
            else:
                x = np.maximum(x, 0.0, dtype=x.dtype)
            values.append(x)
        return values

    def backpropagate(
        self, values: list[np.ndarray], grad: np.ndarray, gradients: _Gradients, input_grad: bool = False
    ) -> np.ndarray | None:
        """Write (not add) the parameter gradients of ``sum(grad * output)`` (each parameter appears once); with
        ``input_grad``, return the gradient with respect to the input as well."""
        for index in range(len(self.layers) - 1, -1, -1):
            kind, layer = self.layers[index]
            if kind == "linear":
                matmul(grad.T, values[index], out=gradients[layer.weight])
                np.add.reduce(grad, axis=0, out=gradients[layer.bias])
                if index > 0 or input_grad:
                    grad = matmul(grad, layer.weight.detach().numpy())
            elif kind == "tanh":
                output = values[index + 1]
                grad = grad * (1 - output * output)
            else:
                grad = grad * (values[index + 1] > 0)
        return grad if input_grad else None


class NumpyDistribution:
    """The action distribution of one minibatch, from the actor's output: log-probabilities, entropy, the closed-form
    KL to stored old parameters, and the gradient of the loss with respect to the actor's output (``grad_out``) and
    to the per-sample standard deviations (``grad_scale``), accumulated by the ``*_backward`` methods."""

    def __init__(self, kind: str, out: np.ndarray, log_std: np.ndarray | None, latent: np.ndarray, dist: Any) -> None:
        self.kind = kind
        self.grad_out = np.zeros_like(out)
        if kind == "categorical":
            shifted = out - out.max(axis=1, keepdims=True)
            self.log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            self.p = np.exp(self.log_p)
            return
        assert log_std is not None
        self.mean = out
        self.std = np.exp(log_std)
        if kind == "gaussian":
            self.scale = np.ones_like(out) * self.std  # SB3: ones_like(mean) * exp(log_std)
        else:  # gSDE: variance from the detached latent
            std = self.std if dist.full_std else np.ones((len(log_std), int(dist.action_dim)), dtype=np.float32) * self.std
            self.full_std_matrix = std
            self.latent_sq = latent * latent
            self.scale = np.sqrt(matmul(self.latent_sq, std * std) + np.float32(dist.epsilon))
        self.grad_scale = np.zeros_like(self.scale)

    def log_prob(self, actions: np.ndarray) -> np.ndarray:
        """Log-probability of each sample's action (discrete: integer indices; continuous: ``(batch, dims)``)."""
        if self.kind == "categorical":
            return self.log_p[np.arange(len(actions)), actions]
        var = self.scale * self.scale
        return (-((actions - self.mean) ** 2) / (2 * var) - np.log(self.scale) - _LOG_SQRT_2PI).sum(axis=1)

    def log_prob_backward(self, actions: np.ndarray, grad: np.ndarray) -> None:
        if self.kind == "categorical":
            self.grad_out -= grad[:, None] * self.p
            self.grad_out[np.arange(len(actions)), actions] += grad  # one action per row: no repeated index
            return
        diff = actions - self.mean
        var = self.scale * self.scale
        self.grad_out += grad[:, None] * diff / var
        self.grad_scale += grad[:, None] * (diff * diff / var - 1) / self.scale

    def entropy(self) -> np.ndarray:
        if self.kind == "categorical":
            return -(self.log_p * self.p).sum(axis=1)
        return (_GAUSSIAN_ENTROPY + np.log(self.scale)).sum(axis=1)

    def entropy_backward(self, entropy: np.ndarray, grad: np.ndarray) -> None:
        if self.kind == "categorical":
            self.grad_out -= grad[:, None] * self.p * (self.log_p + entropy[:, None])
            return
        self.grad_scale += grad[:, None] / self.scale

    def closed_form_kl(self, old_params: np.ndarray) -> np.ndarray:
        """KL[old || this] per sample, ``old_params`` in the layout of
        :func:`sb3_ppo_variants.kl_penalty_ppo.kl.dist_params` (logits; or means, then standard deviations)."""
        if self.kind == "categorical":
            shifted = old_params - old_params.max(axis=1, keepdims=True)
            self.old_log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            self.old_p = np.exp(self.old_log_p)
            return (self.old_p * (self.old_log_p - self.log_p)).sum(axis=1)
        old_mean, old_std = np.split(old_params, 2, axis=1)
        self.old_mean, self.old_std = old_mean, old_std
        var_ratio = (old_std / self.scale) ** 2
        kl = 0.5 * (var_ratio + ((old_mean - self.mean) / self.scale) ** 2 - 1.0 - np.log(var_ratio))
        return kl.sum(axis=1)

    def closed_form_kl_backward(self, grad: np.ndarray) -> None:
        """After :meth:`closed_form_kl`: the gradient of ``sum(grad * KL)``."""
        if self.kind == "categorical":
            self.grad_out += grad[:, None] * (self.p - self.old_p)
            return
        diff = self.mean - self.old_mean
        var = self.scale * self.scale
        self.grad_out += grad[:, None] * diff / var
        self.grad_scale += grad[:, None] * (1 / self.scale - (self.old_std**2 + diff * diff) / (var * self.scale))

    def log_std_grad(self) -> np.ndarray:
        """The gradient with respect to the policy's ``log_std`` parameter, from ``grad_scale``."""
        if self.kind == "gaussian":
            return (self.grad_scale * self.scale).sum(axis=0)
        # scale = sqrt(latent^2 @ std^2 + eps), std = exp(log_std) (broadcast over actions unless full_std)
        grad_var = self.grad_scale / (2 * self.scale)
        grad_log_std = matmul(self.latent_sq.T, grad_var) * 2 * self.full_std_matrix**2
        if grad_log_std.shape != self.std.shape:
            grad_log_std = grad_log_std.sum(axis=1, keepdims=True)
        return grad_log_std


class NumpyPolicyGradient:
    """Forward and backward of an exact SB3 ``MlpPolicy`` on one minibatch, in NumPy (the module docstring);
    build with :func:`numpy_policy_gradient`, and call :meth:`start_update` at the start of every update.

    Use: :meth:`forward` (values, the :class:`NumpyDistribution`), the loss and its per-sample gradients, then
    :meth:`backward`.
    """

    def __init__(self, policy: ActorCriticPolicy) -> None:
        self.policy = policy
        extractor = policy.mlp_extractor
        self.actor = _Mlp(extractor.policy_net)
        self.critic = _Mlp(extractor.value_net)
        self.action_head = _Mlp(policy.action_net)
        self.value_head = _Mlp(policy.value_net)
        self.kind = {DiagGaussianDistribution: "gaussian", StateDependentNoiseDistribution: "gsde"}.get(
            type(policy.action_dist), "categorical"
        )
        self.gradients = _Gradients(list(policy.parameters()))
        self._cache: dict[str, Any] = {}
        #: the loss's gradient with respect to each sample's value (None where the values are not in the loss), set
        #: with the loss and read by :meth:`backward`
        self.grad_values: np.ndarray | None = None

    def start_update(self) -> None:
        """New gradient buffers for an update: the ``.grad`` tensors of one update are not overwritten by the next
        (a callback may keep them, as it may keep autograd's)."""
        self.gradients = _Gradients(self.gradients.parameters)

    def forward(self, obs: np.ndarray, with_values: bool) -> tuple[np.ndarray | None, NumpyDistribution]:
        """Values (``(batch,)``; None without ``with_values``) and the action distribution of the observations."""
        x = obs.astype(np.float32, copy=False).reshape(obs.shape[0], -1)
        cache = self._cache
        cache.clear()
        values = None
        self.grad_values = None
        if with_values:
            cache["critic"] = self.critic.run(x)
            cache["value_head"] = self.value_head.run(cache["critic"][-1])
            values = cache["value_head"][-1][:, 0]
        cache["actor"] = self.actor.run(x)
        latent = cache["actor"][-1]
        cache["action_head"] = self.action_head.run(latent)
        log_std = self.policy.log_std.detach().numpy() if self.kind != "categorical" else None
        dist = NumpyDistribution(self.kind, cache["action_head"][-1], log_std, latent, self.policy.action_dist)
        cache["dist"] = dist
        return values, dist

    def backward(self) -> None:
        """Write the parameter gradients of the last :meth:`forward`'s loss: the distribution's accumulated gradients
        and :attr:`grad_values`, then point ``.grad`` at them."""
        cache, gradients, grad_values = self._cache, self.gradients, self.grad_values
        dist: NumpyDistribution = cache["dist"]
        if self.kind != "categorical":
            gradients[self.policy.log_std][...] = dist.log_std_grad()
        self._backward_through(self.action_head, self.actor, "action_head", "actor", dist.grad_out)
        if grad_values is not None:
            self._backward_through(self.value_head, self.critic, "value_head", "critic", grad_values[:, None])
        gradients.publish()

    def _backward_through(self, head: _Mlp, body: _Mlp, head_key: str, body_key: str, grad: np.ndarray) -> None:
        cache = self._cache
        latent_grad = head.backpropagate(cache[head_key], grad, self.gradients, input_grad=True)
        assert latent_grad is not None
        body.backpropagate(cache[body_key], latent_grad, self.gradients)


def numpy_policy_gradient(policy: ActorCriticPolicy) -> NumpyPolicyGradient | None:
    """A :class:`NumpyPolicyGradient` for ``policy``, or None where a part of it is not an exact supported class.

    The caller checks first that the lean path applies (exact SB3 policy, no hooks) and that rounding may change.
    """
    if not supported_policy(policy):
        return None
    try:
        return NumpyPolicyGradient(policy)
    except TypeError:
        return None
