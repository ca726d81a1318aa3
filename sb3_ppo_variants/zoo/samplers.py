"""Optuna samplers for ClipPPO, KLPenaltyPPO, REINFORCE and SPO, and the converters that map a trial back to hyperparameters.

Samplers have rl_zoo3's signature, ``sample_<algo>_params(trial, n_actions, n_envs, additional_args) -> dict``, and
return keyword arguments for the algorithm's constructor. They suggest values in a transformed space, where a
uniform or log-uniform search is sensible:

- ``one_minus_gamma`` and ``one_minus_gae_lambda`` on a log scale (0.99 and 0.999 are as far apart as 0.9 and 0.99);
- ``n_steps_pow`` and ``batch_size_pow``, exponents of powers of two;
- ``learning_rate``, ``ent_coef``, ``max_grad_norm``, ``kl_target`` and ``beta`` on a log scale;
- ``net_arch`` and ``activation_fn`` as names (see :data:`NET_ARCHS`, :data:`ACTIVATIONS`);
- the PPO controls (docs/controls.md) of ClipPPO, KLPenaltyPPO and SPO: ``adaptive_lr`` (on/off) with its
  ``adaptive_lr_target_kl`` on a log scale, ``dual_clip`` (ClipPPO), ``clip_range_vf`` with ``value_clip_form``,
  ``advantage_normalization`` (``"minibatch"``, ``"batch"`` or ``"off"``) and ``recompute_advantage``, all as plain
  dimensions (no conditional branch: ``adaptive_lr_target_kl`` is drawn whether or not ``adaptive_lr`` is on).

The real values of the transformed ones are recorded with ``trial.set_user_attr`` (``gamma``, ``gae_lambda``,
``n_steps``, ``batch_size``), so that the dashboard and ``study.trials_dataframe()`` show them.

A converter, ``convert_<algo>_params(params) -> dict``, maps the raw values a finished trial recorded
(``trial.params``) to the same keyword arguments; rl_zoo3 calls it (its ``HYPERPARAMS_CONVERTER``) to train with
``--trial-id``. Each sampler returns exactly ``convert(trial.params)``, so the two always agree.

No sampler ever proposes ``batch_size > n_steps * n_envs``: the exponent ranges of the PPO samplers depend on
``n_envs`` only (see :func:`rollout_search_space`), so the space stays fixed within a study and Optuna's
multivariate TPE can model it jointly. REINFORCE takes one gradient step on the whole rollout
(``batch_size=None``, ``n_epochs=1``) and has no minibatch size to tune.

The samplers need Optuna and PyTorch only, not rl_zoo3: they also serve standalone studies, and can be tested
instantly with :class:`optuna.trial.FixedTrial`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from optuna.trial import BaseTrial
from torch import nn

#: Hidden layers of the policy and value networks, by the name a trial records.
NET_ARCHS: dict[str, dict[str, list[int]]] = {
    "small": {"pi": [64, 64], "vf": [64, 64]},
    "medium": {"pi": [128, 128], "vf": [128, 128]},
    "large": {"pi": [256, 256], "vf": [256, 256]},
}

#: Activation functions, by the name a trial records.
ACTIVATIONS: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU}

#: Smallest and largest exponent of ``n_steps`` (per env) for ClipPPO and KLPenaltyPPO: 2**4 = 16 to 2**12 = 4096.
N_STEPS_POW_RANGE = (4, 12)
#: Smallest and largest exponent of the minibatch size: 2**4 = 16 to 2**10 = 1024.
BATCH_SIZE_POW_RANGE = (4, 10)
#: The rollout (``n_steps * n_envs``) of the PPO samplers holds at least 2**8 = 256 samples.
MIN_ROLLOUT_POW = 8
#: Exponent range of REINFORCE's ``n_steps``, 2**8 = 256 to 2**12 = 4096: each env's rollout should hold whole
#: episodes (without a baseline, a rollout in which no episode ends gives no sample at all).
REINFORCE_N_STEPS_POW_RANGE = (8, 12)

#: rl_zoo3's sampler signature: ``(trial, n_actions, n_envs, additional_args) -> hyperparameters``.
Sampler = Callable[[BaseTrial, int, int, dict[str, Any]], dict[str, Any]]
#: rl_zoo3's converter signature: ``(trial.params) -> hyperparameters``.
Converter = Callable[[Mapping[str, Any]], dict[str, Any]]


def _check_n_envs(n_envs: Any) -> int:
    if isinstance(n_envs, bool) or not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"`n_envs` must be an int >= 1, got {n_envs!r}")
    return n_envs


def rollout_search_space(n_envs: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The ranges of ``n_steps_pow`` and ``batch_size_pow`` that the PPO samplers search for ``n_envs`` envs.

    With ``k = floor(log2(n_envs))``, ``n_steps_pow`` starts at ``max(4, 8 - k)`` (a rollout of at least 256 samples)
    and ``batch_size_pow`` ends at ``min(10, n_steps_pow_min + k)``, so every combination satisfies
    ``2**batch_size_pow <= 2**(n_steps_pow_min + k) <= n_steps * n_envs``: no trial is wasted on an invalid
    minibatch size, and no value is clamped behind the sampler's back.

    :param n_envs: Number of parallel environments of the trials
    :return: ``((n_steps_pow_low, n_steps_pow_high), (batch_size_pow_low, batch_size_pow_high))``, inclusive
    """
    k = _check_n_envs(n_envs).bit_length() - 1
    n_steps_low = max(N_STEPS_POW_RANGE[0], MIN_ROLLOUT_POW - k)
    batch_high = min(BATCH_SIZE_POW_RANGE[1], n_steps_low + k)
    return (n_steps_low, N_STEPS_POW_RANGE[1]), (BATCH_SIZE_POW_RANGE[0], batch_high)


# ---------------------------------------------------------------------------------------------------- converters

#: Raw trial parameters that pass through the converters unchanged.
_PLAIN = frozenset(
    {
        "learning_rate",
        "ent_coef",
        "vf_coef",
        "max_grad_norm",
        "n_epochs",
        "clip_range",
        "kl_target",
        "beta",
        "use_baseline",
        "epsilon",
    }
)
_COMMON_KEYS = frozenset(
    {"one_minus_gamma", "learning_rate", "ent_coef", "vf_coef", "max_grad_norm", "net_arch", "activation_fn"}
)
_PPO_KEYS = _COMMON_KEYS | {"n_steps_pow", "batch_size_pow", "n_epochs", "one_minus_gae_lambda"}
#: The raw parameters each algorithm's trials record.
TRIAL_KEYS: dict[str, frozenset[str]] = {
    "clip_ppo": _PPO_KEYS | {"clip_range"},
    "kl_ppo": _PPO_KEYS | {"kl_target", "beta"},
    "reinforce": _COMMON_KEYS | {"n_steps_pow", "use_baseline"},
    "spo": _PPO_KEYS | {"epsilon"},
}
TRIAL_KEYS.update({f"{algo}_lstm": keys for algo, keys in TRIAL_KEYS.items()})
_CONTROL_KEYS = frozenset(
    {
        "adaptive_lr",
        "adaptive_lr_target_kl",
        "clip_range_vf",
        "value_clip_form",
        "advantage_normalization",
        "recompute_advantage",
    }
)
#: The raw parameters of the PPO controls each algorithm's trials record. A trial stored before the samplers drew
#: them has none of them: it converts to the controls' defaults (all off).
CONTROL_TRIAL_KEYS: dict[str, frozenset[str]] = {
    "clip_ppo": _CONTROL_KEYS | {"dual_clip"},
    "kl_ppo": _CONTROL_KEYS,
    "reinforce": frozenset(),
    "spo": _CONTROL_KEYS,
}
#: The controls a recurrent policy cannot take: the recurrent algorithms refuse ``recompute_advantage=True`` (it would
#: evaluate the critic on the whole rollout without the LSTM states), so their samplers do not search it.
RECURRENT_EXCLUDED_CONTROLS = frozenset({"recompute_advantage"})
CONTROL_TRIAL_KEYS.update(
    {f"{algo}_lstm": keys - RECURRENT_EXCLUDED_CONTROLS for algo, keys in CONTROL_TRIAL_KEYS.items() if keys}
)
CONTROL_TRIAL_KEYS["reinforce_lstm"] = frozenset()
#: Choices of the categorical control dimensions.
DUAL_CLIP_CHOICES = (None, 2.0, 3.0, 5.0)
CLIP_RANGE_VF_CHOICES = (None, 0.1, 0.2, 0.5, 1.0)
ADVANTAGE_NORMALIZATIONS = ("minibatch", "batch", "off")
#: Range of the KL target of the adaptive learning rate (rsl_rl's default 0.01 in the middle, log scale).
ADAPTIVE_LR_TARGET_KL_RANGE = (0.003, 0.03)


def _convert(params: Mapping[str, Any], algo: str) -> dict[str, Any]:
    """Map the raw values of a trial of ``algo`` to constructor keyword arguments."""
    expected = TRIAL_KEYS[algo]
    controls = CONTROL_TRIAL_KEYS[algo]
    if controls & set(params):  # a trial with the controls must have all of them
        expected = expected | controls
    missing, unknown = sorted(expected - set(params)), sorted(set(params) - expected)
    if missing or unknown:
        raise ValueError(
            f"The trial parameters do not come from the {algo!r} sampler: "
            f"missing {missing or 'none'}, unknown {unknown or 'none'} (expected {sorted(expected)})"
        )
    hyperparams: dict[str, Any] = {}
    for name in ("n_steps", "batch_size"):
        if f"{name}_pow" in params:
            hyperparams[name] = 2 ** int(params[f"{name}_pow"])
    hyperparams["gamma"] = 1.0 - float(params["one_minus_gamma"])
    if "one_minus_gae_lambda" in params:
        hyperparams["gae_lambda"] = 1.0 - float(params["one_minus_gae_lambda"])
    hyperparams.update({key: value for key, value in params.items() if key in _PLAIN})
    net_arch, activation = params["net_arch"], params["activation_fn"]
    if net_arch not in NET_ARCHS:
        raise ValueError(f"Unknown `net_arch` {net_arch!r}; expected one of {sorted(NET_ARCHS)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"Unknown `activation_fn` {activation!r}; expected one of {sorted(ACTIVATIONS)}")
    hyperparams["policy_kwargs"] = {
        "net_arch": {key: list(layers) for key, layers in NET_ARCHS[net_arch].items()},
        "activation_fn": ACTIVATIONS[activation],
    }
    if "adaptive_lr" in params:
        hyperparams.update(_convert_controls(params))
    return hyperparams


def _convert_controls(params: Mapping[str, Any]) -> dict[str, Any]:
    """Constructor arguments of the PPO controls from a trial's raw values."""
    normalization = params["advantage_normalization"]
    if normalization not in ADVANTAGE_NORMALIZATIONS:
        raise ValueError(f"Unknown `advantage_normalization` {normalization!r}; expected one of {ADVANTAGE_NORMALIZATIONS}")
    hyperparams: dict[str, Any] = {
        "adaptive_lr_target_kl": float(params["adaptive_lr_target_kl"]) if params["adaptive_lr"] else None,
        "value_clip_form": params["value_clip_form"],
        "normalize_advantage": normalization != "off",
        "normalize_advantage_scope": "batch" if normalization == "batch" else "minibatch",
    }
    if "recompute_advantage" in params:  # not searched for the recurrent algorithms (off)
        hyperparams["recompute_advantage"] = bool(params["recompute_advantage"])
    # None (no value clipping) is the default: left out, because rl_zoo3 reads clip_range_vf as a schedule and
    # rejects None ("Invalid value for clip_range_vf: None") when it trains from a stored trial (--trial-id)
    if params["clip_range_vf"] is not None:
        hyperparams["clip_range_vf"] = params["clip_range_vf"]
    if "dual_clip" in params:
        hyperparams["dual_clip"] = params["dual_clip"]
    return hyperparams


def convert_clip_ppo_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """ClipPPO keyword arguments from the raw parameters of a :func:`sample_clip_ppo_params` trial (``trial.params``).

    :param params: The values the trial recorded, in the sampler's transformed space
    :return: Keyword arguments for :class:`~sb3_ppo_variants.ClipPPO`
    """
    return _convert(params, "clip_ppo")


def convert_kl_ppo_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """KLPenaltyPPO keyword arguments from the raw parameters of a :func:`sample_kl_ppo_params` trial (``trial.params``).

    :param params: The values the trial recorded, in the sampler's transformed space
    :return: Keyword arguments for :class:`~sb3_ppo_variants.KLPenaltyPPO`
    """
    return _convert(params, "kl_ppo")


def convert_reinforce_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """REINFORCE keyword arguments from the raw parameters of a :func:`sample_reinforce_params` trial (``trial.params``).

    :param params: The values the trial recorded, in the sampler's transformed space
    :return: Keyword arguments for :class:`~sb3_ppo_variants.REINFORCE`
    """
    return _convert(params, "reinforce")


def convert_spo_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """SPO keyword arguments from the raw parameters of a :func:`sample_spo_params` trial (``trial.params``).

    :param params: The values the trial recorded, in the sampler's transformed space
    :return: Keyword arguments for :class:`~sb3_ppo_variants.SPO`
    """
    return _convert(params, "spo")


# ---------------------------------------------------------------------------------------------------- samplers


def _suggest_common(trial: BaseTrial) -> dict[str, Any]:
    """Discount, optimiser, loss coefficients and network: the part every algorithm shares."""
    return {
        "one_minus_gamma": trial.suggest_float("one_minus_gamma", 1e-4, 0.1, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 1e-5, 3e-3, log=True),
        "ent_coef": trial.suggest_float("ent_coef", 1e-8, 0.1, log=True),
        "vf_coef": trial.suggest_float("vf_coef", 0.2, 1.0),
        "max_grad_norm": trial.suggest_float("max_grad_norm", 0.3, 5.0, log=True),
        "net_arch": trial.suggest_categorical("net_arch", list(NET_ARCHS)),
        "activation_fn": trial.suggest_categorical("activation_fn", list(ACTIVATIONS)),
    }


def _suggest_ppo_family(trial: BaseTrial, n_envs: int) -> dict[str, Any]:
    """Rollout, minibatches, epochs and GAE of ClipPPO and KLPenaltyPPO, plus the common part."""
    (n_steps_low, n_steps_high), (batch_low, batch_high) = rollout_search_space(n_envs)
    params = {
        "n_steps_pow": trial.suggest_int("n_steps_pow", n_steps_low, n_steps_high),
        "batch_size_pow": trial.suggest_int("batch_size_pow", batch_low, batch_high),
        "n_epochs": trial.suggest_int("n_epochs", 1, 20, log=True),
        "one_minus_gae_lambda": trial.suggest_float("one_minus_gae_lambda", 1e-3, 0.2, log=True),
    }
    params.update(_suggest_common(trial))
    return params


def _suggest_controls(trial: BaseTrial, dual_clip: bool, recurrent: bool = False) -> dict[str, Any]:
    """The PPO controls (docs/controls.md); ``dual_clip`` only where the objective is clipped (ClipPPO), and
    ``recompute_advantage`` only for a memoryless policy (:data:`RECURRENT_EXCLUDED_CONTROLS`)."""
    params: dict[str, Any] = {
        "adaptive_lr": trial.suggest_categorical("adaptive_lr", [False, True]),
        "adaptive_lr_target_kl": trial.suggest_float("adaptive_lr_target_kl", *ADAPTIVE_LR_TARGET_KL_RANGE, log=True),
        "clip_range_vf": trial.suggest_categorical("clip_range_vf", list(CLIP_RANGE_VF_CHOICES)),
        "value_clip_form": trial.suggest_categorical("value_clip_form", ["prediction", "max"]),
        "advantage_normalization": trial.suggest_categorical("advantage_normalization", list(ADVANTAGE_NORMALIZATIONS)),
    }
    if not recurrent:
        params["recompute_advantage"] = trial.suggest_categorical("recompute_advantage", [False, True])
    if dual_clip:
        params["dual_clip"] = trial.suggest_categorical("dual_clip", list(DUAL_CLIP_CHOICES))
    return params


def _finish(trial: BaseTrial, params: dict[str, Any], algo: str, n_envs: int) -> dict[str, Any]:
    """Convert, check the minibatch against the rollout, and record the real values as user attributes."""
    hyperparams = _convert(params, algo)
    n_steps, batch_size = hyperparams["n_steps"], hyperparams.get("batch_size")
    if batch_size is not None and batch_size > n_steps * n_envs:
        # Only reachable with a FixedTrial or an enqueued trial outside the search space.
        raise ValueError(
            f"batch_size = 2**{params['batch_size_pow']} = {batch_size} is larger than the rollout "
            f"n_steps * n_envs = {n_steps} * {n_envs}; for {n_envs} envs `batch_size_pow` must be in "
            f"{rollout_search_space(n_envs)[1]}"
        )
    for key in ("gamma", "gae_lambda", "n_steps", "batch_size"):
        if key in hyperparams:
            trial.set_user_attr(key, hyperparams[key])
    return hyperparams


def sample_clip_ppo_params(
    trial: BaseTrial, n_actions: int, n_envs: int, additional_args: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Sample ClipPPO hyperparameters: the PPO search space, the clipping epsilon ``clip_range`` in [0.05, 0.4], and the
    PPO controls with ``dual_clip`` in {None, 2, 3, 5}.

    :param trial: The Optuna trial (or :class:`optuna.trial.FixedTrial`)
    :param n_actions: Dimension of a Box action space (rl_zoo3's signature; unused by on-policy samplers)
    :param n_envs: Number of parallel environments the trial trains with (bounds the minibatch size)
    :param additional_args: rl_zoo3's extra arguments (unused)
    :return: Keyword arguments for :class:`~sb3_ppo_variants.ClipPPO`
    """
    return _sample_clip_ppo(trial, n_envs, "clip_ppo")


def _sample_clip_ppo(trial: BaseTrial, n_envs: int, algo: str) -> dict[str, Any]:
    n_envs = _check_n_envs(n_envs)
    params = _suggest_ppo_family(trial, n_envs)
    params["clip_range"] = trial.suggest_float("clip_range", 0.05, 0.4)
    params.update(_suggest_controls(trial, dual_clip=True, recurrent=algo.endswith("_lstm")))
    return _finish(trial, params, algo, n_envs)


def sample_kl_ppo_params(
    trial: BaseTrial, n_actions: int, n_envs: int, additional_args: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Sample KLPenaltyPPO hyperparameters: the PPO search space plus the adaptive penalty's two values.

    ``kl_target`` (d_targ) is log-uniform in [0.001, 0.05] (the paper tried 0.003, 0.01 and 0.03) and the initial
    ``beta`` log-uniform in [0.1, 10] (the paper found the result insensitive to it; its fixed-beta runs used 0.3 to
    10). beta adapts (``adaptive_beta=True``, the constructor's default). Plus the PPO controls except dual-clip (the
    sampled objective has no ``clip_range``).

    :param trial: The Optuna trial (or :class:`optuna.trial.FixedTrial`)
    :param n_actions: Dimension of a Box action space (rl_zoo3's signature; unused by on-policy samplers)
    :param n_envs: Number of parallel environments the trial trains with (bounds the minibatch size)
    :param additional_args: rl_zoo3's extra arguments (unused)
    :return: Keyword arguments for :class:`~sb3_ppo_variants.KLPenaltyPPO`
    """
    return _sample_kl_ppo(trial, n_envs, "kl_ppo")


def _sample_kl_ppo(trial: BaseTrial, n_envs: int, algo: str) -> dict[str, Any]:
    n_envs = _check_n_envs(n_envs)
    params = _suggest_ppo_family(trial, n_envs)
    params["kl_target"] = trial.suggest_float("kl_target", 1e-3, 0.05, log=True)
    params["beta"] = trial.suggest_float("beta", 0.1, 10.0, log=True)
    # no clip_range here, so no dual-clip
    params.update(_suggest_controls(trial, dual_clip=False, recurrent=algo.endswith("_lstm")))
    return _finish(trial, params, algo, n_envs)


def sample_reinforce_params(
    trial: BaseTrial, n_actions: int, n_envs: int, additional_args: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Sample REINFORCE hyperparameters: rollout length, discount, optimiser, baseline and network.

    One gradient step per rollout (the constructor's ``batch_size=None``, ``n_epochs=1``). ``vf_coef`` is sampled
    whether or not ``use_baseline`` is, so that the space has no conditional branch (it has no effect without the
    baseline). ``normalize_returns`` keeps its default ('batch'): the per-time-step mode needs >= 2 envs and
    'none' is rarely competitive, so sampling it would mostly spend trials.

    :param trial: The Optuna trial (or :class:`optuna.trial.FixedTrial`)
    :param n_actions: Dimension of a Box action space (rl_zoo3's signature; unused by on-policy samplers)
    :param n_envs: Number of parallel environments the trial trains with
    :param additional_args: rl_zoo3's extra arguments (unused)
    :return: Keyword arguments for :class:`~sb3_ppo_variants.REINFORCE`
    """
    n_envs = _check_n_envs(n_envs)
    params = {"n_steps_pow": trial.suggest_int("n_steps_pow", *REINFORCE_N_STEPS_POW_RANGE)}
    params.update(_suggest_common(trial))
    params["use_baseline"] = trial.suggest_categorical("use_baseline", [False, True])
    return _finish(trial, params, "reinforce", n_envs)


def sample_spo_params(
    trial: BaseTrial, n_actions: int, n_envs: int, additional_args: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Sample SPO hyperparameters: the PPO search space, SPO's ``epsilon`` in [0.05, 0.4] (the range of ClipPPO's
    ``clip_range``, whose role it takes: the ratio's distance from 1 where each sample's objective peaks), and the PPO
    controls except dual-clip (SPO has no clip).

    :param trial: The Optuna trial (or :class:`optuna.trial.FixedTrial`)
    :param n_actions: Dimension of a Box action space (rl_zoo3's signature; unused by on-policy samplers)
    :param n_envs: Number of parallel environments the trial trains with (bounds the minibatch size)
    :param additional_args: rl_zoo3's extra arguments (unused)
    :return: Keyword arguments for :class:`~sb3_ppo_variants.SPO`
    """
    n_envs = _check_n_envs(n_envs)
    params = _suggest_ppo_family(trial, n_envs)
    params["epsilon"] = trial.suggest_float("epsilon", 0.05, 0.4)
    params.update(_suggest_controls(trial, dual_clip=False))
    return _finish(trial, params, "spo", n_envs)


def sample_clip_ppo_lstm_params(
    trial: BaseTrial, n_actions: int, n_envs: int, additional_args: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Sample RecurrentClipPPO hyperparameters: :func:`sample_clip_ppo_params`'s space without ``recompute_advantage``
    (:data:`RECURRENT_EXCLUDED_CONTROLS`). The LSTM's own options (``lstm_hidden_size``, ``enable_critic_lstm``, ...)
    are not searched, as in rl_zoo3 2.9.2's ``sample_ppo_lstm_params``, which is its PPO sampler with those dimensions
    commented out; a config's ``policy_kwargs`` sets them. The parameters are :func:`sample_clip_ppo_params`'s.
    """
    return _sample_clip_ppo(trial, n_envs, "clip_ppo_lstm")


def sample_kl_ppo_lstm_params(
    trial: BaseTrial, n_actions: int, n_envs: int, additional_args: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Sample RecurrentKLPenaltyPPO hyperparameters: :func:`sample_kl_ppo_params`'s space without
    ``recompute_advantage``, the LSTM's options left to the config, as :func:`sample_clip_ppo_lstm_params`. The
    parameters are :func:`sample_kl_ppo_params`'s.
    """
    return _sample_kl_ppo(trial, n_envs, "kl_ppo_lstm")


def convert_clip_ppo_lstm_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """RecurrentClipPPO keyword arguments from the raw parameters of a :func:`sample_clip_ppo_lstm_params` trial."""
    return _convert(params, "clip_ppo_lstm")


def convert_kl_ppo_lstm_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """RecurrentKLPenaltyPPO keyword arguments from the raw parameters of a :func:`sample_kl_ppo_lstm_params` trial."""
    return _convert(params, "kl_ppo_lstm")


#: The samplers by rl_zoo3 algorithm name. REINFORCE searches no PPO control: its recurrent variant takes its
#: sampler unchanged. The masked variants take the unmasked algorithm's (``registry.SAMPLER_NAME``).
SAMPLERS: dict[str, Sampler] = {
    "clip_ppo": sample_clip_ppo_params,
    "kl_ppo": sample_kl_ppo_params,
    "reinforce": sample_reinforce_params,
    "clip_ppo_lstm": sample_clip_ppo_lstm_params,
    "kl_ppo_lstm": sample_kl_ppo_lstm_params,
    "reinforce_lstm": sample_reinforce_params,
    "spo": sample_spo_params,
}

#: The converters by rl_zoo3 algorithm name.
CONVERTERS: dict[str, Converter] = {
    "clip_ppo": convert_clip_ppo_params,
    "kl_ppo": convert_kl_ppo_params,
    "reinforce": convert_reinforce_params,
    "clip_ppo_lstm": convert_clip_ppo_lstm_params,
    "kl_ppo_lstm": convert_kl_ppo_lstm_params,
    "reinforce_lstm": convert_reinforce_params,
    "spo": convert_spo_params,
}
