"""The PPO paper's Table 1 ablation as data: its 11 settings, its hyperparameters, the presets and the job grid.

Schulman et al. 2017 (https://arxiv.org/abs/1707.06347), section 6.1 and Table 1, compare the surrogate objectives
on 7 MuJoCo tasks, 1M steps and 3 seeds each, with one set of hyperparameters (:data:`PAPER_HYPERPARAMS`):

- no clipping or penalty: :class:`~sb3_ppo_variants.ClipPPO` with ``clip_range=None`` (the surrogate ``r A``);
- clipping, epsilon in {0.1, 0.2, 0.3}: :class:`~sb3_ppo_variants.ClipPPO`;
- adaptive KL penalty, d_targ in {0.003, 0.01, 0.03}, beta starting at 1: :class:`~sb3_ppo_variants.KLPenaltyPPO`;
- fixed KL penalty, beta in {0.3, 1, 3, 10}: :class:`~sb3_ppo_variants.KLPenaltyPPO` with ``adaptive_beta=False``.

Beside them, :data:`EXTRA_SETTINGS` holds rows the paper does not have, in a group of their own ("Beyond the paper",
no paper score) that a grid may name next to the paper's: DAPO's clip-higher (ClipPPO with ``clip_range=(0.2, 0.28)``)
and SPO (``epsilon=0.2``). The named grids keep the paper's 11 rows.

A job is one (setting, env, seed); a :class:`GridSpec` is the whole grid of a run (settings x envs x seeds, the
budget and the hyperparameters), and a :class:`Grid` is a named :class:`GridSpec` (``tiny``, ``small``, ``full``: the
command's ``--preset``).
This module only describes; :mod:`sb3_ppo_variants.ablation.runner` trains.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

#: The 7 MuJoCo tasks of the paper's Table 1 (its v1 tasks, here in their Gymnasium v5 versions).
PAPER_ENVS: tuple[str, ...] = (
    "HalfCheetah-v5",
    "Hopper-v5",
    "InvertedDoublePendulum-v5",
    "InvertedPendulum-v5",
    "Reacher-v5",
    "Swimmer-v5",
    "Walker2d-v5",
)

#: The paper's training budget per run, and its number of seeds.
PAPER_TIMESTEPS = 1_000_000
PAPER_SEEDS: tuple[int, ...] = (0, 1, 2)

#: The paper's hyperparameters (section 6.1 and Table 3): horizon T = 2048 with one environment, Adam step size 3e-4,
#: 10 epochs, minibatch 64, gamma 0.99, GAE lambda 0.95, no entropy bonus, and a 64x64 tanh MLP for the Gaussian mean
#: (state-independent log std: SB3's ``DiagGaussianDistribution``) with a separate 64x64 tanh value network.
#: ``net_arch=dict(pi=..., vf=...)`` builds two separate MLPs; ``share_features_extractor`` only shares the (parameter
#: free) flattening of the observation. Everything the paper does not state keeps SB3's default, see :data:`SB3_DEFAULTS`.
PAPER_HYPERPARAMS: dict[str, Any] = {
    "n_steps": 2048,
    "batch_size": 64,
    "n_epochs": 10,
    "learning_rate": 3e-4,
    "gamma": 0.99,
    "gae_lambda": 0.95,
    "ent_coef": 0.0,
    "policy_kwargs": {"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": "tanh"},
}

#: Hyperparameters the paper does not give, kept at SB3's defaults (listed so that the report can show them).
SB3_DEFAULTS: dict[str, Any] = {
    "normalize_advantage": True,  # the paper's code (baselines ppo1) standardises advantages too
    "vf_coef": 0.5,  # with separate networks and Adam this mostly acts through max_grad_norm
    "max_grad_norm": 0.5,  # the paper clips no gradient; SB3 does by default
    "log_std_init": 0.0,  # initial std 1, as in the paper's code
    "observation_normalization": False,  # the paper's code normalises observations with running statistics
}

#: ``activation_fn`` names allowed in ``policy_kwargs`` (the grid is stored as JSON in the study, so no classes).
ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "elu", "leaky_relu")


@dataclass(frozen=True)
class Setting:
    """One row of the paper's Table 1: an algorithm and the constructor arguments that make the setting.

    :param name: Short identifier, used on the command line and in the results (``clip_0.2``)
    :param label: The row's text in the paper's layout (``Clipping, ε = 0.2``)
    :param group: The row group of Table 1 (``No clipping or penalty``, ``Clipping``, ``Adaptive KL``, ``Fixed KL``)
    :param algo: Short algorithm name, a key of :data:`sb3_ppo_variants.ALGOS` (``clip_ppo``, ``kl_ppo``)
    :param kwargs: Constructor arguments on top of the shared hyperparameters
    :param paper_score: The paper's average normalised score for this row
    """

    name: str
    label: str
    group: str
    algo: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    paper_score: float = float("nan")


def _clip(eps: float, paper: float) -> Setting:
    return Setting(f"clip_{eps:g}", f"Clipping, ε = {eps:g}", "Clipping", "clip_ppo", {"clip_range": eps}, paper)


def _adaptive(d_targ: float, paper: float) -> Setting:
    kwargs = {"beta": 1.0, "kl_target": d_targ, "adaptive_beta": True, "clip_range": None}
    return Setting(f"adaptive_kl_{d_targ:g}", f"Adaptive KL, d_targ = {d_targ:g}", "Adaptive KL", "kl_ppo", kwargs, paper)


def _fixed(beta: float, paper: float) -> Setting:
    kwargs = {"beta": beta, "adaptive_beta": False, "clip_range": None}
    return Setting(f"fixed_kl_{beta:g}", f"Fixed KL, β = {beta:g}", "Fixed KL", "kl_ppo", kwargs, paper)


#: The 11 settings in the order of the paper's Table 1, with its scores (arXiv 1707.06347, Table 1).
SETTINGS: tuple[Setting, ...] = (
    Setting("no_clip", "No clipping or penalty", "No clipping or penalty", "clip_ppo", {"clip_range": None}, -0.39),
    _clip(0.1, 0.76),
    _clip(0.2, 0.82),
    _clip(0.3, 0.70),
    _adaptive(0.003, 0.68),
    _adaptive(0.01, 0.74),
    _adaptive(0.03, 0.71),
    _fixed(0.3, 0.62),
    _fixed(1.0, 0.71),
    _fixed(3.0, 0.72),
    _fixed(10.0, 0.69),
)

#: The group of the rows the paper does not have.
EXTRA_GROUP = "Beyond the paper"

#: Objectives published after the paper, as rows to compare with its own (no paper score): DAPO's clip-higher (Yu et al.
#: 2025, arXiv 2503.14476, eps_low 0.2 and eps_high 0.28) and SPO (Xie et al., ICML 2025, arXiv 2401.16025, the
#: authors' eps 0.2).
EXTRA_SETTINGS: tuple[Setting, ...] = (
    Setting("clip_higher_0.2_0.28", "Clip-higher, ε = (0.2, 0.28)", EXTRA_GROUP, "clip_ppo", {"clip_range": (0.2, 0.28)}),
    Setting("spo_0.2", "SPO, ε = 0.2", EXTRA_GROUP, "spo", {"epsilon": 0.2}),
)

#: Every setting a grid may name, in table order: the paper's, then :data:`EXTRA_SETTINGS`.
ALL_SETTINGS: tuple[Setting, ...] = (*SETTINGS, *EXTRA_SETTINGS)

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in ALL_SETTINGS}

#: The row groups of Table 1, in order.
GROUPS: tuple[str, ...] = ("No clipping or penalty", "Clipping", "Adaptive KL", "Fixed KL")
#: The row groups of a report: Table 1's, then :data:`EXTRA_GROUP`.
ALL_GROUPS: tuple[str, ...] = (*GROUPS, EXTRA_GROUP)


def get_setting(name: str) -> Setting:
    """The setting called ``name``; a KeyError lists the valid names."""
    try:
        return SETTINGS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"Unknown ablation setting {name!r}; valid: {', '.join(SETTINGS_BY_NAME)}") from None


@dataclass(frozen=True)
class Job:
    """One independent training run: a setting on an env with a seed, for ``timesteps`` steps."""

    setting: str
    env_id: str
    seed: int
    timesteps: int

    @property
    def point(self) -> tuple[str, str, int]:
        """The job's grid point ``(setting, env, seed)``: its key in the study and in the results."""
        return (self.setting, self.env_id, self.seed)

    def __str__(self) -> str:
        return f"{self.setting} / {self.env_id} / seed {self.seed}"


@dataclass(frozen=True)
class GridSpec:
    """A whole ablation grid: which settings, envs and seeds, how long each run trains, and with what.

    Two processes work on the same study only if their specs are equal (:meth:`to_dict` is stored in the study).

    :param settings: Setting names, in table order
    :param envs: Gymnasium ids
    :param seeds: Seeds of each (setting, env)
    :param timesteps: Training budget of each job, in env steps
    :param hyperparams: Constructor arguments shared by all settings (default: :data:`PAPER_HYPERPARAMS`)
    :param random_episodes: Episodes of the uniform random policy that give each env's random score
    """

    settings: tuple[str, ...]
    envs: tuple[str, ...]
    seeds: tuple[int, ...]
    timesteps: int
    hyperparams: dict[str, Any] = field(default_factory=lambda: dict(PAPER_HYPERPARAMS))
    random_episodes: int = 100

    def __post_init__(self) -> None:
        for name in self.settings:
            get_setting(name)
        for label, values in (("settings", self.settings), ("envs", self.envs), ("seeds", self.seeds)):
            if not values:
                raise ValueError(f"The ablation grid needs at least one of {label}")
            if len(set(values)) != len(values):
                raise ValueError(f"Duplicate {label} in the ablation grid: {list(values)}")
        if not all(isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0 for seed in self.seeds):
            raise ValueError(f"Seeds must be ints >= 0, got {list(self.seeds)}")
        if not isinstance(self.timesteps, int) or self.timesteps < 1:
            raise ValueError(f"`timesteps` must be an int >= 1, got {self.timesteps!r}")
        if not isinstance(self.random_episodes, int) or self.random_episodes < 1:
            raise ValueError(f"`random_episodes` must be an int >= 1, got {self.random_episodes!r}")
        activation = self.hyperparams.get("policy_kwargs", {}).get("activation_fn")
        if activation is not None and activation not in ACTIVATIONS:
            raise ValueError(f"policy_kwargs.activation_fn must be one of {ACTIVATIONS} (a name), got {activation!r}")

    @property
    def n_jobs(self) -> int:
        """Number of jobs in the grid."""
        return len(self.settings) * len(self.envs) * len(self.seeds)

    @property
    def total_timesteps(self) -> int:
        """Environment steps of the whole grid."""
        return self.n_jobs * self.timesteps

    def jobs(self) -> Iterator[Job]:
        """All jobs, setting-major in table order, then env, then seed."""
        for setting, env_id, seed in itertools.product(self.settings, self.envs, self.seeds):
            yield Job(setting, env_id, seed, self.timesteps)

    def job(self, setting: str, env_id: str, seed: int) -> Job:
        """The job of one grid point (a ValueError if the point is not in the grid)."""
        if setting not in self.settings or env_id not in self.envs or seed not in self.seeds:
            raise ValueError(f"({setting}, {env_id}, seed {seed}) is not a point of this grid")
        return Job(setting, env_id, seed, self.timesteps)

    def points(self) -> list[tuple[str, str, int]]:
        """All grid points ``(setting, env, seed)``."""
        return [job.point for job in self.jobs()]

    def search_space(self) -> dict[str, list[Any]]:
        """The grid as an Optuna ``GridSampler`` search space: ``{"setting": [...], "env": [...], "seed": [...]}``."""
        return {"setting": list(self.settings), "env": list(self.envs), "seed": list(self.seeds)}

    def model_kwargs(self, setting: str) -> dict[str, Any]:
        """Constructor keyword arguments of ``setting``: the shared hyperparameters, then the setting's own."""
        return build_model_kwargs(self.hyperparams, get_setting(setting))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-compatible description (stored in the study, written to the results)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in vars(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GridSpec:
        """The inverse of :meth:`to_dict`."""
        return cls(
            settings=tuple(data["settings"]),
            envs=tuple(data["envs"]),
            seeds=tuple(int(s) for s in data["seeds"]),
            timesteps=int(data["timesteps"]),
            hyperparams=dict(data["hyperparams"]),
            random_episodes=int(data["random_episodes"]),
        )

    def differences(self, other: GridSpec) -> list[str]:
        """Human-readable differences to ``other`` (empty when they describe the same grid)."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [f"{key}: {mine[key]!r} here, {theirs[key]!r} in the study" for key in mine if mine[key] != theirs[key]]

    def with_overrides(
        self,
        settings: Sequence[str] | None = None,
        envs: Sequence[str] | None = None,
        seeds: Sequence[int] | None = None,
        timesteps: int | None = None,
        random_episodes: int | None = None,
    ) -> GridSpec:
        """A copy with the given fields replaced (``None``: kept)."""
        sequences = (("settings", settings), ("envs", envs), ("seeds", seeds))
        numbers = (("timesteps", timesteps), ("random_episodes", random_episodes))
        changes: dict[str, Any] = {key: tuple(value) for key, value in sequences if value is not None}
        changes |= {key: value for key, value in numbers if value is not None}
        return replace(self, **changes)


def build_model_kwargs(hyperparams: dict[str, Any], setting: Setting) -> dict[str, Any]:
    """Constructor keyword arguments: ``hyperparams`` then ``setting.kwargs``, with ``activation_fn`` names resolved."""
    import torch.nn as nn

    activations: dict[str, type[nn.Module]] = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "leaky_relu": nn.LeakyReLU}
    kwargs = {**hyperparams, **setting.kwargs}
    policy_kwargs = dict(kwargs.get("policy_kwargs") or {})
    if isinstance(policy_kwargs.get("activation_fn"), str):
        policy_kwargs["activation_fn"] = activations[policy_kwargs["activation_fn"]]
    if "net_arch" in policy_kwargs and isinstance(policy_kwargs["net_arch"], dict):
        policy_kwargs["net_arch"] = {key: list(value) for key, value in policy_kwargs["net_arch"].items()}
    if policy_kwargs:
        kwargs["policy_kwargs"] = policy_kwargs
    return kwargs


@dataclass(frozen=True)
class Grid:
    """A named grid with its rationale (chosen with the command's ``--preset``).

    :param name: ``tiny``, ``small`` or ``full``
    :param spec: The grid
    :param description: What it is for and what it costs
    """

    name: str
    spec: GridSpec
    description: str


_ALL_SETTINGS = tuple(s.name for s in SETTINGS)

#: Training steps/s of one worker (one torch thread) with the paper's hyperparameters, per env and algorithm, on a
#: quiet 2-core CPU machine: measured with ``python -m sb3_ppo_variants.ablation probe`` on a loaded machine and
#: scaled by SB3 ``PPO`` on HalfCheetah-v5 measured alongside (about 1000 steps/s when quiet); see docs/ablation.md.
#: The 64x64 networks' update dominates, so the envs differ little. Used for the cost estimates of the grids.
MEASURED_STEPS_PER_S: dict[str, dict[str, float]] = {
    "HalfCheetah-v5": {"clip_ppo": 920.0, "kl_ppo": 840.0},
    "Hopper-v5": {"clip_ppo": 1240.0, "kl_ppo": 860.0},
    "InvertedDoublePendulum-v5": {"clip_ppo": 960.0, "kl_ppo": 900.0},
    "InvertedPendulum-v5": {"clip_ppo": 1220.0, "kl_ppo": 1550.0},
    "Reacher-v5": {"clip_ppo": 1120.0, "kl_ppo": 1000.0},
    "Swimmer-v5": {"clip_ppo": 1210.0, "kl_ppo": 1220.0},
    "Walker2d-v5": {"clip_ppo": 1100.0, "kl_ppo": 1150.0},
}

#: The named grids. ``small`` keeps all 11 settings (the table is the point) on three of the envs that train fastest per
#: step (:data:`MEASURED_STEPS_PER_S`) and clearly beat the random policy within 80k steps (Reacher, as fast, barely
#: does), with 2 seeds: about 40 min with 2 workers on 2 quiet cores (docs/ablation.md has the estimate).
GRIDS: dict[str, Grid] = {
    "tiny": Grid(
        "tiny",
        GridSpec(("clip_0.2", "adaptive_kl_0.01"), ("InvertedPendulum-v5",), (0,), 2048, random_episodes=5),
        "2 settings x InvertedPendulum x 1 seed x 2048 steps (one update per run): a smoke test, seconds",
    ),
    "small": Grid(
        "small",
        GridSpec(_ALL_SETTINGS, ("InvertedPendulum-v5", "Hopper-v5", "Swimmer-v5"), (0, 1), 81_920),
        "all 11 settings x 3 fast envs (InvertedPendulum, Hopper, Swimmer) x 2 seeds x 81,920 steps (40 updates): "
        "66 jobs, 5.4M steps, about 40 min with 2 workers on 2 quiet cores",
    ),
    "full": Grid(
        "full",
        GridSpec(_ALL_SETTINGS, PAPER_ENVS, PAPER_SEEDS, PAPER_TIMESTEPS),
        "the paper's scale: 11 settings x 7 envs x 3 seeds x 1M steps = 231 jobs, 231M steps, about 61 CPU-core-hours",
    ),
}


def get_grid(name: str) -> Grid:
    """The grid called ``name``; a KeyError lists the valid names."""
    try:
        return GRIDS[name]
    except KeyError:
        raise KeyError(f"Unknown ablation grid {name!r}; valid: {', '.join(GRIDS)}") from None


def settings_in_table_order(names: Iterable[str]) -> list[Setting]:
    """The named settings, sorted in the order of the paper's Table 1."""
    wanted = set(names)
    return [s for s in ALL_SETTINGS if s.name in wanted]


def estimate_seconds(spec: GridSpec, steps_per_s: dict[str, float | dict[str, float]], workers: int = 1) -> float:
    """Expected wall time of ``spec`` from measured training throughputs, with ``workers`` parallel workers.

    :param spec: The grid
    :param steps_per_s: Per env, the steps/s of one worker: a number, or per algorithm (``{"clip_ppo": ..., "kl_ppo":
        ...}``, as ``python -m sb3_ppo_variants.ablation probe`` measures; SPO takes ClipPPO's where it has none)
    :param workers: Parallel workers, each on its own core (jobs are assumed to pack evenly)
    :return: Seconds; the real run takes a little longer (process start, random-policy scores, the last jobs' tail)
    """
    total = 0.0
    for job in spec.jobs():
        rate = steps_per_s[job.env_id]
        if isinstance(rate, dict):
            algo = get_setting(job.setting).algo
            # SPO runs at ClipPPO's speed (docs/speed.md, the objectives rows): its rate where none was measured
            rate = rate.get(algo, rate["clip_ppo"]) if algo == "spo" else rate[algo]
        # SB3 trains whole rollouts: the budget is rounded up to a multiple of n_steps
        n_steps = int(spec.hyperparams.get("n_steps", 2048))
        total += -(-job.timesteps // n_steps) * n_steps / float(rate)
    return total / max(1, workers)
