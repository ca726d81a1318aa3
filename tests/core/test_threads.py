"""``sb3_ppo_variants.threads``: the ``threads`` setting of ``learn()`` (what it changes, and that it puts it back)."""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import pytest
import torch as th

from sb3_ppo_variants import threads
from sb3_ppo_variants.threads import SMALL_POLICY_PARAMETERS, check_threads, count_parameters, limited_threads

SMALL = 9_155  # ClipPPO's default MlpPolicy on CartPole
LARGE = SMALL_POLICY_PARAMETERS + 1


@pytest.fixture
def torch_started_with_3(monkeypatch: pytest.MonkeyPatch):
    """torch as a user finds it: 3 intra-op threads, its start value; no thread variable in the environment."""
    previous = th.get_num_threads()
    for name in threads.THREAD_ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(threads, "TORCH_START_THREADS", 3)
    th.set_num_threads(3)
    yield
    th.set_num_threads(previous)


class FakeBlas:
    """A stand-in for threadpoolctl that records the limits set and restored (one OpenBLAS with 4 threads)."""

    def __init__(self) -> None:
        self.num_threads = 4
        self.calls: list[Any] = []

    def module(self) -> types.ModuleType:
        fake = types.ModuleType("threadpoolctl")
        blas = self

        class Limiter:
            def __init__(self, limits: int, user_api: str) -> None:
                blas.calls.append(("limit", limits, user_api))
                self._before = blas.num_threads
                blas.num_threads = limits

            def restore_original_limits(self) -> None:
                blas.calls.append(("restore", self._before))
                blas.num_threads = self._before

        fake.threadpool_limits = Limiter  # type: ignore[attr-defined]
        fake.threadpool_info = lambda: [  # type: ignore[attr-defined]
            {"user_api": "blas", "internal_api": "openblas", "num_threads": blas.num_threads},
            {"user_api": "openmp", "internal_api": "openmp", "num_threads": 8},
        ]
        return fake


@pytest.fixture
def fake_blas(monkeypatch: pytest.MonkeyPatch) -> FakeBlas:
    blas = FakeBlas()
    monkeypatch.setitem(sys.modules, "threadpoolctl", blas.module())
    return blas


@pytest.fixture
def no_threadpoolctl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "threadpoolctl", None)  # import raises ImportError


# ---------------------------------------------------------------------------------------------------- check_threads


@pytest.mark.parametrize("value", ["auto", None, 1, 4, np.int64(2)])
def test_check_threads_accepts(value: Any) -> None:
    result = check_threads(value, "ClipPPO")
    assert result == value and type(result) is (int if isinstance(value, np.integer) else type(value))


@pytest.mark.parametrize(
    ("value", "error", "detail"),
    [
        ("max", ValueError, "got 'max'"),
        ("4", ValueError, "pass the int 4"),
        ("AUTO", ValueError, "got 'AUTO'"),
        (0, ValueError, "got 0"),
        (-2, ValueError, "got -2"),
        (1.0, TypeError, "of type float"),
        (True, TypeError, "of type bool"),
        ([1], TypeError, "of type list"),
    ],
)
def test_check_threads_refuses(value: Any, error: type[Exception], detail: str) -> None:
    with pytest.raises(error) as info:
        check_threads(value, "ClipPPO")
    message = str(info.value)
    assert message.startswith("ClipPPO: `threads` must be 'auto', None or an int >= 1")
    assert detail in message


def test_bad_setting_changes_nothing(torch_started_with_3: None) -> None:
    with pytest.raises(ValueError, match="`threads`"), limited_threads("fast", SMALL):
        pass
    with pytest.raises(ValueError, match="`n_parameters`"), limited_threads("auto", -1):
        pass
    assert th.get_num_threads() == 3


def test_count_parameters() -> None:
    assert count_parameters(th.nn.Linear(4, 3)) == 4 * 3 + 3
    assert count_parameters(th.nn.Sequential()) == 0


# ---------------------------------------------------------------------------------------------------- "auto"


def test_auto_small_policy_one_thread_then_restored(torch_started_with_3: None, fake_blas: FakeBlas) -> None:
    with limited_threads("auto", SMALL) as limit:
        assert th.get_num_threads() == 1
        assert fake_blas.num_threads == 1
    assert th.get_num_threads() == 3
    assert fake_blas.num_threads == 4
    assert fake_blas.calls == [("limit", 1, "blas"), ("restore", 4)]
    assert (limit.torch_before, limit.torch_inside, limit.blas_before, limit.blas_inside) == (3, 1, {"openblas": 4}, 1)
    assert limit.changed


def test_auto_keeps_a_count_the_user_set(torch_started_with_3: None, fake_blas: FakeBlas) -> None:
    th.set_num_threads(2)  # the user's own choice
    with limited_threads("auto", SMALL) as limit:
        assert th.get_num_threads() == 2
    assert th.get_num_threads() == 2
    assert fake_blas.calls == []
    assert not limit.changed and "was set to 2" in limit.reason


@pytest.mark.parametrize("variable", threads.THREAD_ENV_VARS)
def test_auto_keeps_the_environment_variables(
    torch_started_with_3: None, fake_blas: FakeBlas, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    monkeypatch.setenv(variable, "3")
    with limited_threads("auto", SMALL) as limit:
        assert th.get_num_threads() == 3
    assert fake_blas.calls == [] and variable in limit.reason


def test_auto_leaves_a_large_policy(torch_started_with_3: None, fake_blas: FakeBlas) -> None:
    with limited_threads("auto", LARGE) as limit:
        assert th.get_num_threads() == 3
    assert fake_blas.calls == [] and not limit.changed and "parameters" in limit.reason


def test_auto_at_the_threshold_is_small(torch_started_with_3: None, fake_blas: FakeBlas) -> None:
    with limited_threads("auto", SMALL_POLICY_PARAMETERS):
        assert th.get_num_threads() == 1


def test_auto_without_threadpoolctl_limits_torch_and_says_so(torch_started_with_3: None, no_threadpoolctl: None) -> None:
    with limited_threads("auto", SMALL) as limit:
        assert th.get_num_threads() == 1
    assert th.get_num_threads() == 3
    assert limit.blas_inside is None and limit.blas_before == {}
    assert "threadpoolctl is not installed" in limit.describe()


# ---------------------------------------------------------------------------------------------------- int and None


def test_int_sets_both_whatever_the_policy(torch_started_with_3: None, fake_blas: FakeBlas) -> None:
    th.set_num_threads(5)  # even over the user's own setting: an explicit int is the user's choice for learn()
    with limited_threads(2, LARGE):
        assert th.get_num_threads() == 2
        assert fake_blas.num_threads == 2
    assert th.get_num_threads() == 5
    assert fake_blas.num_threads == 4


def test_none_changes_nothing(torch_started_with_3: None, fake_blas: FakeBlas) -> None:
    with limited_threads(None, SMALL) as limit:
        assert th.get_num_threads() == 3
    assert fake_blas.calls == [] and not limit.changed


# ---------------------------------------------------------------------------------------------------- exceptions


@pytest.mark.parametrize("exception", [RuntimeError, KeyboardInterrupt])
@pytest.mark.parametrize("setting", ["auto", 2])
def test_an_exception_restores(
    torch_started_with_3: None, fake_blas: FakeBlas, exception: type[BaseException], setting: Any
) -> None:
    with pytest.raises(exception), limited_threads(setting, SMALL):
        assert th.get_num_threads() != 3
        raise exception("stop")
    assert th.get_num_threads() == 3
    assert fake_blas.num_threads == 4


def test_nested_auto_is_a_no_op_inside(torch_started_with_3: None, fake_blas: FakeBlas) -> None:
    """A learn() inside a learn() (a callback training another model) finds the count already changed."""
    with limited_threads("auto", SMALL):
        with limited_threads("auto", SMALL) as inner:
            assert th.get_num_threads() == 1
        assert not inner.changed
        assert th.get_num_threads() == 1
    assert th.get_num_threads() == 3


# ---------------------------------------------------------------------------------------------------- verbose


def test_verbose_says_what_was_done(torch_started_with_3: None, fake_blas: FakeBlas, capsys: pytest.CaptureFixture) -> None:
    with limited_threads("auto", SMALL, owner="ClipPPO", verbose=1):
        pass
    out = capsys.readouterr().out
    assert out.startswith("ClipPPO: threads='auto': torch's intra-op threads 3 -> 1 and BLAS threads (openblas 4) -> 1")
    assert "restored afterwards" in out and "9,155 parameters" in out and "threads=None" in out
    with limited_threads("auto", LARGE, owner="ClipPPO", verbose=1):
        pass
    assert "thread counts left as they are (torch: 3)" in capsys.readouterr().out
    with limited_threads("auto", SMALL, owner="ClipPPO", verbose=0):
        pass
    assert capsys.readouterr().out == ""


def test_real_threadpoolctl_is_restored(torch_started_with_3: None) -> None:
    threadpoolctl = pytest.importorskip("threadpoolctl")
    before = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    with limited_threads(1, SMALL) as limit:
        inside = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
        assert set(inside) <= {1}
    after = [info["num_threads"] for info in threadpoolctl.threadpool_info() if info["user_api"] == "blas"]
    assert after == before
    assert limit.blas_inside == (1 if before else None)
