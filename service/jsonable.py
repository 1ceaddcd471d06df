"""JSON-ready values: the one conversion of NumPy values and non-finite floats for storage and output."""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def to_jsonable(value: Any) -> Any:
    """``value`` with NumPy arrays and scalars made Python, and every non-finite float ``None``.

    Recursive through dicts (keys made ``str``), lists and tuples. ``json.dumps`` would write ``NaN`` or
    ``Infinity``, which are not JSON: strict parsers (browsers, ``jq``, PostgreSQL's ``jsonb``) reject the
    whole document, so a missing value is ``null``.
    """
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
