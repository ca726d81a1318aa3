"""rl_zoo3 integration: registration, YAML configs, Optuna samplers/converters, and the ``sb3-ppo-variants-zoo`` CLI.

The fast tests check the configs key by key against the constructors and against rl_zoo3's own files, build
every entry through rl_zoo3's ExperimentManager, and exercise the samplers with ``FixedTrial`` and real trials.
The slow tests run rl_zoo3's train / enjoy / optimize / --trial-id end to end through our CLI, in a subprocess.
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import shutil
import subprocess
import sys
import warnings
import zipfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import optuna
import pytest
import rl_zoo3.exp_manager
import torch as th
import yaml
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FixedTrial, TrialState
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.policies import ActorCriticPolicy

from sb3_ppo_variants import ALGOS
from sb3_ppo_variants.registry import ZOO_ALGOS
from sb3_ppo_variants.reinforce.buffers import NORMALIZATION_MODES
from sb3_ppo_variants.zoo import (
    CONFIG_ENVS,
    CONVERTERS,
    SAMPLERS,
    register_zoo,
    rl_zoo3_env_id,
    rollout_search_space,
    zoo_config,
)
from sb3_ppo_variants.zoo.cli import main, peek_train_args, with_default_config

REPO = Path(__file__).resolve().parents[2]
#: The one copy of the YAML files, which the build ships as sb3_ppo_variants/zoo_configs/ (pyproject.toml).
CONFIG_DIR = REPO / "zoo_configs"
REQUIRED_ENVS = CONFIG_ENVS
#: Keys rl_zoo3 2.9.2 removes from an entry before it calls the constructor (ExperimentManager._preprocess_hyperparams).
ZOO_KEYS = frozenset(
    {
        "n_envs",
        "n_timesteps",
        "normalize",
        "env_wrapper",
        "vec_env_wrapper",
        "frame_stack",
        "callback",
        "monitor_kwargs",
        "env_kwargs",
    }
)
#: Constructor arguments rl_zoo3 passes itself (a config that sets them would pass them twice).
ZOO_PASSES = frozenset({"self", "env", "tensorboard_log", "seed", "verbose", "device", "_init_setup_model"})
#: Keys whose ``lin_<x>`` strings rl_zoo3 turns into schedules, and those our constructors convert themselves.
LIN_KEYS = frozenset({"learning_rate", "clip_range", "clip_range_vf", "kl_target"})
#: Entries that cannot be built here (Atari needs ale-py).
NOT_BUILT = frozenset({"atari"})


def _load_yaml(path: Path) -> dict[str, Any]:
    with open(path) as file:
        return yaml.safe_load(file)


CONFIGS = {algo: _load_yaml(CONFIG_DIR / f"{algo}.yml") for algo in ALGOS}
ENTRIES = [(algo, env_id) for algo, config in CONFIGS.items() for env_id in config]


def _zoo_yaml(name: str) -> dict[str, Any]:
    import rl_zoo3

    return _load_yaml(Path(rl_zoo3.__file__).parent / "hyperparams" / f"{name}.yml")


def _eval_like_rl_zoo3(text: str) -> Any:
    """A config string evaluated in the namespace rl_zoo3's ExperimentManager evaluates it in (`th`, `nn`, ...)."""
    return eval(text, dict(vars(rl_zoo3.exp_manager)))


@pytest.fixture(scope="module", autouse=True)
def _registered() -> None:
    register_zoo()


# ---------------------------------------------------------------------------------------------------- registration


def test_register_zoo_is_idempotent() -> None:
    import rl_zoo3
    import rl_zoo3.enjoy
    import rl_zoo3.exp_manager
    import rl_zoo3.train
    from rl_zoo3 import hyperparams_opt, utils

    register_zoo()
    sizes = (len(utils.ALGOS), len(hyperparams_opt.HYPERPARAMS_SAMPLER), len(hyperparams_opt.HYPERPARAMS_CONVERTER))
    register_zoo()
    assert sizes == (len(utils.ALGOS), len(hyperparams_opt.HYPERPARAMS_SAMPLER), len(hyperparams_opt.HYPERPARAMS_CONVERTER))
    for name, algo_class in ALGOS.items():
        assert utils.ALGOS[name] is algo_class
        assert hyperparams_opt.HYPERPARAMS_SAMPLER[name] is SAMPLERS[name]
        assert hyperparams_opt.HYPERPARAMS_CONVERTER[name] is CONVERTERS[name]
    # every module that imported ALGOS by name sees the same dict
    for module in (rl_zoo3, rl_zoo3.train, rl_zoo3.enjoy, rl_zoo3.exp_manager):
        assert module.ALGOS is utils.ALGOS
    assert rl_zoo3.exp_manager.HYPERPARAMS_SAMPLER is hyperparams_opt.HYPERPARAMS_SAMPLER
    assert utils.ALGOS["ppo"].__name__ == "PPO"  # rl_zoo3's own entries are untouched


def test_register_zoo_refuses_to_replace_another_algorithm(monkeypatch: pytest.MonkeyPatch) -> None:
    from rl_zoo3 import utils
    from stable_baselines3 import PPO

    monkeypatch.setitem(utils.ALGOS, "kl_ppo", PPO)
    with pytest.raises(RuntimeError, match="ALGOS already maps 'kl_ppo' to stable_baselines3"):
        register_zoo()


# ---------------------------------------------------------------------------------------------------- CLI


@pytest.mark.parametrize("command", ["train", "enjoy"])
def test_cli_registers_before_rl_zoo3_parses(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"sb3-ppo-variants-zoo {command}" in out
    for name in ALGOS:
        assert name in out  # in rl_zoo3's --algo choices


def test_cli_usage_and_unknown_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "record_video" in capsys.readouterr().out
    for argv in ([], ["tran"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
    assert "unknown command 'tran'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--env", "CartPole-v1"], ("ppo", False)),
        (["--algo", "kl_ppo"], ("kl_ppo", False)),
        (["--algo=reinforce", "-n", "100", "-params", "n_envs:1"], ("reinforce", False)),
        (["--al", "clip_ppo", "--seed", "-1"], ("clip_ppo", False)),
        (["--algo", "kl_ppo", "-conf", "my.yml"], ("kl_ppo", True)),
        (["--conf-file=my.yml", "--algo", "kl_ppo"], ("kl_ppo", True)),
        (["--conf", "my.yml", "--algo", "kl_ppo"], ("kl_ppo", True)),
        (["--algo"], (None, False)),
    ],
)
def test_peek_train_args(args: list[str], expected: tuple[str | None, bool]) -> None:
    assert peek_train_args(args) == expected


def test_train_defaults_to_the_shipped_config() -> None:
    with ExitStack() as stack:
        args = with_default_config(["--algo", "kl_ppo", "--env", "CartPole-v1"], stack)
        assert args[:1] == ["--conf-file"] and args[2:] == ["--algo", "kl_ppo", "--env", "CartPole-v1"]
        assert Path(args[1]).name == "kl_ppo.yml" and Path(args[1]).is_file()
        for unchanged in (["--algo", "kl_ppo", "-conf", "mine.yml"], ["--algo", "ppo"], ["--env", "CartPole-v1"]):
            assert with_default_config(unchanged, stack) == unchanged


def test_every_zoo_algorithm_has_one_repository_file() -> None:
    assert sorted(path.stem for path in CONFIG_DIR.glob("*.yml")) == sorted(ZOO_ALGOS)


@pytest.mark.parametrize("algo", sorted(ZOO_ALGOS))
def test_shipped_config_is_the_repository_file(algo: str) -> None:
    assert zoo_config(algo).read_bytes() == (CONFIG_DIR / f"{algo}.yml").read_bytes()


def test_zoo_config_reports_a_missing_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sb3_ppo_variants.zoo.registration.CONFIG_PACKAGE", "sb3_ppo_variants.no_such_configs")
    with pytest.raises(FileNotFoundError, match=r"zoo_configs/kl_ppo\.yml is missing .* install the package"):
        zoo_config("kl_ppo")


def test_the_wheel_ships_the_repository_files(tmp_path: Path) -> None:
    """A wheel built from this checkout holds every zoo_configs/*.yml inside the package, byte for byte, and every module
    (a build change that drops or moves them fails here, also where the tests run on an editable install, which reads
    the folders themselves)."""
    pytest.importorskip("setuptools")
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, source / name)
    for folder in ("sb3_ppo_variants", "zoo_configs"):
        shutil.copytree(REPO / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    result = subprocess.run([*command, "-w", str(tmp_path), str(source)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        shipped = {Path(name).name: archive.read(name) for name in names if name.startswith("sb3_ppo_variants/zoo_configs/")}
    assert shipped.pop("__init__.py")
    assert shipped == {path.name: path.read_bytes() for path in CONFIG_DIR.glob("*.yml")}
    assert not [name for name in names if name.startswith("zoo_configs/")]
    modules = {path.relative_to(source).as_posix() for path in (source / "sb3_ppo_variants").rglob("*.py")}
    assert not modules - set(names), "modules left out of the wheel (a folder without __init__.py not found?)"


#: The shipped variants of each algorithm, in the sorted order of the error message.
VARIANTS = ("", "_lstm", "_lstm_mask", "_mask")


def test_zoo_config_unknown_algo() -> None:
    shipped = (
        ", ".join(f"{algo}{variant}" for algo in ("clip_ppo", "kl_ppo", "reinforce") for variant in VARIANTS)
        + ", spo, spo_mask"
    )
    with pytest.raises(ValueError, match=f"ships one for {shipped}"):
        zoo_config("ppo")


# ---------------------------------------------------------------------------------------------------- YAML configs


@pytest.mark.parametrize("algo", list(ALGOS))
def test_config_has_required_entries(algo: str) -> None:
    assert set(REQUIRED_ENVS) | {"default", "atari"} <= set(CONFIGS[algo])


@pytest.mark.parametrize(("algo", "env_id"), ENTRIES)
def test_config_keys_are_accepted(algo: str, env_id: str) -> None:
    entry = CONFIGS[algo][env_id]
    constructor_args = set(inspect.signature(ALGOS[algo]).parameters) - ZOO_PASSES
    unknown = set(entry) - constructor_args - ZOO_KEYS
    assert not unknown, f"{algo}/{env_id}: keys neither {ALGOS[algo].__name__} nor rl_zoo3 takes: {sorted(unknown)}"
    assert {"n_timesteps", "policy"} <= set(entry)
    for key, value in entry.items():
        if isinstance(value, str) and value.startswith("lin_"):
            assert key in LIN_KEYS, f"{algo}/{env_id}: rl_zoo3 does not parse `lin_` for {key}"
    if "normalize" in entry:
        # rl_zoo3's VecNormalize switch (a bool, a dict, or a string it evaluates), never REINFORCE's modes
        value = entry["normalize"]
        assert isinstance(value, (bool, dict)) or isinstance(eval(value), dict), value
        assert value not in NORMALIZATION_MODES
    if "policy_kwargs" in entry:
        policy_kwargs = _eval_like_rl_zoo3(entry["policy_kwargs"])
        assert isinstance(policy_kwargs, dict)
        assert set(policy_kwargs) <= set(inspect.signature(ActorCriticPolicy.__init__).parameters)
        if "optimizer_class" in policy_kwargs:
            optimizer_class = policy_kwargs["optimizer_class"]
            assert issubclass(optimizer_class, th.optim.Optimizer), optimizer_class
            accepted = set(inspect.signature(optimizer_class.__init__).parameters)
            assert set(policy_kwargs.get("optimizer_kwargs", {})) <= accepted, policy_kwargs


def test_clip_ppo_config_is_rl_zoo3_ppo_yml() -> None:
    ppo = _zoo_yaml("ppo")
    for env_id, entry in CONFIGS["clip_ppo"].items():
        assert entry == ppo[rl_zoo3_env_id(env_id)], env_id


#: where kl_ppo.yml departs from ppo.yml, with the reason in the YAML file
KL_PPO_TUNED = {"CartPole-v1": {"n_epochs": 10}}


def test_kl_ppo_config_is_ppo_with_the_kl_penalty() -> None:
    for env_id, entry in CONFIGS["kl_ppo"].items():
        base = {key: value for key, value in CONFIGS["clip_ppo"][env_id].items() if key != "clip_range"}
        assert entry == {**base, **KL_PPO_TUNED.get(env_id, {}), "kl_target": 0.01, "beta": 1.0}, env_id


def test_spo_config_is_clip_ppos_with_epsilon_for_clip_range() -> None:
    """zoo_configs/spo.yml is clip_ppo.yml (rl_zoo3's ppo.yml) with SPO's epsilon where PPO has a clip range: its value,
    or the start value of a lin_ schedule (SPO refuses a decay to 0)."""
    assert set(CONFIGS["spo"]) == set(CONFIGS["clip_ppo"])
    for env_id, entry in CONFIGS["spo"].items():
        base = dict(CONFIGS["clip_ppo"][env_id])
        clip_range = base.pop("clip_range", None)
        expected = {**base} if clip_range is None else {**base, "epsilon": float(str(clip_range).removeprefix("lin_"))}
        assert entry == expected, env_id


def test_presets_are_the_zoo_config_entries() -> None:
    """The presets (demo, learning checks) are read from zoo_configs/: every pair exists and carries its entry."""
    from sb3_ppo_variants.presets import PRESET_PAIRS, get_preset

    for algo, env_id in PRESET_PAIRS:
        preset = get_preset(algo, env_id)
        entry = dict(CONFIGS[algo][env_id])
        assert entry.pop("n_envs", 1) == preset.n_envs, (algo, env_id)
        assert entry.pop("n_timesteps") == preset.n_timesteps, (algo, env_id)
        assert bool(entry.pop("normalize", False)) == preset.normalize, (algo, env_id)
        assert entry.pop("policy") == preset.policy, (algo, env_id)
        assert entry == preset.hyperparams, (algo, env_id)


def test_get_preset_refuses_unknown_and_code_entries() -> None:
    from sb3_ppo_variants.presets import get_preset

    with pytest.raises(KeyError, match=r"No entry for env='Nope-v0' in zoo_configs/clip_ppo\.yml; it has: CartPole-v1"):
        get_preset("clip_ppo", "Nope-v0")
    # HalfCheetah's entry holds policy_kwargs as Python code that only rl_zoo3 evaluates
    with pytest.raises(ValueError, match="sets policy_kwargs: train it with `sb3-ppo-variants-zoo train`"):
        get_preset("clip_ppo", "HalfCheetah-v5")


def test_reinforce_config_follows_a2c_yml() -> None:
    a2c = _zoo_yaml("a2c")
    for env_id, entry in CONFIGS["reinforce"].items():
        if env_id in {"default", "atari"}:
            continue
        reference = a2c[rl_zoo3_env_id(env_id)]
        assert entry.get("n_envs", 1) == reference.get("n_envs", 1), env_id
        assert bool(entry.get("normalize", False)) == bool(reference.get("normalize", False)), env_id
        ours = _eval_like_rl_zoo3(entry.get("policy_kwargs", "dict()"))
        theirs = _eval_like_rl_zoo3(reference.get("policy_kwargs", "dict()"))
        # an entry may spell out the optimizer SB3's A2C builds itself when `use_rms_prop` (its default)
        optimizer = {key: ours.pop(key) for key in ("optimizer_class", "optimizer_kwargs") if key in ours}
        assert ours == theirs, env_id
        if optimizer:
            assert reference.get("use_rms_prop", True), env_id
            assert optimizer == {
                "optimizer_class": th.optim.RMSprop,
                "optimizer_kwargs": {"alpha": 0.99, "eps": reference.get("rms_prop_eps", 1e-5), "weight_decay": 0},
            }, env_id


def _experiment_manager(algo: str, env_id: str, log_folder: Path, config: Path | None = None) -> Any:
    from rl_zoo3.exp_manager import ExperimentManager

    return ExperimentManager(
        argparse.Namespace(),
        algo,
        env_id,
        str(log_folder),
        eval_freq=-1,
        config=str(config or CONFIG_DIR / f"{algo}.yml"),
        seed=0,
        verbose=0,
        device="cpu",
    )


def _built_model(algo: str, env_id: str, log_folder: Path) -> Any:
    """The model rl_zoo3's ExperimentManager builds from our config entry (skipped where an env package is missing)."""
    try:
        result = _experiment_manager(algo, env_id, log_folder).setup_experiment()
    except Exception as exc:  # pragma: no cover - only where an optional env package is missing
        if "DependencyNotInstalled" in type(exc).__name__:
            pytest.skip(f"{env_id} needs an optional package: {exc}")
        raise
    assert result is not None
    return result[0]


@pytest.mark.parametrize(("algo", "env_id"), [entry for entry in ENTRIES if entry[1] not in NOT_BUILT])
def test_config_entry_builds_through_rl_zoo3(algo: str, env_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """rl_zoo3's own preprocessing (schedules, VecNormalize, policy_kwargs, wrappers) then our constructor."""
    monkeypatch.chdir(tmp_path)  # MuJoCo writes MUJOCO_LOG.TXT into the working directory
    env_id = "MountainCarContinuous-v0" if env_id == "default" else env_id  # not listed: falls back to `default`
    model = _built_model(algo, env_id, tmp_path)
    assert type(model) is ALGOS[algo]
    entry = CONFIGS[algo].get(env_id, CONFIGS[algo]["default"])
    assert model.n_envs == entry.get("n_envs", 1)
    if "n_steps" in entry:
        assert model.n_steps == entry["n_steps"]
    if algo == "reinforce":
        # the zoo's `normalize` is VecNormalize, never REINFORCE's `normalize_returns`
        assert model.normalize_returns == entry.get("normalize_returns", "batch")
    if "optimizer_class" in entry.get("policy_kwargs", ""):
        assert type(model.policy.optimizer).__name__ in entry["policy_kwargs"]
    model.env.close()


#: The PPO controls as YAML keys (docs/controls.md), with non-default values.
CONTROL_YAML = """
  dual_clip: 3.0
  clip_range_vf: 0.2
  value_clip_form: max
  normalize_advantage_scope: batch
  recompute_advantage: true
  adaptive_lr_target_kl: 0.01
  adaptive_lr_every: update
  adaptive_lr_kl_margin: 1.8
  adaptive_lr_factor: 1.3
  adaptive_lr_min: 2.0e-5
  adaptive_lr_max: 5.0e-3
"""


@pytest.mark.parametrize("algo", ["clip_ppo", "kl_ppo"])
def test_control_keys_in_a_zoo_yaml_build_through_rl_zoo3(algo: str, tmp_path: Path) -> None:
    """Every control is a YAML key rl_zoo3 passes to our constructor unchanged."""
    keys = yaml.safe_load(CONTROL_YAML)
    if algo == "kl_ppo":
        keys["clip_range"] = 0.2  # dual-clip needs a clipped objective
    config = tmp_path / f"{algo}.yml"
    config.write_text(
        yaml.safe_dump({"CartPole-v1": {"n_envs": 2, "n_steps": 64, "n_timesteps": 256, "policy": "MlpPolicy", **keys}})
    )
    result = _experiment_manager(algo, "CartPole-v1", tmp_path, config=config).setup_experiment()
    assert result is not None
    model, _ = result
    for key, value in keys.items():
        attribute = getattr(model, key)
        assert (attribute(1.0) if callable(attribute) else attribute) == value, key
    model.learn(2 * 128)
    assert model.current_learning_rate is not None
    model.env.close()


# ---------------------------------------------------------------------------------------------------- samplers


def _distributions(algo: str, n_envs: int) -> dict[str, BaseDistribution]:
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    SAMPLERS[algo](trial, 0, n_envs, {})
    return dict(trial.distributions)


def _corner(distributions: dict[str, BaseDistribution], where: str) -> dict[str, Any]:
    """The lowest, highest or middle point of each parameter's range (log middle on a log scale)."""
    point: dict[str, Any] = {}
    for name, dist in distributions.items():
        if isinstance(dist, CategoricalDistribution):
            choices = list(dist.choices)
            point[name] = {"low": choices[0], "high": choices[-1], "mid": choices[len(choices) // 2]}[where]
        elif isinstance(dist, (IntDistribution, FloatDistribution)):
            mid = math.sqrt(dist.low * dist.high) if dist.log else (dist.low + dist.high) / 2
            value = {"low": dist.low, "high": dist.high, "mid": mid}[where]
            point[name] = round(value) if isinstance(dist, IntDistribution) else value
        else:  # pragma: no cover
            raise TypeError(dist)
    return point


SAMPLER_ENVS = {"CartPole-v1": 4, "Pendulum-v1": 1}


@pytest.mark.parametrize("where", ["low", "mid", "high"])
@pytest.mark.parametrize("env_id", list(SAMPLER_ENVS))
@pytest.mark.parametrize("algo", list(ALGOS))
def test_sampler_fixed_points_build_valid_models(algo: str, env_id: str, where: str) -> None:
    n_envs = SAMPLER_ENVS[env_id]
    trial = FixedTrial(_corner(_distributions(algo, n_envs), where))
    hyperparams = SAMPLERS[algo](trial, 0, n_envs, {})
    assert hyperparams == CONVERTERS[algo](trial.params)
    assert trial.user_attrs["n_steps"] == hyperparams["n_steps"]
    assert trial.user_attrs["gamma"] == pytest.approx(hyperparams["gamma"])
    env = make_vec_env(env_id, n_envs=n_envs, seed=0)
    model = ALGOS[algo]("MlpPolicy", env, seed=0, device="cpu", **hyperparams)
    if where == "low":  # the smallest rollout: learn one update
        model.learn(hyperparams["n_steps"] * n_envs)
        assert model.num_timesteps >= hyperparams["n_steps"] * n_envs
    env.close()


#: Every value of each control dimension of the PPO samplers (docs/controls.md).
CONTROL_VALUES = [("clip_ppo", "dual_clip", value) for value in (None, 2.0, 3.0, 5.0)] + [
    (algo, name, value)
    for algo in ("clip_ppo", "kl_ppo", "spo")
    for name, values in (
        ("adaptive_lr", (False, True)),
        ("clip_range_vf", (None, 0.1, 1.0)),
        ("value_clip_form", ("prediction", "max")),
        ("advantage_normalization", ("minibatch", "batch", "off")),
        ("recompute_advantage", (False, True)),
    )
    for value in values
]


@pytest.mark.parametrize(("algo", "name", "value"), CONTROL_VALUES)
def test_sampler_controls_build_valid_models(algo: str, name: str, value: Any) -> None:
    """A FixedTrial with each value of each control builds a model that has it, and trains one update."""
    params = {**_corner(_distributions(algo, 2), "low"), "clip_range_vf": 0.2, "adaptive_lr": True, name: value}
    hyperparams = SAMPLERS[algo](FixedTrial(params), 0, 2, {})
    assert hyperparams == CONVERTERS[algo](params)
    env = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    model = ALGOS[algo]("MlpPolicy", env, seed=0, device="cpu", **hyperparams)
    expected = {
        "dual_clip": ("dual_clip", value),
        "adaptive_lr": ("adaptive_lr_target_kl", params["adaptive_lr_target_kl"] if value else None),
        "clip_range_vf": ("clip_range_vf", value),
        "value_clip_form": ("value_clip_form", value),
        "advantage_normalization": ("normalize_advantage", value != "off"),
        "recompute_advantage": ("recompute_advantage", value),
    }[name]
    attribute = getattr(model, expected[0])
    assert (attribute(1.0) if callable(attribute) else attribute) == expected[1]
    if name == "advantage_normalization" and value != "off":
        assert model.normalize_advantage_scope == value
    model.learn(hyperparams["n_steps"] * 2)
    env.close()


def test_converter_reads_trials_stored_before_the_controls() -> None:
    """A trial without the control keys (stored by an earlier version) converts to the defaults: all off."""
    params = _corner(_distributions("clip_ppo", 1), "mid")
    old = {
        key: value
        for key, value in params.items()
        if key
        not in (
            "adaptive_lr",
            "adaptive_lr_target_kl",
            "dual_clip",
            "clip_range_vf",
            "value_clip_form",
            "advantage_normalization",
            "recompute_advantage",
        )
    }
    hyperparams = CONVERTERS["clip_ppo"](old)
    assert not {"adaptive_lr_target_kl", "dual_clip", "clip_range_vf", "recompute_advantage"} & set(hyperparams)
    with pytest.raises(ValueError, match="missing \\['recompute_advantage'\\]"):
        CONVERTERS["clip_ppo"]({key: value for key, value in params.items() if key != "recompute_advantage"})


@pytest.mark.parametrize("algo", ["clip_ppo", "kl_ppo"])
def test_a_trial_without_value_clipping_trains_through_rl_zoo3(algo: str) -> None:
    """``clip_range_vf=None`` is left out of the hyperparameters: rl_zoo3's schedule preprocessing (which --trial-id
    runs on a stored trial's values) accepts a number or a schedule string, and raises on None."""
    from rl_zoo3.exp_manager import ExperimentManager

    params = {**_corner(_distributions(algo, 1), "mid"), "clip_range_vf": None}
    hyperparams = CONVERTERS[algo](params)
    assert "clip_range_vf" not in hyperparams
    with_vf = CONVERTERS[algo]({**params, "clip_range_vf": 0.2})
    for converted in (hyperparams, with_vf):
        ExperimentManager._preprocess_schedules(dict(converted))  # a static method of rl_zoo3 2.9
    assert with_vf["clip_range_vf"] == 0.2


@pytest.mark.parametrize("algo", list(ALGOS))
def test_sampler_never_proposes_a_batch_larger_than_the_rollout(algo: str) -> None:
    for n_envs in (1, 2, 3, 5, 8, 16, 32, 64, 100):
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=n_envs))
        for _ in range(50):
            hyperparams = SAMPLERS[algo](study.ask(), 0, n_envs, {})
            assert (hyperparams.get("batch_size") or 0) <= hyperparams["n_steps"] * n_envs
        # and the worst corner: the largest minibatch with the shortest rollout
        distributions = _distributions(algo, n_envs)
        worst = {**_corner(distributions, "high"), "n_steps_pow": distributions["n_steps_pow"].low}  # type: ignore[attr-defined]
        hyperparams = SAMPLERS[algo](FixedTrial(worst), 0, n_envs, {})
        assert (hyperparams.get("batch_size") or 0) <= hyperparams["n_steps"] * n_envs


def test_rollout_search_space_invariant() -> None:
    for n_envs in range(1, 300):
        (n_steps_low, n_steps_high), (batch_low, batch_high) = rollout_search_space(n_envs)
        assert 2**batch_high <= 2**n_steps_low * n_envs
        assert batch_low <= batch_high and n_steps_low <= n_steps_high
        assert 2**n_steps_low * n_envs >= 256
    with pytest.raises(ValueError, match="n_envs"):
        rollout_search_space(0)


@pytest.mark.parametrize("algo", list(ALGOS))
def test_converter_round_trips_stored_trials(algo: str) -> None:
    """What rl_zoo3's --trial-id rebuilds from the storage is what the trial trained with."""
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=3, multivariate=True))
    sampled = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for value in range(8):
            trial = study.ask()
            sampled.append(SAMPLERS[algo](trial, 0, 8, {}))
            study.tell(trial, float(value))
    for stored, hyperparams in zip(study.trials, sampled, strict=True):
        assert CONVERTERS[algo](stored.params) == hyperparams
        assert stored.user_attrs["n_steps"] == hyperparams["n_steps"]


def test_converter_errors() -> None:
    params = _corner(_distributions("clip_ppo", 1), "mid")
    with pytest.raises(ValueError, match="missing \\['clip_range'\\]"):
        CONVERTERS["clip_ppo"]({key: value for key, value in params.items() if key != "clip_range"})
    with pytest.raises(ValueError, match="unknown \\['beta'\\]"):
        CONVERTERS["clip_ppo"]({**params, "beta": 1.0})
    with pytest.raises(ValueError, match="net_arch"):
        CONVERTERS["clip_ppo"]({**params, "net_arch": "huge"})


def test_sampler_rejects_fixed_batch_outside_the_rollout() -> None:
    params = {**_corner(_distributions("kl_ppo", 1), "low"), "batch_size_pow": 10}  # 1024 > 256 * 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # FixedTrial warns about the value outside the range
        with pytest.raises(ValueError, match="larger than the rollout"):
            SAMPLERS["kl_ppo"](FixedTrial(params), 0, 1, {})
    with pytest.raises(ValueError, match="n_envs"):
        SAMPLERS["reinforce"](FixedTrial({}), 0, 0, {})


# ---------------------------------------------------------------------------------------------------- end to end


def _zoo(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-m", "sb3_ppo_variants.zoo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, f"{' '.join(args)}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def _runs(folder: Path) -> list[Path]:
    return sorted(folder.glob("CartPole-v1_*"), key=lambda path: int(path.name.rsplit("_", 1)[1]))


def _saved_config(run: Path) -> dict[str, Any]:
    with open(run / "CartPole-v1" / "config.yml") as file:
        return dict(yaml.load(file, Loader=yaml.UnsafeLoader))  # rl_zoo3 saves an OrderedDict


@pytest.mark.slow
@pytest.mark.parametrize("algo", list(ALGOS))
def test_zoo_train_enjoy_optimize_trial_id(algo: str, tmp_path: Path) -> None:
    common = ["--algo", algo, "--env", "CartPole-v1", "-f", "logs", "--num-threads", "1", "--seed", "0"]

    # 1. train with the shipped config (no -conf), with the zoo's VecNormalize on
    _zoo("train", *common, "-n", "2000", "--eval-freq", "-1", "-params", "normalize:True", cwd=tmp_path)
    algo_folder = tmp_path / "logs" / algo
    run = _runs(algo_folder)[-1]
    assert (run / "CartPole-v1.zip").is_file()
    assert (run / "CartPole-v1" / "vecnormalize.pkl").is_file()
    args = yaml.load((run / "CartPole-v1" / "args.yml").read_text(), Loader=yaml.UnsafeLoader)
    assert Path(args["conf_file"]).name == f"{algo}.yml"
    saved = _saved_config(run)
    expected = CONFIGS[algo]["CartPole-v1"]
    assert {key: saved[key] for key in expected} == expected
    algo_class: Any = ALGOS[algo]
    model = algo_class.load(run / "CartPole-v1.zip", device="cpu")
    assert type(model) is ALGOS[algo] and model.n_steps == expected["n_steps"]
    if algo == "reinforce":
        assert model.normalize_returns == "batch"  # the zoo's normalize:True went to VecNormalize only

    # 2. enjoy loads it (and its VecNormalize statistics) and plays
    _zoo("enjoy", *common[:-2], "--no-render", "-n", "200", cwd=tmp_path)

    # 3. optimize: 2 trials in a journal file storage
    storage = tmp_path / "optuna" / "study.log"
    tune = ["--storage", str(storage), "--study-name", f"{algo}_cartpole"]
    optimize = ["-optimize", "--n-trials", "2", "--sampler", "random", "--pruner", "none", "--eval-episodes", "2"]
    _zoo("train", *common, "-n", "2000", *optimize, "--no-optim-plots", *tune, cwd=tmp_path)
    study = optuna.load_study(
        study_name=f"{algo}_cartpole",
        storage=optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(storage))),
    )
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE] * 2

    # 4. train with trial 1's hyperparameters (rl_zoo3 2.9.2 ignores --trial-id 0: it tests `if self.trial_id`)
    _zoo("train", *common, "-n", "2000", "--eval-freq", "-1", *tune, "--trial-id", "1", cwd=tmp_path)
    saved = _saved_config(_runs(algo_folder)[-1])
    converted = CONVERTERS[algo](study.trials[1].params)
    assert {key: saved[key] for key in converted} == converted
