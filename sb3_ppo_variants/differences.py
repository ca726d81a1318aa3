"""The deliberate differences from SB3's and sb3-contrib's public behaviour, in one typed registry.

Each :class:`Difference` says which call and parameter it concerns, what SB3 (``PPO``, ``A2C``, ``MaskablePPO``)
does, what we do instead, and why. The registry is read in two places, so that they cannot drift apart:

- the differential tests (``tests/core/test_differential.py``) call SB3's class and ours side by side with generated
  arguments and accept a disagreement only where :meth:`Difference.covers` says an entry explains it;
- the Differences page (``docs/differences.md``) shows every entry in its table (a test checks that it does).

A behaviour is either "accepts" (:data:`ACCEPTS`) or "raises one of these exception classes", possibly only at the
first ``learn()`` after the call (``later=True``: SB3 takes the value and fails on it when it trains).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["ACCEPTS", "DIFFERENCES", "Behaviour", "Difference", "Observed", "Rule"]


@dataclass(frozen=True)
class Observed:
    """What one call did with its arguments: ``error`` is None when it returned; ``later`` when the call returned but
    the first ``learn()`` after it raised ``error``."""

    error: BaseException | None = None
    later: bool = False

    def describe(self) -> str:
        if self.error is None:
            return "accepts"
        when = " at the next learn()" if self.later else ""
        return f"raises {type(self.error).__name__}{when}: {self.error}"


@dataclass(frozen=True)
class Behaviour:
    """A class of observed behaviours: accepting (``raises=()``), or raising an instance of one of ``raises``.

    :param raises: the exception classes; empty means "accepts"
    :param later: None: at the call or at the next ``learn()``; True/False: only then / only at the call
    """

    raises: tuple[type[BaseException], ...] = ()
    later: bool | None = None

    def matches(self, observed: Observed) -> bool:
        if not self.raises:
            return observed.error is None
        if observed.error is None or not isinstance(observed.error, self.raises):
            return False
        return self.later is None or self.later == observed.later

    def describe(self) -> str:
        if not self.raises:
            return "accepts"
        names = " or ".join(error.__name__ for error in self.raises)
        return f"raises {names}" + {None: "", True: " at the next learn()", False: " at the call"}[self.later]


#: the behaviour "accepts the value"
ACCEPTS = Behaviour()


@dataclass(frozen=True)
class Rule:
    """Which disagreements with SB3 a :class:`Difference` explains: SB3 doing ``sb3_does`` and us doing ``we_do``.

    :param calls: the methods (``"__init__"``, ``"learn"``, ``"predict"``, ``"load"``, ...); empty: any
    :param parameters: the parameters; empty: any
    :param sb3_does: what SB3's class does with such a value
    :param we_do: what our class does with it
    :param values: which values it concerns (None: any value)
    """

    calls: tuple[str, ...]
    parameters: tuple[str, ...]
    sb3_does: Behaviour
    we_do: Behaviour
    values: Callable[[Any], bool] | None = None

    def covers(self, call: str, parameter: str, value: Any, sb3: Observed, ours: Observed) -> bool:
        if self.calls and call not in self.calls:
            return False
        if self.parameters and parameter not in self.parameters:
            return False
        if self.values is not None and not self.values(value):
            return False
        return self.sb3_does.matches(sb3) and self.we_do.matches(ours)


@dataclass(frozen=True)
class Difference:
    """One deliberate difference from SB3: a row of the Differences page, and the rules the differential tests apply.

    :param key: a short stable name (tests refer to entries by it)
    :param what: the page's "what" column
    :param sb3: the page's "SB3" column
    :param ours: the page's "ours" column
    :param why: the page's "why" column
    :param rules: the accept/refuse disagreements it explains; none for a difference in what a call computes or
        how fast (those have tests of their own)
    """

    key: str
    what: str
    sb3: str
    ours: str
    why: str
    rules: tuple[Rule, ...] = ()

    def covers(self, call: str, parameter: str, value: Any, sb3: Observed, ours: Observed) -> bool:
        """Whether this entry explains SB3 doing ``sb3`` and us doing ``ours`` for ``call(parameter=value)``."""
        return any(rule.covers(call, parameter, value, sb3, ours) for rule in self.rules)


def _is_number(value: Any) -> bool:
    """A real number (NumPy's included) other than a bool."""
    if isinstance(value, (bool, np.bool_, str, bytes)):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _not_a_bool(value: Any) -> bool:
    return not isinstance(value, (bool, np.bool_))


def _not_an_int(value: Any) -> bool:
    """A bool, or anything that is not an integer (1.0 and 1.5 included)."""
    return isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer))


def _text_or_list(value: Any) -> bool:
    return isinstance(value, (str, list, tuple))


def _numpy_scalar(value: Any) -> bool:
    return isinstance(value, np.generic)


def _linear_schedule_text(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("lin_")


def _one(value: Any) -> bool:
    return _is_number(value) and value == 1


_REFUSED = Behaviour((ValueError, TypeError), later=False)
#: the constructor parameters whose numeric range we check and SB3 does not
RANGE_CHECKED = (
    "learning_rate",
    "gamma",
    "gae_lambda",
    "clip_range",
    "clip_range_vf",
    "ent_coef",
    "vf_coef",
    "max_grad_norm",
    "target_kl",
    "stats_window_size",
    "verbose",
    "sde_sample_freq",
)
#: the parameters that take a bool and nothing else (SB3 takes any value and uses its truth)
STRICT_BOOLS = ("normalize_advantage", "use_sde", "use_masking")
#: the parameters that take an int and nothing else (SB3 takes a bool, a float or None where Python can use it)
STRICT_INTS = ("n_epochs", "verbose", "stats_window_size", "sde_sample_freq", "log_interval")

DIFFERENCES: tuple[Difference, ...] = (
    Difference(
        key="bad-arguments",
        what="Bad constructor arguments",
        sb3=(
            "`assert`; or taken, and a crash later (e.g. `n_epochs=0` at the first update); or taken and trained on "
            "(a negative `ent_coef`, `gamma=1.5`, a NaN `clip_range`)"
        ),
        ours=(
            "`ValueError`/`TypeError` at construction, naming the parameter and what is allowed; SB3's wording is kept "
            'inside where SB3 has a message (e.g. "`batch_size` must be greater than 1", "The algorithm only supports")'
        ),
        why="asserts vanish under `python -O`, and a crash an hour into training is worse than an error at once",
        rules=(
            Rule(("__init__",), (), Behaviour((AssertionError,)), _REFUSED),
            Rule(("__init__",), (), Behaviour((Exception,), later=True), _REFUSED),
            Rule(("__init__",), RANGE_CHECKED, ACCEPTS, Behaviour((ValueError,), later=False), _is_number),
        ),
    ),
    Difference(
        key="wrong-kind",
        what="An argument of the wrong kind",
        sb3=(
            "used as Python would: `True` or `1.0` as the int 1, `0`, `None` or `[]` as False, `'0.5'` as a number, "
            "`[]` as an empty dict, `stats_window_size=None` as no limit"
        ),
        ours=(
            f"`TypeError` naming the parameter and its kind, for the bools ({', '.join(STRICT_BOOLS)}) and ints "
            f"({', '.join(STRICT_INTS)}), `max_grad_norm` and `rollout_buffer_kwargs`; NumPy bools and ints are fine"
        ),
        why="a value of the wrong kind is nearly always a mistake (a misplaced argument, a YAML string)",
        rules=(
            Rule(("__init__", "learn"), STRICT_BOOLS, ACCEPTS, Behaviour((TypeError,), later=False), _not_a_bool),
            # SB3 uses the value's truth, and refuses what True means (use_sde=1 with discrete actions)
            Rule(("__init__",), STRICT_BOOLS, Behaviour((Exception,)), Behaviour((TypeError,), later=False), _not_a_bool),
            Rule(("__init__", "learn"), STRICT_INTS, ACCEPTS, Behaviour((TypeError,), later=False), _not_an_int),
            Rule(
                ("__init__",),
                ("max_grad_norm", "rollout_buffer_kwargs"),
                ACCEPTS,
                Behaviour((TypeError,), later=False),
                _text_or_list,
            ),
        ),
    ),
    Difference(
        key="numpy-scalars",
        what="NumPy scalars (`np.float32(3e-4)`, `np.int64(7)`)",
        sb3=(
            "refused in places: a schedule that is not a Python float (`assert`), `seed` (`TypeError`), "
            "`stats_window_size` (`TypeError` at the first `learn()`)"
        ),
        ours="taken as the number they hold, everywhere",
        why="values read with NumPy, from an Optuna study or from a sweep arrive as NumPy scalars",
        rules=(Rule((), (), Behaviour((Exception,)), ACCEPTS, _numpy_scalar),),
    ),
    Difference(
        key="linear-schedule-text",
        what="`learning_rate`, `clip_range`, `clip_range_vf` given as `'lin_0.001'`",
        sb3="`assert` (not a float or a callable)",
        ours="rl_zoo3's linear schedule, from the value to 0",
        why="rl_zoo3's notation; our own schedule parameters take it too",
        rules=(
            Rule(
                ("__init__",),
                ("learning_rate", "clip_range", "clip_range_vf"),
                Behaviour((AssertionError,)),
                ACCEPTS,
                _linear_schedule_text,
            ),
        ),
    ),
    Difference(
        key="clip-range-none",
        what="`clip_range=None`",
        sb3="`assert` (`PPO`, `MaskablePPO`)",
        ours="the unclipped surrogate r_t Â_t",
        why='the paper\'s "no clipping or penalty" baseline',
        rules=(Rule(("__init__",), ("clip_range",), Behaviour((AssertionError,)), ACCEPTS, lambda value: value is None),),
    ),
    Difference(
        key="clip-range-pair",
        what="`clip_range=(eps_low, eps_high)`",
        sb3="`assert` (`PPO`, `MaskablePPO`: not a float or a callable)",
        ours="the asymmetric clip `[1 - eps_low, 1 + eps_high]` (eps_high >= eps_low)",
        why="DAPO's clip-higher (Yu et al. 2025); one parameter holds the whole clip, as TorchRL's `clip_epsilon`",
        rules=(
            Rule(
                ("__init__",),
                ("clip_range",),
                Behaviour((AssertionError,)),
                ACCEPTS,
                lambda value: isinstance(value, (tuple, list)) and len(value) == 2,
            ),
        ),
    ),
    Difference(
        key="rollout-buffer-class",
        what="`rollout_buffer_class` of the wrong kind",
        sb3="accepted; fails at the first rollout or sample, or trains with the wrong buffer",
        ours=(
            "refused at construction: a Dict observation space needs a `DictRolloutBuffer` subclass and other spaces "
            "need a non-Dict one. `REINFORCE` needs a `RewardToGoRolloutBuffer` subclass, and `KLPenaltyPPO` with the "
            "closed-form KL needs a `DistParamsRolloutBuffer` subclass"
        ),
        why=(
            "these algorithms compute their weights, or store the old distribution, in those buffers; SB3's GAE buffer "
            "would silently train something else"
        ),
        rules=(Rule(("__init__",), ("rollout_buffer_class",), ACCEPTS, Behaviour((ValueError,), later=False)),),
    ),
    Difference(
        key="default-rollout-buffer",
        what="Default rollout buffer",
        sb3="`RolloutBuffer`",
        ours=(
            "`TensorRolloutBuffer`, a subclass with the same values that gathers each minibatch with one copy per"
            " field (`np.take` on the CPU, a torch gather elsewhere)"
        ),
        why="speed; pass `rollout_buffer_class=RolloutBuffer` for SB3's own (tested equal)",
    ),
    Difference(
        key="default-optimizer",
        what="Arithmetic (`numerics`)",
        sb3="SB3's",
        ours=(
            '`numerics="fast"` (default): `Adam(fused=True)` on CPU/CUDA unless you choose `fused`/`foreach` in '
            "`optimizer_kwargs` (`model.policy_kwargs` and saved files keep what you passed), and the NumPy "
            'rollout step and update below. `numerics="sb3"`: SB3\'s arithmetic, bit for bit. Saved with the '
            'model; a file saved before the setting existed keeps what it ran with (fused Adam: `"fast"`, '
            'otherwise `"sb3"`)'
        ),
        why=(
            "speed. Results differ only by float rounding (3e-8 to 6e-8 on the parameters after three updates); "
            "before `numerics` existed, choosing `fused=False` switched the NumPy paths off as a side effect, now"
            " only `numerics` does"
        ),
    ),
    Difference(
        key="numpy-rollout-step",
        what="Rollout policy step of SB3's `MlpPolicy`",
        sb3="torch: `policy(obs)` under `no_grad`",
        ours=(
            "the same function in NumPy on the policy's own parameter memory (`_lean/numpy_rollout.py`), where "
            "every part is an exact SB3/torch class it knows (`Linear`, `Tanh`, `ReLU`, `FlattenExtractor`, "
            "`MlpExtractor`; Gaussian, gSDE or categorical actions), on the CPU in float32, for batches up to "
            '2^18 multiply-adds per layer, and only with `numerics="fast"`. The noise and the categorical samples'
            " are drawn by torch's generator exactly as SB3 draws them; the categorical draw computes what "
            "torch's CPU `multinomial(probs, 1, True)` computes (`argmax(probs / q)`, `q` from `exponential_()`) "
            "instead of calling it, after a once-per-process check that both give the same actions and generator "
            "state (otherwise, and for NaN probabilities, `torch.multinomial` is called)"
        ),
        why=(
            "speed: a torch call costs 5-10 µs of dispatch for a 1-8 row batch, a NumPy call about 1 µs. The "
            "stored values, log-probabilities and actions differ from SB3's by float rounding (over one 64-step "
            "rollout: values up to 1.5e-7, actions and log-probabilities up to 1.4e-6 with gSDE, where the env "
            'feeds the difference back); `numerics="sb3"` turns this off, and the rollouts are then SB3\'s bit for'
            " bit"
        ),
    ),
    Difference(
        key="numpy-update",
        what="Update (gradients of each minibatch) of SB3's `MlpPolicy`",
        sb3="autograd: `policy.evaluate_actions`, the loss in torch, `loss.backward()`",
        ours=(
            "the same forward pass, loss and backward pass written out in NumPy (`_lean/numpy_update.py`, with "
            "the NumPy twins of the losses registered in `_lean/twins.py`), gradients into `.grad`, then the same"
            " optimizer step; under the rollout step's conditions, and only where no subclass or object replaces "
            "`_policy_loss`, `_minibatch_loss`, `_minibatch_policy_kwargs` or KLPenaltyPPO's `_kl`, no gradient "
            "hook is registered on a parameter, no parameter is frozen and autograd's anomaly detection is off"
        ),
        why=(
            "speed: a minibatch of 64-256 samples is mostly torch dispatch and autograd bookkeeping. Float "
            "rounding differs (every gradient within 1e-4 relative of autograd's in the tests; after three "
            "updates the parameters are within 3e-8 to 6e-8 of SB3's over the equivalence test's five settings, "
            "as before it); the SB3 exact-arithmetic setting below turns it off. Within an update `.grad` holds "
            "views of one NumPy array, new at every update"
        ),
    ),
    Difference(
        key="threads",
        what="Threads during `learn()` (`threads`)",
        sb3="torch's and BLAS's defaults (one thread per core)",
        ours=(
            '`threads="auto"` (default): one torch and BLAS thread during `learn()` for a policy of at most 100,0'
            "00 parameters unless you set a count yourself; an int: that many; `None`: yours. Restored afterwards"
        ),
        why=(
            "speed: small operations gain nothing from more threads and wait for each other, worst beside ot"
            "her work ([Speed, Threads](speed.md#threads))"
        ),
    ),
    Difference(
        key="tensorboard-name",
        what="Default TensorBoard run name",
        sb3="`PPO_1`, `A2C_1`",
        ours="`ClipPPO_1`, `KLPenaltyPPO_1`, `REINFORCE_1`",
        why="runs of different algorithms in one log folder stay apart; pass `tb_log_name` to choose",
    ),
    Difference(
        key="total-timesteps",
        what="`learn(total_timesteps)`",
        sb3="any number: 0, a negative number or NaN returns at once without training; 1.5 trains whole rollouts",
        ours="an int or a whole-valued float (`1e6`), >= 1; otherwise `ValueError`",
        why="the paper's and the zoo's budgets are written as floats; a budget that trains nothing is a mistake",
        rules=(Rule(("learn",), ("total_timesteps",), ACCEPTS, Behaviour((ValueError,)), _is_number),),
    ),
    Difference(
        key="log-interval",
        what="`learn(log_interval=0)` or a negative `log_interval`",
        sb3="0: `ZeroDivisionError` at the first rollout; negative: logs after every rollout",
        ours="`ValueError`: `None` (no logging) or an int >= 1",
        why="neither value means anything; SB3's behaviour with them is an accident of Python's `%`",
        rules=(
            Rule(("learn",), ("log_interval",), Behaviour((ZeroDivisionError,)), Behaviour((ValueError,)), _is_number),
            Rule(("learn",), ("log_interval",), ACCEPTS, Behaviour((ValueError,)), _is_number),
        ),
    ),
    Difference(
        key="batch-size-none",
        what="`batch_size=None`",
        sb3="not allowed (`PPO`: `TypeError`)",
        ours="the whole rollout is one minibatch",
        why="REINFORCE's default; handy for full-batch PPO",
        rules=(Rule(("__init__",), ("batch_size",), Behaviour((TypeError,)), ACCEPTS, lambda value: value is None),),
    ),
    Difference(
        key="reinforce-one-sample",
        what="`MaskableREINFORCE(n_steps=1)` or `batch_size=1`, against `MaskablePPO`",
        sb3="`MaskablePPO` normalises the advantages of one sample: NaN, `ValueError` at the first update",
        ours="REINFORCE normalises the returns over the whole rollout, and a zero spread gives 0, never NaN",
        why="REINFORCE is not PPO: the SPEC's normalised reward-to-go",
        rules=(Rule(("__init__",), ("n_steps", "batch_size"), Behaviour((ValueError,), later=True), ACCEPTS, _one),),
    ),
    Difference(
        key="action-masks",
        what="Masked classes: `predict(action_masks=...)` that are not booleans, or allow no action",
        sb3="taken: 0.5 or NaN entries, or a state with no legal action, sample from NaN or meaningless probabilities",
        ours=(
            "`TypeError` for masks that are not booleans (or 0/1 numbers), `ValueError` for a state or action "
            "dimension without a legal action; both say which entry"
        ),
        why="such a mask is a bug in the environment, and the actions it gives look plausible",
        rules=(Rule(("predict",), ("action_masks",), ACCEPTS, Behaviour((TypeError, ValueError))),),
    ),
    Difference(
        key="load-not-a-model",
        what="`load()` of a file that is not a model, or is truncated",
        sb3="fails while unpickling",
        ours="refused before anything is unpickled. SB3's \"wasn't a zip-file\" wording is kept",
        why="clearer errors; nothing is executed from a broken file",
    ),
    Difference(
        key="load-other-algorithm",
        what="`load()` of another of our algorithms' files",
        sb3="loads silently into the wrong class",
        ours="refused, naming the class to use. An SB3 `PPO` file loads into `ClipPPO` with a warning",
        why="a `KLPenaltyPPO` model loaded as `ClipPPO` would silently drop its β state",
    ),
    Difference(
        key="load-release-0-1",
        what="`load(path, policy_kwargs=...)` of a file written by release 0.1.0",
        sb3="n/a",
        ours=(
            "also accepts the `policy_kwargs` the model was built with, although 0.1.0 stored the fused-Adam "
            "choice inside them"
        ),
        why="files of the previous release stay usable",
    ),
    Difference(
        key="non-finite-env",
        what="Non-finite environment output",
        sb3="trains on it (unless wrapped in `VecCheckNan`)",
        ours="`ValueError` naming the timestep",
        why="a NaN reward turns the network into NaN far from its cause",
    ),
    Difference(
        key="diverged-update",
        what="A diverged update (NaN/inf loss, gradient or parameter)",
        sb3="trains on",
        ours="`FloatingPointError` after the update, saying what to change",
        why="the same reason",
    ),
    Difference(
        key="distribution-validation",
        what="torch's argument validation of distributions",
        sb3="as the user set it",
        ours="switched off inside our rollouts and updates, and restored on exit (callbacks see your setting)",
        why="it re-checks every tensor at every step; the two checks above cover what it would catch",
    ),
    Difference(
        key="inference-mode",
        what="Rollout tensors seen by callbacks (`self.locals`)",
        sb3="made under `torch.no_grad()`",
        ours="under `torch.inference_mode()` when the fast path runs (SB3's `no_grad` otherwise)",
        why="speed; such tensors cannot be modified in place or saved for backward outside inference mode",
    ),
    Difference(
        key="saved-data",
        what="Saved data",
        sb3="SB3's",
        ours="SB3's plus `_algorithm_name`",
        why="lets `load()` refuse another algorithm's file",
    ),
    Difference(
        key="recurrent-sequences",
        what="Recurrent classes: the LSTM pass over a training minibatch, against `RecurrentPPO`",
        sb3="one LSTM call per time step whenever the minibatch holds an episode start (nearly always)",
        ours=(
            'with `numerics="fast"` (default), for sb3-contrib\'s exact recurrent policy classes: the first states '
            "zeroed where a sequence starts an episode, then one LSTM call for the whole padded minibatch; "
            '`numerics="sb3"`, or any other policy class: sb3-contrib\'s `_process_sequence`'
        ),
        why=(
            "speed; the buffer cuts sequences at every episode start, so a reset can only fall on a first step and "
            "the two compute the same recurrence (parameters within 3e-8 after three updates, float rounding; "
            '`numerics="sb3"` gives `RecurrentPPO`\'s bit for bit)'
        ),
    ),
    Difference(
        key="recurrent-squash",
        what="Recurrent classes: Box actions of a policy with `squash_output=True` in rollouts",
        sb3="`RecurrentPPO` clips the squashed action to the bounds",
        ours="unscaled to the bounds, as SB3's `PPO` (and `RecurrentPPO.predict`) do",
        why="the action the environment gets in training is then the one `predict` gives",
    ),
    Difference(
        key="recurrent-predict-state",
        what="Recurrent classes: `predict(state=..., episode_start=...)` of the wrong shape",
        sb3="an error from inside torch's LSTM (state), or broadcast silently (episode starts)",
        ours="`ValueError` naming the argument and the shape expected, `(n_lstm_layers, n_envs, lstm_hidden_size)`",
        why="a state of the wrong env count or episode starts of the wrong length are bugs that look plausible",
    ),
    Difference(
        key="recurrent-options",
        what="Recurrent classes: `recompute_advantage=True`",
        sb3="n/a (`RecurrentPPO` has no such option)",
        ours="`ValueError` at construction",
        why="it evaluates the critic on the whole rollout without the LSTM states, which would give wrong values",
    ),
    Difference(
        key="lstm-policy-for-memoryless",
        what="A recurrent (LSTM) policy class for a memoryless class (`PPO(RecurrentActorCriticPolicy, ...)`)",
        sb3="accepted; the first rollout fails (its `forward` needs the LSTM states)",
        ours="`TypeError` at construction naming the recurrent classes; loading a `RecurrentPPO` file into `ClipPPO` too",
        why="the same reason as for bad arguments; a `RecurrentPPO` file loads into `RecurrentClipPPO`",
    ),
)
