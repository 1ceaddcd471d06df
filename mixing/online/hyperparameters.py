"""Declarative hyperparameter specs: defaults, types and ranges, checked in one place.

Sessions are created from JSON, so values arrive as plain ``int``/``float``/``bool``. A spec coerces
integral floats to ``int`` (JSON writers sometimes emit ``10.0``), refuses ``bool`` where a number is
expected (``True`` is an ``int`` in Python but never what a user meant) and refuses unknown keys, so a typo
like ``"etta"`` fails loudly instead of silently running with the default.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mixing.online.errors import HyperparameterError

Hyperparameters = dict[str, Any]

#: Largest exponentiated-gradient step size. The papers use O(1); with losses capped by the service
#: (|loss| <= 1e12) a step of ``eta * loss`` then stays far inside float range.
MAX_ETA = 1e4
#: Step counts are stored as 32-bit integers.
MAX_STEPS = 2**31 - 1
MAX_SEED = 2**63 - 1


@dataclass(frozen=True)
class Param:
    """One hyperparameter: its type (``int``, ``float`` or ``bool``), default and allowed interval."""

    kind: type
    default: Any
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    exclusive_maximum: bool = False
    doc: str = ""

    def coerce(self, name: str, value: Any) -> Any:
        """``value`` converted to this parameter's type, or :class:`HyperparameterError` naming ``name``."""
        if self.kind is bool:
            if not isinstance(value, bool):
                raise HyperparameterError(name, f"must be true or false, got {value!r}")
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise HyperparameterError(name, f"must be a number, got {value!r}")
        if not math.isfinite(value):
            raise HyperparameterError(name, f"must be finite, got {value!r}")
        if self.kind is int:
            if value != int(value):
                raise HyperparameterError(name, f"must be an integer, got {value!r}")
            value = int(value)
        else:
            value = float(value)
        self._check_range(name, value)
        return value

    def _check_range(self, name: str, value: float) -> None:
        if self.minimum is not None and (
            value < self.minimum or (self.exclusive_minimum and value == self.minimum)
        ):
            relation = ">" if self.exclusive_minimum else ">="
            raise HyperparameterError(name, f"must be {relation} {self.minimum:g}, got {value!r}")
        if self.maximum is not None and (
            value > self.maximum or (self.exclusive_maximum and value == self.maximum)
        ):
            relation = "<" if self.exclusive_maximum else "<="
            raise HyperparameterError(name, f"must be {relation} {self.maximum:g}, got {value!r}")


def merge(specs: Mapping[str, Param], values: Mapping[str, Any] | None) -> Hyperparameters:
    """Defaults overridden by ``values``; unknown keys and bad values raise :class:`HyperparameterError`."""
    values = dict(values or {})
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise HyperparameterError(unknown[0], f"unknown hyperparameter (allowed: {', '.join(sorted(specs))})")
    return {
        name: spec.coerce(name, values[name]) if name in values else spec.default
        for name, spec in specs.items()
    }
