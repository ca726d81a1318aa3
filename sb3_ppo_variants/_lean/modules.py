"""The lean call of SB3's standard modules: the same kernels as ``module(x)``, without ``nn.Module.__call__``.

A policy step of SB3's MLP policy calls about fifteen modules (the features extractor and its ``Flatten``, two
``Sequential`` of ``Linear`` and activation layers, the action and value heads). For the small networks of RL,
``nn.Module.__call__`` (its hook dispatch and forward lookup, in Python) costs about as much as the arithmetic.
:func:`run_module` computes what ``module(x)`` computes, with the same torch functions in the same order, for modules
whose class is exactly one of torch's or SB3's standard ones; any other module is called normally.

It skips ``__call__``, so it may only run where no hook is registered (checked by
:func:`sb3_ppo_variants._lean.structure.is_exact_sb3_policy`, which decides whether the lean path runs at all).
Being exact classes, their ``forward`` is the library's own: ``Linear`` is ``F.linear(x, weight, bias)``, ``Tanh``
is ``torch.tanh``, ``ReLU`` is ``F.relu(x, inplace)``, ``Flatten`` is ``x.flatten(start_dim, end_dim)``,
``Sequential`` calls its layers in order and SB3's ``FlattenExtractor`` is its ``Flatten``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch as th
import torch.nn.functional as F
from stable_baselines3.common.torch_layers import FlattenExtractor
from torch import nn


def _linear(module: Any, x: th.Tensor) -> th.Tensor:
    return F.linear(x, module.weight, module.bias)


def _tanh(module: Any, x: th.Tensor) -> th.Tensor:
    return th.tanh(x)


def _relu(module: Any, x: th.Tensor) -> th.Tensor:
    return F.relu(x, inplace=module.inplace)


def _flatten(module: Any, x: th.Tensor) -> th.Tensor:
    return x.flatten(module.start_dim, module.end_dim)


def _sequential(module: Any, x: th.Tensor) -> th.Tensor:
    for layer in module:
        x = run_module(layer, x)
    return x


def _flatten_extractor(module: Any, x: th.Tensor) -> th.Tensor:
    return run_module(module.flatten, x)


#: exact module class -> its forward computation, written with the same torch functions as the class's ``forward``
LEAN_FORWARDS: dict[type, Callable[[Any, th.Tensor], th.Tensor]] = {
    nn.Linear: _linear,
    nn.Tanh: _tanh,
    nn.ReLU: _relu,
    nn.Flatten: _flatten,
    nn.Sequential: _sequential,
    FlattenExtractor: _flatten_extractor,
}


def run_module(module: nn.Module, x: th.Tensor) -> th.Tensor:
    """``module(x)``: computed directly for the exact classes of :data:`LEAN_FORWARDS`, by ``module(x)`` otherwise."""
    forward = LEAN_FORWARDS.get(type(module))
    return module(x) if forward is None else forward(module, x)
