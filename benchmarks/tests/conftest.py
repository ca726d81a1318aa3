"""The benchmark scripts' tests: one torch thread (2 shared cores), as the package's tests."""

import pytest
import torch as th


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    previous = th.get_num_threads()
    th.set_num_threads(1)
    yield
    th.set_num_threads(previous)
