"""SB3's MLP policy as NumPy arrays: one network class for the rollout step and the update.

A policy step or a PPO minibatch of SB3's defaults is a handful of samples through two 64x64 MLPs. torch spends most
of such a call in dispatch (5-10 µs per kernel for microseconds of arithmetic), and its ``tanh`` is several times
slower than NumPy's at these sizes. :class:`NumpyMlp` computes an exact ``Sequential`` of ``Linear``/``Tanh``/``ReLU``
(or one ``Linear``) on the parameters' own memory: forward, optionally keeping every layer's input on a *tape*, and
backward from a tape into :class:`Gradients`, one flat float32 array whose views become the parameters' ``.grad``.

The derivatives (checked against autograd in ``tests/lean/test_numpy_update.py``): ``Linear``: ``dW = g^T x``,
``db = sum(g)``, ``dx = g W``; ``tanh``: ``g (1 - y^2)``; ``ReLU``: ``g [y > 0]``.

:func:`supported_policy` says whether every module of a policy is one this file (and the distributions of
:mod:`sb3_ppo_variants._lean.numpy_dists`) computes exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.distributions import (
    CategoricalDistribution,
    DiagGaussianDistribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.torch_layers import FlattenExtractor, MlpExtractor
from torch import nn

#: the most multiply-adds (rows x inputs x outputs) of one product NumPy takes in one call: below 2**18 OpenBLAS
#: (NumPy's BLAS on Linux and Windows) multiplies on one thread, as torch does here; above it on every core
MAX_LAYER_WORK = 2**18
#: the most pieces :func:`matmul` cuts a product into before handing it to torch
MAX_PIECES = 16


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``a @ b`` in float32 on one thread (as the torch update runs with ``torch.set_num_threads(1)``).

    A product over :data:`MAX_LAYER_WORK` multiply-adds is cut into pieces under that size: row blocks of ``a`` written
    into row blocks of the result, or, where ``a`` has few rows (a weight gradient ``g^T x`` over a long batch), blocks
    of the inner dimension whose products are added (float rounding only). A product that would need more than
    :data:`MAX_PIECES` pieces runs in torch, on the threads the user gave torch. An inner dimension of 1 is a broadcast
    product.
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


def parameter_view(parameter: th.Tensor) -> np.ndarray:
    """A read-only NumPy view of a parameter's memory (no copy: later in-place changes, such as Adam's, are seen)."""
    array = parameter.detach().numpy()
    array.flags.writeable = False
    return array


class Gradients:
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


class NumpyMlp:
    """An exact ``Sequential`` of ``Linear`` (with bias) / ``Tanh`` / ``ReLU``, or one ``Linear``, in NumPy.

    :param module: the torch module; ``TypeError`` for any other layer
    :param contiguous: multiply by a C-ordered copy of ``W^T`` made at each call (OpenBLAS is faster with it on a
        minibatch) instead of the transposed view (no copy: cheaper for the few rows of a rollout step)
    """

    def __init__(self, module: nn.Module, contiguous: bool) -> None:
        self.contiguous = contiguous
        #: (kind, layer, W^T view, b view); kind is "linear", "tanh" or "relu"
        self.layers: list[tuple[str, Any, Any, Any]] = []
        layers: list[Any] = list(module) if type(module) is nn.Sequential else [module]
        for layer in layers:
            kind = type(layer)
            if kind is nn.Linear and layer.bias is not None:
                self.layers.append(("linear", layer, parameter_view(layer.weight).T, parameter_view(layer.bias)))
            elif kind is nn.Tanh:
                self.layers.append(("tanh", None, None, None))
            elif kind is nn.ReLU:
                self.layers.append(("relu", None, None, None))
            else:
                raise TypeError(f"no NumPy layer for {kind.__name__}")
        #: the largest weight matrix (inputs x outputs)
        self.widest = max((w.shape[0] * w.shape[1] for _, _, w, _ in self.layers if w is not None), default=0)

    def forward(self, x: np.ndarray, tape: list[np.ndarray] | None = None) -> np.ndarray:
        """The output; with ``tape``, the input of every layer and then the output are appended to it."""
        if tape is not None:
            tape.append(x)
        for kind, _, weight_t, bias in self.layers:
            if kind == "linear":
                if self.contiguous:
                    x = matmul(x, np.ascontiguousarray(weight_t))
                    x += bias
                else:
                    x = x @ weight_t + bias
            elif kind == "tanh":
                x = np.tanh(x)
            else:
                x = np.maximum(x, 0.0, dtype=x.dtype)
            if tape is not None:
                tape.append(x)
        return x

    def backward(self, tape: list[np.ndarray], grad: np.ndarray, gradients: Gradients, input_grad: bool = False) -> Any:
        """Write (not add) the parameter gradients of ``sum(grad * output)`` for the forward pass recorded on ``tape``
        (each parameter appears once); with ``input_grad``, return the gradient with respect to the input."""
        for index in range(len(self.layers) - 1, -1, -1):
            kind, layer, _, _ = self.layers[index]
            if kind == "linear":
                matmul(grad.T, tape[index], out=gradients[layer.weight])
                np.add.reduce(grad, axis=0, out=gradients[layer.bias])
                if index > 0 or input_grad:
                    grad = matmul(grad, layer.weight.detach().numpy())
            elif kind == "tanh":
                output = tape[index + 1]
                grad = grad * (1 - output * output)
            else:
                grad = grad * (tape[index + 1] > 0)
        return grad if input_grad else None


def supported_policy(policy: ActorCriticPolicy) -> bool:
    """Whether every part of the policy is one the NumPy network and distributions compute (exact classes): SB3's
    ``MlpPolicy`` on a non-image ``Box``, ``FlattenExtractor``, ``MlpExtractor``, a categorical, diagonal Gaussian or
    gSDE (``exp(log_std)``, unsquashed) distribution, float32 parameters on the CPU."""
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
    return all(p.device.type == "cpu" and p.dtype == th.float32 for p in policy.parameters())


def policy_net(policy: ActorCriticPolicy, contiguous: bool) -> NumpyPolicyNet | None:
    """The :class:`NumpyPolicyNet` of ``policy``, or None where a part of it is not one NumPy computes exactly
    (:func:`supported_policy`, and every layer ``Linear``/``Tanh``/``ReLU``)."""
    if not supported_policy(policy):
        return None
    try:
        return NumpyPolicyNet(policy, contiguous)
    except TypeError:
        return None


class NumpyPolicyNet:
    """The four networks of an exact SB3 ``MlpPolicy`` (actor and critic halves of the ``MlpExtractor``, the action
    and value heads) as :class:`NumpyMlp`; ``TypeError`` where one holds another layer."""

    def __init__(self, policy: ActorCriticPolicy, contiguous: bool) -> None:
        extractor = policy.mlp_extractor
        self.actor = NumpyMlp(extractor.policy_net, contiguous)
        self.critic = NumpyMlp(extractor.value_net, contiguous)
        self.action_head = NumpyMlp(policy.action_net, contiguous)
        self.value_head = NumpyMlp(policy.value_net, contiguous)
        #: the largest weight matrix of the four (:data:`MAX_LAYER_WORK` bounds a step's rows times it)
        self.widest = max(net.widest for net in (self.actor, self.critic, self.action_head, self.value_head))
