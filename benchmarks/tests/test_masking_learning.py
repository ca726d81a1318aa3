"""The masked algorithms learn within MaskablePPO's budget (the settings of benchmarks/masking.py)."""

import pytest

from sb3_ppo_variants.registry import MASKABLE_ALGOS as ALGOS


@pytest.mark.slow
@pytest.mark.parametrize("algo", sorted(ALGOS))
@pytest.mark.parametrize(("env_name", "budget"), [("discrete", 10_240), ("multi_discrete", 12_288)])
def test_learns_within_maskable_ppo_budget(algo, env_name, budget):
    """Mean evaluation return >= 90 (of 100) on 3 seeds at the budget where MaskablePPO reaches it on all 3 seeds
    (``python -m benchmarks.masking budget``; settings in benchmarks/masking.py, figures in docs/masking.md)."""
    from benchmarks.masking import learning

    for seed in range(3):
        result = learning(algo, env_name, seed, budget)
        assert result["steps"] == budget
        assert result["mean_return"] >= 90, result
