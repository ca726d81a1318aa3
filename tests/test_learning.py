"""Learning runs (slow): each preset reaches the issue's return threshold (seed 0; the benchmark runs 3 seeds).

Run with ``make test-slow`` or ``pytest -m slow tests/test_learning.py``; figures for three seeds come from
``python benchmarks/learning.py`` and are quoted in the README.
"""

import pytest

from benchmarks.learning import THRESHOLDS, train_and_evaluate
from sb3_ppo_variants.presets import PRESET_PAIRS, get_preset

CASES = [(algo, env_id, dict(overrides), threshold) for (algo, env_id, overrides), threshold in THRESHOLDS.items()]


@pytest.mark.slow
@pytest.mark.parametrize(("algo", "env_id", "overrides", "threshold"), CASES, ids=lambda v: str(v))
def test_preset_reaches_threshold(algo, env_id, overrides, threshold):
    if (algo, env_id) not in PRESET_PAIRS:
        pytest.fail(f"no preset for {algo} on {env_id}")
    result = train_and_evaluate(get_preset(algo, env_id), seed=0, overrides=overrides)
    assert result.eval_mean >= threshold, result
