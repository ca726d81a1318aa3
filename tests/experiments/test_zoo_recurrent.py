"""rl_zoo3 integration of the recurrent (LSTM) variants: registration, configs, samplers, train and enjoy.

Like tests/experiments/test_zoo.py for the memoryless algorithms: the configs key by key against the constructors
and against rl_zoo3's own ppo_lstm.yml, every entry built through rl_zoo3's ExperimentManager, the samplers with
real and fixed trials; and, in subprocesses, rl_zoo3's train and enjoy through our CLI at a tiny budget (the full
train / enjoy / optimize / --trial-id round trip is slow-marked).
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import optuna
import pytest
import rl_zoo3.import_envs  # noqa: F401  (registers the *NoVel ids)
import yaml
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FixedTrial, TrialState
from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy
from stable_baselines3.common.env_util import make_vec_env

from sb3_ppo_variants import ALGOS
from sb3_ppo_variants.registry import RECURRENT_ALGOS, SAMPLER_NAME
from sb3_ppo_variants.zoo import CONVERTERS, SAMPLERS, register_zoo
from sb3_ppo_variants.zoo.cli import main
from sb3_ppo_variants.zoo.samplers import RECURRENT_EXCLUDED_CONTROLS
from tests.experiments.test_zoo import (
    CONFIG_DIR,
    LIN_KEYS,
    ZOO_KEYS,
    ZOO_PASSES,
    _built_model,
    _corner,
    _eval_like_rl_zoo3,
    _load_yaml,
    _zoo,
    _zoo_yaml,
)

CONFIGS = {algo: _load_yaml(CONFIG_DIR / f"{algo}.yml") for algo in RECURRENT_ALGOS}
ENTRIES = [(algo, env_id) for algo, config in CONFIGS.items() for env_id in config if env_id != "default"]
#: The memoryless algorithm each recurrent one is built on (its constructor arguments are that one's).
MEMORYLESS = {"clip_ppo_lstm": "clip_ppo", "kl_ppo_lstm": "kl_ppo", "reinforce_lstm": "reinforce"}
#: Where kl_ppo_lstm.yml departs from clip_ppo_lstm.yml (the reason is in the YAML file).
KL_PPO_LSTM_TUNED = {"CartPoleNoVel-v1": {"n_epochs": 10}}
#: Where clip_ppo_lstm.yml departs from ppo_lstm.yml: its `default` entry names 'MlpPolicy', which RecurrentPPO does not
#: take (it is no alias of a recurrent policy); ours names the recurrent one.
PPO_LSTM_DEPARTURES = {"default": {"policy": "MlpLstmPolicy"}}
#: rl_zoo3 2.9.2's ppo_lstm.yml names LunarLanderNoVel by gymnasium 0.x's -v2.
ZOO_PPO_LSTM_ID = {f"LunarLander{kind}NoVel-v3": f"LunarLander{kind}NoVel-v2" for kind in ("", "Continuous")}


@pytest.fixture(scope="module", autouse=True)
def _registered() -> None:
    register_zoo()


def _memoryless(algo: str) -> str:
    return MEMORYLESS[algo.removesuffix("_mask")]


# ---------------------------------------------------------------------------------------------------- registration


def test_recurrent_algorithms_are_registered_with_their_samplers() -> None:
    from rl_zoo3 import hyperparams_opt, utils

    for name, algo_class in RECURRENT_ALGOS.items():
        sampler = SAMPLER_NAME.get(name, name)
        assert utils.ALGOS[name] is algo_class
        assert hyperparams_opt.HYPERPARAMS_SAMPLER[name] is SAMPLERS[sampler]
        assert hyperparams_opt.HYPERPARAMS_CONVERTER[name] is CONVERTERS[sampler]
    assert not set(RECURRENT_ALGOS) & set(ALGOS)  # the code that iterates ALGOS builds MlpPolicy models


def test_every_config_env_is_registered() -> None:
    for algo, env_id in ENTRIES:
        assert env_id in gym.registry, f"{algo}: {env_id}"


# ---------------------------------------------------------------------------------------------------- configs


@pytest.mark.parametrize(("algo", "env_id"), ENTRIES)
def test_config_keys_are_accepted(algo: str, env_id: str) -> None:
    entry = CONFIGS[algo][env_id]
    # the recurrent constructors pass **kwargs to the memoryless algorithm's: check against that one's signature
    constructor_args = set(inspect.signature(ALGOS[_memoryless(algo)]).parameters) - ZOO_PASSES
    unknown = set(entry) - constructor_args - ZOO_KEYS
    assert not unknown, f"{algo}/{env_id}: keys neither {RECURRENT_ALGOS[algo].__name__} nor rl_zoo3 takes: {unknown}"
    assert entry["policy"] in RECURRENT_ALGOS[algo].policy_aliases
    for key, value in entry.items():
        if isinstance(value, str) and value.startswith("lin_"):
            assert key in LIN_KEYS, f"{algo}/{env_id}: rl_zoo3 does not parse `lin_` for {key}"
    if "policy_kwargs" in entry:
        policy_kwargs = _eval_like_rl_zoo3(entry["policy_kwargs"])
        assert set(policy_kwargs) <= set(inspect.signature(RecurrentActorCriticPolicy.__init__).parameters)


def _evaluated(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry with its policy_kwargs string evaluated (the two files lay the same dict out differently)."""
    return {**entry, **({"policy_kwargs": _eval_like_rl_zoo3(entry["policy_kwargs"])} if "policy_kwargs" in entry else {})}


def test_clip_ppo_lstm_config_is_rl_zoo3_ppo_lstm_yml() -> None:
    ppo_lstm = _zoo_yaml("ppo_lstm")
    for env_id, entry in CONFIGS["clip_ppo_lstm"].items():
        expected = {**ppo_lstm[ZOO_PPO_LSTM_ID.get(env_id, env_id)], **PPO_LSTM_DEPARTURES.get(env_id, {})}
        assert _evaluated(entry) == _evaluated(expected), env_id


def test_kl_ppo_lstm_config_is_clip_ppo_lstm_with_the_kl_penalty() -> None:
    for env_id, entry in CONFIGS["kl_ppo_lstm"].items():
        if env_id == "default":
            continue
        base = {key: value for key, value in CONFIGS["clip_ppo_lstm"][env_id].items() if key != "clip_range"}
        assert entry == {**base, **KL_PPO_LSTM_TUNED.get(env_id, {}), "kl_target": 0.01, "beta": 1.0}, env_id


@pytest.mark.parametrize(("algo", "env_id"), ENTRIES)
def test_config_entry_builds_through_rl_zoo3(algo: str, env_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    model = _built_model(algo, env_id, tmp_path)
    entry = CONFIGS[algo][env_id]
    assert type(model) is RECURRENT_ALGOS[algo]
    assert isinstance(model.policy, RecurrentActorCriticPolicy)
    assert model.n_envs == entry["n_envs"] and model.n_steps == entry["n_steps"]
    if "policy_kwargs" in entry:
        assert model.policy.lstm_actor.hidden_size == _eval_like_rl_zoo3(entry["policy_kwargs"]).get("lstm_hidden_size", 256)
    assert model.env is not None
    model.env.close()


# ---------------------------------------------------------------------------------------------------- samplers


def _distributions(sampler: str, n_envs: int, seed: int = 0) -> dict[str, Any]:
    trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed)).ask()
    SAMPLERS[sampler](trial, 0, n_envs, {})
    return dict(trial.distributions)


@pytest.mark.parametrize("sampler", ["clip_ppo_lstm", "kl_ppo_lstm"])
def test_recurrent_samplers_are_the_memoryless_ones_without_the_refused_controls(sampler: str) -> None:
    memoryless = set(_distributions(sampler.removesuffix("_lstm"), 8))
    assert set(_distributions(sampler, 8)) == memoryless - RECURRENT_EXCLUDED_CONTROLS
    assert SAMPLERS["reinforce_lstm"] is SAMPLERS["reinforce"]


@pytest.mark.parametrize("where", ["low", "high"])
@pytest.mark.parametrize("algo", list(RECURRENT_ALGOS))
def test_sampler_fixed_points_build_valid_recurrent_models(algo: str, where: str) -> None:
    """Each corner of the search space builds the recurrent model (recompute_advantage, which it refuses, is never
    proposed), and the smallest rollout trains one update."""
    sampler = SAMPLER_NAME.get(algo, algo)
    env_id = "MaskedCueCorridor-v0" if algo.endswith("_mask") else "CartPoleNoVel-v1"
    trial = FixedTrial(_corner(_distributions(sampler, 2), where))
    hyperparams = SAMPLERS[sampler](trial, 0, 2, {})
    assert hyperparams == CONVERTERS[sampler](trial.params)
    assert "recompute_advantage" not in hyperparams
    env = make_vec_env(env_id, n_envs=2, seed=0)
    model = RECURRENT_ALGOS[algo]("MlpLstmPolicy", env, seed=0, device="cpu", **hyperparams)
    if where == "low":
        model.learn(hyperparams["n_steps"] * 2)
        assert model.num_timesteps >= hyperparams["n_steps"] * 2
    env.close()


# ---------------------------------------------------------------------------------------------------- train and enjoy


#: (algo, env) trained and replayed through the CLI at a tiny budget by the default test run.
CLI_CASES = [("clip_ppo_lstm", "CartPoleNoVel-v1"), ("kl_ppo_lstm_mask", "MaskedCueCorridor-v0")]


@pytest.fixture
def this_checkout(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's subprocesses import the package of this checkout, also where another one is the installed one."""
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(CONFIG_DIR.parent), os.environ.get("PYTHONPATH")])))


def _train(algo: str, env_id: str, tmp_path: Path, *extra: str) -> Path:
    """Train with this checkout's config file, as an installed package's default config would be."""
    common = ["--algo", algo, "--env", env_id, "-f", "logs", "--num-threads", "1", "--seed", "0"]
    _zoo("train", *common, "--eval-freq", "-1", "-conf", str(CONFIG_DIR / f"{algo}.yml"), *extra, cwd=tmp_path)
    return sorted((tmp_path / "logs" / algo).glob(f"{env_id}_*"))[-1]


@pytest.mark.parametrize(("algo", "env_id"), CLI_CASES)
def test_zoo_train_and_enjoy_a_recurrent_model(
    algo: str, env_id: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """In this process (the subprocess round trip is the slow test below): rl_zoo3's train, then its enjoy, which
    carries the LSTM state through ``predict(obs, state, episode_start)``."""
    monkeypatch.chdir(tmp_path)
    common = ["--algo", algo, "--env", env_id, "-f", "logs", "--num-threads", "1"]
    main(["train", *common, "--seed", "0", "--eval-freq", "-1", "-conf", str(CONFIG_DIR / f"{algo}.yml"), "-n", "256"])
    run = sorted((tmp_path / "logs" / algo).glob(f"{env_id}_*"))[-1]
    model = RECURRENT_ALGOS[algo].load(run / f"{env_id}.zip", device="cpu")
    assert type(model) is RECURRENT_ALGOS[algo] and model.num_timesteps >= 256
    assert (run / env_id / "vecnormalize.pkl").is_file() == bool(CONFIGS[algo][env_id].get("normalize", False))
    capsys.readouterr()
    main(["enjoy", *common, "--no-render", "-n", "300"])
    assert "Loading latest experiment" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["clip_ppo_lstm", "kl_ppo_lstm", "reinforce_lstm"])
@pytest.mark.usefixtures("this_checkout")
def test_zoo_train_enjoy_optimize_trial_id_recurrent(algo: str, tmp_path: Path) -> None:
    env_id = "CartPoleNoVel-v1"
    common = ["--algo", algo, "--env", env_id, "-f", "logs", "--num-threads", "1", "--seed", "0"]
    _train(algo, env_id, tmp_path, "-n", "2000")
    _zoo("enjoy", *common[:-2], "--no-render", "-n", "300", cwd=tmp_path)
    storage = tmp_path / "optuna" / "study.log"
    tune = ["--storage", str(storage), "--study-name", algo]
    optimize = ["-optimize", "--n-trials", "2", "--sampler", "random", "--pruner", "none", "--eval-episodes", "2"]
    conf = ["-conf", str(CONFIG_DIR / f"{algo}.yml")]
    _zoo("train", *common, *conf, "-n", "2000", *optimize, "--no-optim-plots", *tune, cwd=tmp_path)
    study = optuna.load_study(
        study_name=algo,
        storage=optuna.storages.JournalStorage(JournalFileBackend(str(storage))),
    )
    assert [trial.state for trial in study.trials] == [TrialState.COMPLETE] * 2
    _zoo("train", *common, *conf, "-n", "2000", "--eval-freq", "-1", *tune, "--trial-id", "1", cwd=tmp_path)
    run = sorted((tmp_path / "logs" / algo).glob(f"{env_id}_*"), key=lambda path: int(path.name.rsplit("_", 1)[1]))[-1]
    with open(run / env_id / "config.yml") as file:
        saved = dict(yaml.load(file, Loader=yaml.UnsafeLoader))
    converted = CONVERTERS[SAMPLER_NAME.get(algo, algo)](study.trials[1].params)
    assert {key: saved[key] for key in converted} == converted
