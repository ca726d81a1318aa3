"""The eager-PyTorch floor: what a minimal hand-written PPO step costs at our benchmark's sizes, one torch thread.

No SB3, no distribution objects: two separate 64x64 tanh MLPs (actor and critic, SB3's default ``MlpPolicy``), the
clipped surrogate and the value loss, gradient clipping (foreach) and fused Adam. It measures, in microseconds:

- ``gradient step``: forward, backward, clipping and the Adam step on one minibatch;
- ``gradient step, tanh as 2·sigmoid(2x) - 1``: the same with the activation rewritten (the same function, other
  rounding), to see whether torch's slower CPU ``tanh`` matters inside a whole step;
- ``gradient step, NumPy forward and backward``: the same step with the loss gradients computed by hand in NumPy
  (written into ``.grad``; clipping and fused Adam in torch as above), checked against autograd before timing: a
  prototype of what the update could cost without torch's per-op dispatch (our algorithms do not do this);
- ``rollout forward``: both networks and sampling for the observations of one vectorised step, no gradient;
- ``tanh`` and ``2·sigmoid(2x) - 1`` alone on a (minibatch, 64) tensor.

An algorithm built on these ops cannot be faster than this floor per environment step::

    floor = gradient_steps_per_env_step * gradient step + rollout forward / n_envs (+ the env's own step)

Each figure is the median over ``--repeats`` interleaved rounds of a timed loop::

    python benchmarks/floor.py --repeats 5 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch as th
from torch import nn

#: name -> (observation size, number of discrete actions or 0 for a Gaussian of this many dims, action dims,
#:          minibatch size, envs per rollout step, gradient steps per env step)
SETTINGS: dict[str, tuple[int, int, int, int, int, float]] = {
    "CartPole-v1, rl_zoo3 PPO settings": (4, 2, 1, 256, 8, 20 / 256),
    "HalfCheetah-v5, SB3 defaults": (17, 0, 6, 64, 1, 10 / 64),
}


def _tanh_by_sigmoid(x: th.Tensor) -> th.Tensor:
    return th.sigmoid(x * 2).mul(2).sub(1)


def _mlp(n_in: int, n_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(n_in, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, n_out))


def _forward(net: nn.Sequential, x: th.Tensor, activation: Callable[[th.Tensor], th.Tensor]) -> th.Tensor:
    for layer in net:
        x = activation(x) if isinstance(layer, nn.Tanh) else layer(x)
    return x


def _numpy_loss_grads(
    nets: Sequence[nn.Sequential], data: dict[str, np.ndarray], n_discrete: int
) -> tuple[list[np.ndarray], np.ndarray | None]:
    """The gradients of the floor's loss (clipped surrogate + 0.5 * value loss) by hand, in NumPy.

    Returns the gradients of every ``Linear`` weight and bias of ``nets`` (actor, then critic) in parameter order, and
    of ``log_std`` for Gaussian actions. Backward of ``tanh`` is ``1 - tanh^2``; of ``min(r A, clip(r) A)`` it is
    ``A`` where the unclipped term is the smaller one or ``r`` lies within the clip range (torch splits a tie between
    the two terms, which sums to the same), 0 elsewhere.
    """
    x, batch = data["obs"], data["obs"].shape[0]
    forward: list[tuple[list[np.ndarray], list[np.ndarray]]] = []
    outputs = []
    for net in nets:
        weights = [layer.weight.detach().numpy() for layer in net if isinstance(layer, nn.Linear)]
        biases = [layer.bias.detach().numpy() for layer in net if isinstance(layer, nn.Linear)]
        activations = [x]
        for i, (weight, bias) in enumerate(zip(weights, biases, strict=True)):
            z = activations[-1] @ weight.T + bias
            activations.append(np.tanh(z) if i < len(weights) - 1 else z)
        forward.append((weights, activations))
        outputs.append(activations[-1])
    out, values = outputs
    advantages = data["advantages"]
    adv = (advantages - advantages.mean()) / (advantages.std(ddof=1) + 1e-8)
    actions = data["actions"]
    if n_discrete:
        shifted = out - out.max(axis=1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        log_prob = log_probs[np.arange(batch), actions]
    else:
        log_std = data["log_std"]
        std, diff = np.exp(log_std), actions - out
        log_prob = (-(diff**2) / (2 * std**2) - log_std).sum(axis=1)
    ratio = np.exp(log_prob - data["old_log_prob"])
    active = (ratio * adv < np.clip(ratio, 0.8, 1.2) * adv) | ((ratio >= 0.8) & (ratio <= 1.2))
    grad_log_prob = -adv / batch * active * ratio
    grad_log_std = None
    if n_discrete:
        grad_out = -np.exp(log_probs) * grad_log_prob[:, None]
        grad_out[np.arange(batch), actions] += grad_log_prob
    else:
        grad_out = diff / std**2 * grad_log_prob[:, None]
        grad_log_std = ((diff**2 / std**2 - 1) * grad_log_prob[:, None]).sum(axis=0)
    grads: list[np.ndarray] = []
    for (weights, activations), grad in zip(forward, (grad_out, (values - data["returns"][:, None]) / batch), strict=True):
        layer_grads = []
        for i in range(len(weights) - 1, -1, -1):
            layer_grads.append([grad.T @ activations[i], grad.sum(axis=0)])
            if i:
                grad = (grad @ weights[i]) * (1 - activations[i] ** 2)
        grads.extend(g for pair in reversed(layer_grads) for g in pair)
    return grads, grad_log_std


def _timed(step: Callable[[], object], loops: int) -> float:
    for _ in range(loops // 10):
        step()
    start = time.perf_counter()
    for _ in range(loops):
        step()
    return (time.perf_counter() - start) / loops * 1e6


def measure(setting: str, loops: int) -> dict[str, float]:
    """One round of every figure of ``setting`` (microseconds)."""
    obs_dim, n_discrete, act_dim, batch, n_envs, _ = SETTINGS[setting]
    th.manual_seed(0)
    actor, critic = _mlp(obs_dim, n_discrete or act_dim), _mlp(obs_dim, 1)
    log_std = nn.Parameter(th.zeros(act_dim))
    params = [*actor.parameters(), *critic.parameters(), *([] if n_discrete else [log_std])]
    optimizer = th.optim.Adam(params, lr=3e-4, eps=1e-5, fused=True)
    obs = th.randn(batch, obs_dim)
    actions = th.randint(0, n_discrete, (batch,)) if n_discrete else th.randn(batch, act_dim)
    old_log_prob, advantages, returns = th.full((batch,), -0.7), th.randn(batch), th.randn(batch)

    def log_prob(out: th.Tensor) -> th.Tensor:
        if n_discrete:
            return out.log_softmax(-1).gather(1, actions[:, None]).squeeze(1)
        return (-((actions - out) ** 2) / (2 * log_std.exp() ** 2) - log_std).sum(-1)

    def loss(activation: Callable[[th.Tensor], th.Tensor]) -> th.Tensor:
        """The clipped surrogate plus half the value loss."""
        ratio = th.exp(log_prob(_forward(actor, obs, activation)) - old_log_prob)
        adv = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        policy_loss = -th.min(ratio * adv, th.clamp(ratio, 0.8, 1.2) * adv).mean()
        value_loss = ((_forward(critic, obs, activation).squeeze(1) - returns) ** 2).mean()
        return policy_loss + 0.5 * value_loss

    def gradient_step(activation: Callable[[th.Tensor], th.Tensor]) -> Callable[[], None]:
        def step() -> None:
            optimizer.zero_grad(set_to_none=True)
            loss(activation).backward()
            nn.utils.clip_grad_norm_(params, 0.5, foreach=True)
            optimizer.step()

        return step

    data = {"obs": obs.numpy(), "actions": actions.numpy(), "log_std": log_std.detach().numpy()}
    data.update(old_log_prob=old_log_prob.numpy(), advantages=advantages.numpy(), returns=returns.numpy())

    def numpy_gradient_step() -> None:
        grads, grad_log_std = _numpy_loss_grads((actor, critic), data, n_discrete)
        for parameter, grad in zip(params, grads, strict=False):
            parameter.grad = th.from_numpy(grad)
        if grad_log_std is not None:
            log_std.grad = th.from_numpy(grad_log_std)
        nn.utils.clip_grad_norm_(params, 0.5, foreach=True)
        optimizer.step()

    # the hand-written gradients are autograd's (checked once per round, before timing)
    optimizer.zero_grad(set_to_none=True)
    loss(th.tanh).backward()
    grads, grad_log_std = _numpy_loss_grads((actor, critic), data, n_discrete)
    reference = [p.grad for p in params]
    mine = [*grads, *([] if grad_log_std is None else [grad_log_std])]
    error = max(float((th.from_numpy(g) - r).abs().max()) for g, r in zip(mine, reference, strict=True))
    if error > 1e-5:
        raise AssertionError(f"hand-written gradients differ from autograd's by {error}")

    rollout_obs = th.randn(n_envs, obs_dim)

    def rollout_forward() -> None:
        with th.inference_mode():
            out = _forward(actor, rollout_obs, th.tanh)
            _forward(critic, rollout_obs, th.tanh)
            (th.multinomial(out.softmax(-1), 1) if n_discrete else out + th.randn_like(out) * log_std.exp()).numpy()

    activations = th.randn(batch, 64)
    return {
        "gradient step": _timed(gradient_step(th.tanh), loops),
        "gradient step, tanh as 2·sigmoid(2x) - 1": _timed(gradient_step(_tanh_by_sigmoid), loops),
        "gradient step, NumPy forward and backward": _timed(numpy_gradient_step, loops),
        "rollout forward": _timed(rollout_forward, loops),
        f"tanh on ({batch}, 64)": _timed(lambda: th.tanh(activations), loops * 4),
        f"2·sigmoid(2x) - 1 on ({batch}, 64)": _timed(lambda: _tanh_by_sigmoid(activations), loops * 4),
    }


def main(argv: Sequence[str] | None = None) -> None:
    """Measure every setting, interleaved over rounds; print and write ``floor.md``."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="interleaved rounds (default 5)")
    parser.add_argument("--loops", type=int, default=500, help="timed calls per figure and round (default 500)")
    parser.add_argument("--out", type=Path, default=None, help="write floor.md into this directory")
    args = parser.parse_args(argv)
    th.set_num_threads(1)
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in SETTINGS}
    for _ in range(args.repeats):
        for name in SETTINGS:
            rounds[name].append(measure(name, args.loops))
    lines = [
        f"# The eager-PyTorch floor ({dt.datetime.now().isoformat(timespec='seconds')})",
        "",
        f"torch {th.__version__}, 1 thread, {platform.machine()}, load average (1 min) {os.getloadavg()[0]:.2f} at the "
        f"end. Median of {args.repeats} interleaved rounds, microseconds. Command: "
        f"`python benchmarks/floor.py --repeats {args.repeats} --loops {args.loops}`.",
        "",
    ]
    for name, results in rounds.items():
        _, _, _, _, n_envs, steps_per_env_step = SETTINGS[name]
        median = {key: statistics.median(r[key] for r in results) for key in results[0]}
        floor = steps_per_env_step * median["gradient step"] + median["rollout forward"] / n_envs
        lines += [f"## {name}", "", "| figure | µs |", "|---|---:|"]
        lines += [f"| {key} | {value:.1f} |" for key, value in median.items()]
        lines += [f"| floor per env step, without the env's own step | {floor:.1f} |", ""]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "floor.md").write_text(text)


if __name__ == "__main__":
    main()
