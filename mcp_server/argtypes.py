"""Value types for command-line options: whole numbers and finite positive numbers.

Each type turns the option's text into a number or raises
``argparse.ArgumentTypeError`` with a message that names the value and the
accepted range, so every command rejects bad numbers the same way.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

__all__ = ["MAX_WHOLE_NUMBER", "positive_number", "whole_number"]


MAX_WHOLE_NUMBER = 2**63 - 1
"""Largest whole number an option accepts: SQLite's largest INTEGER, since limits and positions reach SQL."""


def whole_number(minimum: int, label: str, maximum: int = MAX_WHOLE_NUMBER) -> Callable[[str], int]:
    """Return an argparse type that accepts whole numbers from ``minimum`` to ``maximum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {label} {text!r}; give a whole number of at least {minimum}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"invalid {label} {value}; give a whole number of at least {minimum}")
        if value > maximum:
            raise argparse.ArgumentTypeError(f"invalid {label} {value}; give a whole number of at most {maximum}")
        return value

    return parse


def positive_number(label: str) -> Callable[[str], float]:
    """Return an argparse type that accepts finite numbers greater than 0, with or without a fraction."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {label} {text!r}; give a number greater than 0") from None
        if not math.isfinite(value) or value <= 0:
            raise argparse.ArgumentTypeError(f"invalid {label} {text!r}; give a finite number greater than 0")
        return value

    return parse
