"""The drop-in contract, checked by difference: SB3's class and ours, side by side, on generated arguments.

For the constructor, ``learn``, ``predict``, ``save``/``load``, ``set_env``, ``get_parameters``/``set_parameters`` and
``evaluate_policy``, Hypothesis draws one argument (a value of a type SB3's signature and docs allow, or an edge
value: None, 0, negatives, a float for an int, NumPy scalars, empty and wrong shapes, NaN) and gives it to SB3's
class and to ours (``PPO`` against ``ClipPPO`` and ``KLPenaltyPPO``, ``A2C`` against ``REINFORCE`` for the parameters
both have, sb3-contrib's ``MaskablePPO`` against the three masked classes). Both must accept it or both refuse it,
and where both refuse, ours must raise an instance of SB3's exception class; the only exceptions are the entries of
:data:`sb3_ppo_variants.differences.DIFFERENCES`, which the Differences page lists. A call that takes the value is
followed by a short ``learn()`` where SB3 would only fail there (constructor, ``set_env``, ``load``,
``set_parameters``), so that "accepts" means "accepts and trains".

Each entry of the list is load-bearing: for each, a witness call is run and must be a disagreement once the entry
is taken out of the list. ``HYPOTHESIS_PROFILE=ci`` runs more examples (profiles in ``conftest.py``).
"""

from __future__ import annotations

import inspect
import io
import pathlib
import tempfile
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch as th
from hypothesis import given
from hypothesis import strategies as st
from sb3_contrib import MaskablePPO
from sb3_contrib.common.envs import InvalidActionEnvDiscrete
from sb3_contrib.common.maskable.evaluation import evaluate_policy as maskable_evaluate_policy
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.buffers import DictRolloutBuffer, RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback, LogEveryNTimesteps
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_ppo_variants import (
    REINFORCE,
    ClipPPO,
    KLPenaltyPPO,
    MaskableClipPPO,
    MaskableKLPenaltyPPO,
    MaskableREINFORCE,
)
from sb3_ppo_variants.differences import DIFFERENCES, Difference, Observed
from sb3_ppo_variants.masking import MaskablePolicyError

ROOT = pathlib.Path(__file__).resolve().parents[2]
#: the budget of every learn() here: one rollout of 8 steps and one update
STEPS = 8


# ---------------------------------------------------------------------------------------------- the pairs compared


def _cartpole() -> gym.Env:
    return gym.make("CartPole-v1")


def _invalid_action_env() -> gym.Env:
    return InvalidActionEnvDiscrete(dim=4, n_invalid_actions=1)


@dataclass(frozen=True)
class Pair:
    """SB3's class and ours, with the environment and the tiny settings both are built with."""

    sb3: type
    ours: type
    make_env: Callable[[], gym.Env]
    sb3_kwargs: dict[str, Any]
    our_kwargs: dict[str, Any]
    evaluate: Callable[..., Any] = evaluate_policy
    #: an environment with other spaces (set_env, load and evaluate_policy must refuse it)
    make_other_env: Callable[[], gym.Env] = field(default=lambda: gym.make("Pendulum-v1"))

    @property
    def id(self) -> str:
        return f"{self.sb3.__name__}-{self.ours.__name__}"

    def kwargs(self, cls: type) -> dict[str, Any]:
        return dict(self.sb3_kwargs if cls is self.sb3 else self.our_kwargs)


_PPO_SETTINGS = dict(n_steps=STEPS, batch_size=STEPS, n_epochs=1, policy_kwargs=dict(net_arch=[8]), device="cpu", seed=0)
_A2C_SETTINGS = dict(n_steps=STEPS, policy_kwargs=dict(net_arch=[8]), device="cpu", seed=0)
PAIRS = [
    Pair(PPO, ClipPPO, _cartpole, _PPO_SETTINGS, _PPO_SETTINGS),
    Pair(PPO, KLPenaltyPPO, _cartpole, _PPO_SETTINGS, _PPO_SETTINGS),
    Pair(A2C, REINFORCE, _cartpole, _A2C_SETTINGS, _A2C_SETTINGS),
    *(
        Pair(MaskablePPO, cls, _invalid_action_env, _PPO_SETTINGS, _PPO_SETTINGS, maskable_evaluate_policy, _cartpole)
        for cls in (MaskableClipPPO, MaskableKLPenaltyPPO)
    ),
    Pair(
        MaskablePPO,
        MaskableREINFORCE,
        _invalid_action_env,
        _PPO_SETTINGS,
        dict(n_steps=STEPS, policy_kwargs=dict(net_arch=[8]), device="cpu", seed=0),
        maskable_evaluate_policy,
        _cartpole,
    ),
]
PAIR_IDS = [pair.id for pair in PAIRS]


def shared_parameters(pair: Pair, method: str) -> list[str]:
    """The parameters of ``method`` that SB3's class and ours both take (``self`` and SB3's private ones left out)."""
    ours = inspect.signature(getattr(pair.ours, method)).parameters
    names = inspect.signature(getattr(pair.sb3, method)).parameters
    return [name for name in names if name in ours and name not in ("self", "_init_setup_model", "kwargs")]


# ---------------------------------------------------------------------------------------------- generated values


@dataclass
class Context:
    """What a value may need to be made: the pair, the model the call is made on, and a scratch folder."""

    pair: Pair
    cls: type
    model: Any
    folder: pathlib.Path


@dataclass(frozen=True)
class Make:
    """A value made afresh for each side (an environment, a callback, a file), shown by its label."""

    label: str
    build: Callable[[Context], Any]

    def __repr__(self) -> str:
        return self.label


def made(value: Any, context: Context) -> Any:
    return value.build(context) if isinstance(value, Make) else value


class CountingCallback(BaseCallback):
    def _on_step(self) -> bool:
        return True


NAN = float("nan")
INF = float("inf")
#: edge values tried on every parameter
EDGES: list[Any] = [None, "text", [], -1]

FLOAT_OK = [0.5, 1, np.float32(0.25), np.float64(0.5)]
PROBABILITY = [0.0, 1.0, 0.9, np.float32(0.95), 1.5, -0.1, NAN, INF]
POSITIVE_FLOAT = [*FLOAT_OK, 0.0, -0.5, NAN, INF, "0.5"]
NONNEGATIVE_FLOAT = [0.0, 0, *FLOAT_OK, -0.01, NAN, INF, "0.01"]
SCHEDULE = [lambda progress: 3e-4 * progress, "lin_0.001"]
COUNT = [1, 2, np.int64(4), np.int32(2), 4.0, 2.5, 0, -2, True, "4", NAN]

CONSTRUCTOR_VALUES: dict[str, list[Any]] = {
    "policy": [
        "MlpPolicy",
        "CnnPolicy",
        "MultiInputPolicy",
        "NoSuchPolicy",
        ActorCriticPolicy,
        MaskableActorCriticPolicy,
        3,
    ],
    "env": [
        Make("its env", lambda c: c.pair.make_env()),
        Make("its env x2 (DummyVecEnv)", lambda c: DummyVecEnv([c.pair.make_env, c.pair.make_env])),
        Make("an env of other spaces", lambda c: c.pair.make_other_env()),
        "CartPole-v1",
        "NoSuchEnv-v0",
        42,
    ],
    "learning_rate": [3e-4, *POSITIVE_FLOAT, *SCHEDULE, lambda progress: -progress],
    "n_steps": [STEPS, *COUNT],
    "batch_size": [STEPS, *COUNT, 3, 64],
    "n_epochs": [1, *COUNT],
    "gamma": [0.99, *PROBABILITY],
    "gae_lambda": [0.95, *PROBABILITY],
    "clip_range": [0.2, *POSITIVE_FLOAT, *SCHEDULE],
    "clip_range_vf": [0.2, *POSITIVE_FLOAT, *SCHEDULE],
    "normalize_advantage": [True, False, np.bool_(True), 1, 0, "yes"],
    "ent_coef": [0.01, *NONNEGATIVE_FLOAT],
    "vf_coef": [0.5, *NONNEGATIVE_FLOAT],
    "max_grad_norm": [0.5, 10, *POSITIVE_FLOAT],
    "use_sde": [False, True, np.bool_(False), 0, 1],
    "sde_sample_freq": [-1, 0, 4, np.int64(4), -2, 1.5],
    "rollout_buffer_class": [RolloutBuffer, DictRolloutBuffer, dict, "RolloutBuffer"],
    "rollout_buffer_kwargs": [{}, {"bogus": 1}, "size=3"],
    "target_kl": [0.01, np.float32(0.02), 0.0, -0.01, NAN, INF, "0.01"],
    "stats_window_size": [100, *COUNT],
    "tensorboard_log": [Make("a folder (str)", lambda c: str(c.folder / "tb")), Make("a folder (Path)", lambda c: c.folder)],
    "policy_kwargs": [{}, {"net_arch": [8]}, {"net_arch": []}, {"bogus": 1}, "net_arch=[8]"],
    "verbose": [0, 1, 2, np.int64(0), 1.5, True, "loud"],
    "seed": [0, 7, np.int64(3), np.uint8(1), 2**32, -3, 1.5, "7"],
    "device": ["cpu", th.device("cpu"), "auto", "cuda", "gpu0", 0],
}
#: SB3's defaults, for the drawn parameter "None": several parameters take None (``target_kl``, ``seed``...)
LEARN_VALUES: dict[str, list[Any]] = {
    "total_timesteps": [STEPS, np.int64(STEPS), np.int32(STEPS), float(STEPS), 1e1, 1, 0, -STEPS, 1.5, NAN, "8"],
    "callback": [
        Make("a function", lambda c: lambda locals_, globals_: True),
        Make("a BaseCallback", lambda c: CountingCallback()),
        Make("[a BaseCallback]", lambda c: [CountingCallback()]),
        Make("LogEveryNTimesteps(n_steps=4)", lambda c: LogEveryNTimesteps(n_steps=4)),
        42,
    ],
    "log_interval": [1, 2, np.int64(1), 1.0, 0, True, "1"],
    "tb_log_name": ["run", "", 42],
    "reset_num_timesteps": [True, False, np.bool_(False), 0, 1],
    "progress_bar": [False, np.bool_(False), 0],
    "use_masking": [True, False, np.bool_(True), 1, "yes"],
}


def observation_values(pair: Pair) -> list[Any]:
    """Observations for ``predict``: one and a batch of its env's, a list, and edge shapes and values."""
    space = pair.make_env().observation_space
    space.seed(0)
    one = np.asarray(space.sample())
    values: list[Any] = [one, np.stack([one, np.asarray(space.sample())]), one.tolist(), np.zeros((0, *one.shape))]
    values += [np.zeros((*one.shape, 3)), np.zeros((2, 2, 2)), "text", None, np.full(one.shape, NAN)]
    if isinstance(space, gym.spaces.Discrete):
        values += [int(one), space.n + 3, -1, 1.5]
    else:
        values += [one.astype(np.float64), np.zeros(one.size + 1), one[:-1]]
    return values


def predict_values(pair: Pair) -> dict[str, list[Any]]:
    values: dict[str, list[Any]] = {
        "observation": observation_values(pair),
        "state": [np.zeros((1, 4)), ()],
        "episode_start": [np.array([True]), [1], np.zeros(0)],
        "deterministic": [True, False, np.bool_(True), 0, 1, "yes"],
    }
    if pair.sb3 is MaskablePPO:
        mask = np.array([True, False, True, True])
        values["action_masks"] = [
            mask,
            mask[None],
            mask.astype(int),
            mask.tolist(),
            np.zeros(4, dtype=bool),
            mask[:3],
            np.stack([mask, mask]),
            mask.astype(float) * 0.5,
            np.full(4, NAN),
            "text",
        ]
    return values


def _save(context: Context, name: str) -> pathlib.Path:
    path = context.folder / name
    context.model.save(path)
    return path


def _saved_bytes(context: Context) -> io.BytesIO:
    buffer = io.BytesIO(_save(context, "model.zip").read_bytes())
    return buffer


def _truncated(context: Context) -> pathlib.Path:
    data = _save(context, "model.zip").read_bytes()
    path = context.folder / "truncated.zip"
    path.write_bytes(data[: len(data) // 2])
    return path


def _text_file(context: Context) -> pathlib.Path:
    path = context.folder / "notes.zip"
    path.write_text("not a model")
    return path


SAVE_VALUES: dict[str, list[Any]] = {
    "path": [
        Make("a str path", lambda c: str(c.folder / "m.zip")),
        Make("a str path without .zip", lambda c: str(c.folder / "m")),
        Make("a Path in a new folder", lambda c: c.folder / "new" / "m.zip"),
        Make("a BytesIO", lambda c: io.BytesIO()),
        Make("a folder", lambda c: c.folder),
        42,
    ],
    "exclude": [["ent_coef"], (), ["no_such_attribute"], 42, "ent_coef"],
    "include": [["ent_coef"], (), ["no_such_attribute"], 42],
}
LOAD_VALUES: dict[str, list[Any]] = {
    "path": [
        Make("its file (str)", lambda c: str(_save(c, "model.zip"))),
        Make("its file without .zip", lambda c: str(_save(c, "model.zip"))[:-4]),
        Make("its file (Path)", lambda c: _save(c, "model.zip")),
        Make("its file (BytesIO)", _saved_bytes),
        Make("a missing file", lambda c: c.folder / "missing.zip"),
        Make("a text file", _text_file),
        Make("a truncated file", _truncated),
        Make("a folder", lambda c: c.folder),
        42,
    ],
    "env": [
        Make("its env", lambda c: c.pair.make_env()),
        Make("its env x2 (DummyVecEnv)", lambda c: DummyVecEnv([c.pair.make_env, c.pair.make_env])),
        Make("an env of other spaces", lambda c: c.pair.make_other_env()),
        42,
    ],
    "device": ["cpu", th.device("cpu"), "auto", "gpu0"],
    "custom_objects": [{}, {"learning_rate": 1e-3}, {"n_steps": 4}, "text"],
    "print_system_info": [False, 0],
    "force_reset": [True, False, 0, np.bool_(True)],
}
SET_ENV_VALUES: dict[str, list[Any]] = {
    "env": [*LOAD_VALUES["env"][:3], "CartPole-v1", 42],
    "force_reset": [True, False, np.bool_(False), 0],
}


def _parameters(context: Context, change: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    parameters = context.model.get_parameters()
    if change is not None:
        change(parameters)
    return parameters


def _first_tensor(parameters: dict[str, Any]) -> tuple[dict[str, Any], str]:
    state = parameters["policy"]
    return state, next(iter(state))


def _wrong_shape(parameters: dict[str, Any]) -> None:
    state, key = _first_tensor(parameters)
    state[key] = th.zeros(3, 3)


def _nan_weights(parameters: dict[str, Any]) -> None:
    for tensor in parameters["policy"].values():
        tensor.fill_(NAN)


def _numpy_weights(parameters: dict[str, Any]) -> None:
    state, key = _first_tensor(parameters)
    state[key] = state[key].numpy()


SET_PARAMETERS_VALUES: dict[str, list[Any]] = {
    "load_path_or_dict": [
        Make("its parameters", _parameters),
        Make("its parameters without the optimizer", lambda c: _parameters(c, lambda p: p.pop("policy.optimizer"))),
        Make("its parameters and an unknown key", lambda c: _parameters(c, lambda p: p.update(bogus={}))),
        Make("its parameters, one of the wrong shape", lambda c: _parameters(c, _wrong_shape)),
        Make("its parameters, all NaN", lambda c: _parameters(c, _nan_weights)),
        Make("its parameters, one as a NumPy array", lambda c: _parameters(c, _numpy_weights)),
        Make("its file (str)", lambda c: str(_save(c, "model.zip"))),
        Make("a missing file", lambda c: str(c.folder / "missing.zip")),
        {},
        42,
    ],
    "exact_match": [True, False, np.bool_(False), 0],
    "device": ["cpu", th.device("cpu"), "auto", "gpu0"],
}
EVALUATE_VALUES: dict[str, list[Any]] = {
    "env": [*SET_ENV_VALUES["env"][:3], 42],
    "n_eval_episodes": [1, 2, np.int64(1), 1.0, 0, -1, 1.5, "1"],
    "deterministic": [True, False, np.bool_(False), 0],
    "callback": [Make("a function", lambda c: lambda locals_, globals_: None), 42],
    "reward_threshold": [0.0, -1.0, 1e9, np.float32(0), NAN],
    "return_episode_rewards": [True, False, 0],
    "warn": [True, False],
    "use_masking": [True, False, 0],
}


#: parameters where a string is a place to write (the edge "text" would write into the working directory)
WRITTEN_PATHS = ("tensorboard_log", "path")


def values_of(name: str, pool: dict[str, list[Any]]) -> list[Any]:
    """The values tried for parameter ``name``: its own, then the edge values it does not have yet."""
    own = pool[name]
    edges = [edge for edge in EDGES if not (name in WRITTEN_PATHS and isinstance(edge, str))]
    return own + [edge for edge in edges if not any(_same_value(edge, value) for value in own)]


def _same_value(a: Any, b: Any) -> bool:
    return type(a) is type(b) and repr(a) == repr(b)


# ---------------------------------------------------------------------------------------------- not yet fixed

#: Disagreements found and not fixed yet (not deliberate, so not in ``DIFFERENCES``): each would have an xfail test
#: below. Empty: the three found on the first run (``log_interval=None``, the device error's class, the error of a
#: rollout of a NaN policy) are fixed in the core, and their tests below pass.
AWAITING_CORE_FIX: tuple[Difference, ...] = ()


# ---------------------------------------------------------------------------------------------- the calls


def observe(call: Callable[[], Any], then: Callable[[Any], Any] | None = None) -> tuple[Observed, Any]:
    """Run ``call`` (and ``then`` on its result): what it did, and its result (None when it raised)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = call()
        except Exception as error:
            return Observed(error), None
        if then is not None:
            try:
                then(result)
            except Exception as error:
                return Observed(error, later=True), result
    return Observed(), result


def build(pair: Pair, cls: type, **overrides: Any) -> Any:
    kwargs = {"policy": "MlpPolicy", "env": pair.make_env(), **pair.kwargs(cls), **overrides}
    policy = kwargs.pop("policy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return cls(policy, **kwargs)


def _learn(model: Any) -> None:
    model.learn(STEPS)


def run_call(pair: Pair, cls: type, call: str, parameter: str, value: Any, folder: pathlib.Path) -> tuple[Observed, Any]:
    """``cls``'s ``call`` with ``parameter=value`` and every other argument at a valid default."""
    if call == "__init__":
        context = Context(pair, cls, None, folder)
        return observe(lambda: build(pair, cls, **{parameter: made(value, context)}), _learn)
    model = build(pair, cls)
    context = Context(pair, cls, model, folder)
    if call == "learn":
        return observe(lambda: model.learn(**{"total_timesteps": STEPS, parameter: made(value, context)}))
    if call == "predict":
        kwargs = {"observation": np.asarray(pair.make_env().observation_space.sample()), parameter: made(value, context)}
        return observe(lambda: model.predict(**kwargs))
    if call == "save":
        return _save_then_load(model, context, parameter, value)
    if call == "load":
        kwargs = {"path": made(LOAD_VALUES["path"][0], context), "env": pair.make_env(), parameter: made(value, context)}
        return observe(lambda: cls.load(**kwargs), _learn_if_env)
    if call == "set_env":
        kwargs = {"env": pair.make_env(), parameter: made(value, context)}
        return observe(lambda: model.set_env(**kwargs), lambda _: _learn(model))
    if call == "set_parameters":
        kwargs = {"load_path_or_dict": made(SET_PARAMETERS_VALUES["load_path_or_dict"][0], context)}
        kwargs[parameter] = made(value, context)
        return observe(lambda: model.set_parameters(**kwargs), lambda _: _learn(model))
    if call == "evaluate_policy":
        kwargs = {"env": pair.make_env(), "n_eval_episodes": 1, "warn": False, parameter: made(value, context)}
        return observe(lambda: pair.evaluate(model, **kwargs))
    raise AssertionError(f"no such call: {call}")


def _learn_if_env(model: Any) -> None:
    if model.get_env() is not None:
        model.learn(STEPS)


def _save_then_load(model: Any, context: Context, parameter: str, value: Any) -> tuple[Observed, Any]:
    """``save`` with ``parameter=value``; then the file is loaded again and trained on, where SB3 would fail."""
    kwargs = {"path": context.folder / "saved.zip", parameter: made(value, context)}
    target = kwargs["path"]

    def reload(_: Any) -> None:
        if isinstance(target, io.BytesIO):
            target.seek(0)
        elif not isinstance(target, (str, pathlib.Path)) or pathlib.Path(target).is_dir():
            return
        loaded = context.cls.load(target, env=context.pair.make_env())
        loaded.learn(STEPS)

    return observe(lambda: model.save(**kwargs), reload)


def run_both(pair: Pair, call: str, parameter: str, value: Any) -> tuple[Observed, Observed, Any, Any]:
    with tempfile.TemporaryDirectory() as sb3_folder, tempfile.TemporaryDirectory() as our_folder:
        sb3, sb3_result = run_call(pair, pair.sb3, call, parameter, value, pathlib.Path(sb3_folder))
        ours, our_result = run_call(pair, pair.ours, call, parameter, value, pathlib.Path(our_folder))
    return sb3, ours, sb3_result, our_result


def disagreement(
    pair: Pair,
    call: str,
    parameter: str,
    value: Any,
    sb3: Observed,
    ours: Observed,
    differences: Iterable[Difference] = DIFFERENCES + AWAITING_CORE_FIX,
) -> str | None:
    """None where ours does what SB3 does (or a listed difference explains it), else what differs."""
    if sb3.error is None and ours.error is None:
        return None
    if sb3.error is not None and ours.error is not None and isinstance(ours.error, type(sb3.error)):
        return None
    if any(difference.covers(call, parameter, value, sb3, ours) for difference in differences):
        return None
    return (
        f"{pair.ours.__name__}.{call}({parameter}={value!r}) against {pair.sb3.__name__}:\n"
        f"  SB3 {sb3.describe()}\n  ours {ours.describe()}"
    )


def check(pair: Pair, call: str, parameter: str, value: Any) -> tuple[Any, Any]:
    sb3, ours, sb3_result, our_result = run_both(pair, call, parameter, value)
    problem = disagreement(pair, call, parameter, value, sb3, ours)
    assert problem is None, problem
    return sb3_result, our_result


def argument(pair: Pair, method: str, pool: dict[str, list[Any]]) -> st.SearchStrategy[tuple[str, Any]]:
    """A (parameter, value) of ``method`` that SB3's class and ours both take."""
    names = [name for name in shared_parameters(pair, method) if name in pool]
    return st.sampled_from(names).flatmap(lambda name: st.tuples(st.just(name), st.sampled_from(values_of(name, pool))))


# ---------------------------------------------------------------------------------------------- the differential tests


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@given(data=st.data())
def test_constructor(pair, data):
    parameter, value = data.draw(argument(pair, "__init__", CONSTRUCTOR_VALUES))
    check(pair, "__init__", parameter, value)


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@given(data=st.data())
def test_learn(pair, data):
    parameter, value = data.draw(argument(pair, "learn", LEARN_VALUES))
    check(pair, "learn", parameter, value)


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@given(data=st.data())
def test_predict(pair, data):
    parameter, value = data.draw(argument(pair, "predict", predict_values(pair)))
    sb3, ours = check(pair, "predict", parameter, value)
    if sb3 is not None and ours is not None:  # the same kind of answer: actions of one shape, the state passed on
        assert np.shape(ours[0]) == np.shape(sb3[0])
        assert np.asarray(ours[0]).dtype.kind == np.asarray(sb3[0]).dtype.kind
        assert type(ours[1]) is type(sb3[1])


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@given(data=st.data())
def test_save(pair, data):
    parameter, value = data.draw(argument(pair, "save", SAVE_VALUES))
    check(pair, "save", parameter, value)


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@given(data=st.data())
def test_load(pair, data):
    parameter, value = data.draw(argument(pair, "load", LOAD_VALUES))
    _sb3, ours = check(pair, "load", parameter, value)
    if ours is not None:
        assert type(ours) is pair.ours


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@given(data=st.data())
def test_set_env(pair, data):
    parameter, value = data.draw(argument(pair, "set_env", SET_ENV_VALUES))
    check(pair, "set_env", parameter, value)


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@given(data=st.data())
def test_set_parameters(pair, data):
    parameter, value = data.draw(argument(pair, "set_parameters", SET_PARAMETERS_VALUES))
    check(pair, "set_parameters", parameter, value)


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_get_parameters_has_sb3s_structure(pair):
    """``get_parameters`` takes no argument: both give the same entries, tensors of the same shapes."""
    sb3, ours = (build(pair, cls).get_parameters() for cls in (pair.sb3, pair.ours))
    assert sorted(ours) == sorted(sb3)
    assert [tuple(t.shape) for t in ours["policy"].values()] == [tuple(t.shape) for t in sb3["policy"].values()]


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
@given(data=st.data())
def test_evaluate_policy(pair, data):
    names = [name for name in inspect.signature(pair.evaluate).parameters if name in EVALUATE_VALUES]
    parameter = data.draw(st.sampled_from(names))
    value = data.draw(st.sampled_from(values_of(parameter, EVALUATE_VALUES)))
    sb3, ours = check(pair, "evaluate_policy", parameter, value)
    if sb3 is not None and ours is not None:  # the same kind of answer: (mean, std) or (rewards, lengths)
        assert [type(part) for part in ours] == [type(part) for part in sb3]
        assert [np.shape(part) for part in ours] == [np.shape(part) for part in sb3]


# ---------------------------------------------------------------------------------------------- the list is load-bearing

#: for each rule of each rule-bearing entry of DIFFERENCES: a call (pair, method, parameter, value) it explains
WITNESSES: dict[str, list[tuple[int, str, str, Any]]] = {
    "bad-arguments": [(0, "__init__", "n_steps", 1), (0, "__init__", "n_epochs", 0), (0, "__init__", "gamma", 1.5)],
    "wrong-kind": [
        (0, "__init__", "normalize_advantage", 1),
        (0, "__init__", "use_sde", 1),
        (0, "learn", "log_interval", True),
        (0, "__init__", "max_grad_norm", "0.5"),
    ],
    "numpy-scalars": [(0, "__init__", "seed", np.int64(3))],
    "linear-schedule-text": [(0, "__init__", "learning_rate", "lin_0.001")],
    "clip-range-none": [(0, "__init__", "clip_range", None)],
    "clip-range-pair": [(0, "__init__", "clip_range", (0.2, 0.28))],
    "rollout-buffer-class": [(1, "__init__", "rollout_buffer_class", RolloutBuffer)],
    "total-timesteps": [(0, "learn", "total_timesteps", 0)],
    "log-interval": [(0, "learn", "log_interval", 0), (0, "learn", "log_interval", -1)],
    "batch-size-none": [(0, "__init__", "batch_size", None)],
    "reinforce-one-sample": [(5, "__init__", "batch_size", 1)],
    "action-masks": [(3, "predict", "action_masks", np.zeros(4, dtype=bool))],
}
BY_KEY = {difference.key: difference for difference in DIFFERENCES}


def test_every_rule_has_a_witness():
    for difference in DIFFERENCES:
        assert len(WITNESSES.get(difference.key, [])) == len(difference.rules), difference.key
    assert len(BY_KEY) == len(DIFFERENCES), "two entries share a key"


@pytest.mark.parametrize(("key", "index"), [(key, i) for key, calls in WITNESSES.items() for i in range(len(calls))])
def test_each_listed_difference_is_needed(key, index):
    """The witness is a real disagreement: the entry's rule explains it, and without the entry it is reported."""
    difference = BY_KEY[key]  # a KeyError here: the entry was taken out of the list, yet SB3 and ours still differ
    pair_index, call, parameter, value = WITNESSES[key][index]
    pair = PAIRS[pair_index]
    sb3, ours, _, _ = run_both(pair, call, parameter, value)
    assert difference.rules[index].covers(call, parameter, value, sb3, ours), (sb3.describe(), ours.describe())
    assert disagreement(pair, call, parameter, value, sb3, ours) is None
    others = tuple(entry for entry in DIFFERENCES + AWAITING_CORE_FIX if entry is not difference)
    assert disagreement(pair, call, parameter, value, sb3, ours, others) is not None


def _page_rows() -> list[tuple[str, ...]]:
    text = (ROOT / "docs" / "differences.md").read_text(encoding="utf-8")
    table = text.split("## Deliberate differences", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in table.splitlines() if line.startswith("| ")][1:]  # the header row left out
    return [tuple(cell.strip() for cell in row.strip().strip("|").split(" | ")) for row in rows]


def test_the_differences_page_shows_the_list():
    assert _page_rows() == [(d.what, d.sb3, d.ours, d.why) for d in DIFFERENCES]


# ---------------------------------------------------------------------------------------------- issue 25's reproductions


class _Dumps(KVWriter):
    """A logger output that counts the dumps."""

    def __init__(self) -> None:
        self.count = 0

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        self.count += 1

    def close(self) -> None:
        pass


def _dumps_of(pair: Pair, cls: type, log_interval: Any) -> int:
    model = build(pair, cls)
    dumps = _Dumps()
    model.set_logger(Logger(None, [dumps]))
    # SB3's callbacks guide: LogEveryNTimesteps logs every n steps, log_interval=None switches the automatic logs off
    model.learn(total_timesteps=4 * STEPS, callback=LogEveryNTimesteps(n_steps=2 * STEPS), log_interval=log_interval)
    return dumps.count


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_log_interval_none_switches_the_automatic_logs_off_as_in_sb3(pair):
    ours = _dumps_of(pair, pair.ours, None)
    assert ours == _dumps_of(pair, pair.sb3, None)
    assert ours < _dumps_of(pair, pair.ours, 1)  # without None, every rollout is logged too


class _CountingBackend:
    """A torch.compile backend that runs the traced graph as is and counts the calls of the compiled code."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, graph: Any, example_inputs: Any) -> Callable[..., Any]:
        def run(*args: Any) -> Any:
            self.calls += 1
            return graph.forward(*args)

        return run


@pytest.fixture
def keep_distribution_validation():
    """``torch.compile`` switches torch's distribution validation off for the whole process (torch 2.13): restored
    here, so that the tests after these see torch's default, as SB3's do."""
    previous = th.distributions.Distribution._validate_args
    yield
    th.distributions.Distribution.set_default_validate_args(previous)


def _compiled_calls(pair: Pair, cls: type) -> tuple[int, bool]:
    th._dynamo.reset()  # compiled code is cached per Python function: a cached one would count for an older backend
    model = build(pair, cls, n_steps=64)  # episodes end inside a rollout: REINFORCE without a baseline has samples
    before = [p.detach().clone() for p in model.policy.parameters()]
    backend = _CountingBackend()
    model.policy = th.compile(model.policy, backend=backend)  # SB3's examples guide, with a counting backend
    model.learn(ROLLOUT_STEPS)
    trained = any(not th.equal(a, b) for a, b in zip(before, model.policy.parameters(), strict=True))
    return backend.calls, trained


#: the steps of the compiled-policy runs: two rollouts of 64
ROLLOUT_STEPS = 128


@pytest.mark.parametrize("pair", PAIRS[:3], ids=PAIR_IDS[:3])
def test_a_compiled_policy_trains_and_its_compiled_forward_runs(pair, keep_distribution_validation):
    """Every rollout step runs the compiled code (once or more: torch may split a forward into several graphs), as
    with SB3's class, and the update trains the policy's parameters."""
    assert _compiled_calls(pair, pair.sb3)[0] >= ROLLOUT_STEPS  # the check can tell: SB3's runs do
    calls, trained = _compiled_calls(pair, pair.ours)
    assert trained
    assert calls >= ROLLOUT_STEPS


@pytest.mark.slow
@pytest.mark.parametrize("cls", [ClipPPO, KLPenaltyPPO, REINFORCE])
def test_sb3_docs_th_compile_example(cls, keep_distribution_validation):
    """SB3's examples guide, word for word with our class in place of PPO (torch's default backend: seconds)."""
    model = cls("MlpPolicy", "CartPole-v1", n_steps=STEPS, device="cpu")
    model.policy = th.compile(model.policy)
    model.learn(2 * STEPS)


@pytest.mark.parametrize("cls", [MaskableClipPPO, MaskableKLPenaltyPPO, MaskableREINFORCE])
def test_masked_classes_raise_what_sb3_contrib_raises(cls):
    with pytest.raises(ValueError) as contrib:
        MaskablePPO(ActorCriticPolicy, _invalid_action_env())
    with pytest.raises(type(contrib.value), match="must be a MaskableActorCriticPolicy subclass") as ours:
        cls(ActorCriticPolicy, _invalid_action_env())
    assert isinstance(ours.value, TypeError) and isinstance(ours.value, MaskablePolicyError)
    with pytest.raises(AssertionError, match="The algorithm only supports"):
        MaskablePPO("MlpPolicy", "Pendulum-v1")
    with pytest.raises(ValueError, match=r"not maskable\. The algorithm only supports .* as action spaces but Box"):
        cls("MlpPolicy", "Pendulum-v1")


@pytest.mark.parametrize("device", ["gpu0", None])
def test_a_bad_device_raises_an_instance_of_torchs_error(device):
    disagreement_ = run_both(PAIRS[0], "__init__", "device", device)
    assert disagreement(PAIRS[0], "__init__", "device", device, *disagreement_[:2], DIFFERENCES) is None


@pytest.mark.parametrize("pair", PAIRS, ids=PAIR_IDS)
def test_a_nan_policy_fails_its_rollout_as_in_sb3(pair):
    value = SET_PARAMETERS_VALUES["load_path_or_dict"][4]
    sb3, ours, _, _ = run_both(pair, "set_parameters", "load_path_or_dict", value)
    assert disagreement(pair, "set_parameters", "load_path_or_dict", value, sb3, ours, DIFFERENCES) is None
