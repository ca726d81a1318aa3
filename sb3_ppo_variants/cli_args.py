"""``argparse`` types shared by the command-line tools (the demo, the zoo, tuning and ablation commands)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable


def int_argument(minimum: int, expected: str | None = None) -> Callable[[str], int]:
    """``argparse`` type of an int ``>= minimum``; both errors read ``expected <expected>, got '<text>'``.

    :param minimum: The smallest accepted value
    :param expected: What the error says is expected (default ``an int >= <minimum>``)
    """
    wanted = expected if expected is not None else f"an int >= {minimum}"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected {wanted}, got {text!r}")
        return value

    return parse


def timesteps_argument(text: str) -> int:
    """``argparse`` type of a step budget, which may be written as a float (``1e6``): a whole number >= 1."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of steps, got {text!r}") from None
    if not math.isfinite(value) or value < 1 or value != int(value):
        raise argparse.ArgumentTypeError(f"expected a whole number of steps >= 1, got {text!r}")
    return int(value)
