"""argparse ``type=`` converters shared by every ``selfdistill`` subcommand.

Each raises ``argparse.ArgumentTypeError`` with the offending text and what was expected, so the
error names the option (argparse adds it) and the value.
"""

from __future__ import annotations

import argparse
import math

__all__ = ["int_at_least", "finite_float", "positive_float", "unit_interval", "RATE", "FRACTION"]


def int_at_least(low: int, rule: str | None = None):
    """A converter to int >= ``low``; ``rule`` replaces the text of the range message."""

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected an integer >= {low}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: {rule or f'must be an integer >= {low}'}")
        return v

    return parse


def finite_float(text: str) -> float:
    """A finite float."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}") from None
    if not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: must be finite")
    return v


def positive_float(text: str) -> float:
    """A finite float > 0."""
    v = finite_float(text)
    if v <= 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be > 0")
    return v


def unit_interval(what: str, rule: str):
    """A converter to a float in [0, 1]; messages call the value ``what`` and state ``rule``."""

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: expected a number in [0, 1]") from None
        if not 0.0 <= v <= 1.0:  # also rejects nan
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: {rule}")
        return v

    return parse


#: A noise rate in [0, 1].
RATE = unit_interval("rate", "noise rates must be in [0, 1]")
#: Any fraction in [0, 1].
FRACTION = unit_interval("value", "must be in [0, 1]")
