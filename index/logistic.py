"""What the "not found" and highlight models share: a logistic regression over
standardised inputs, kept as a small JSON file that names what it reads.

Both are fitted by ``python -m index train`` (:mod:`index.training.fit`); here
is only how they are read and applied, so a file that is missing or damaged is
one clear error whichever model it is.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from index.ranker import ModelFileError

Model = TypeVar("Model")


def probability(
    x: np.ndarray,
    mean: Sequence[float],
    scale: Sequence[float],
    coef: Sequence[float],
    intercept: float,
) -> np.ndarray:
    """The logistic function of each standardised row of ``x`` (none for no rows)."""
    if not len(x):
        return np.zeros(0)
    z = ((x - np.asarray(mean)) / np.asarray(scale)) @ np.asarray(coef)
    return 1.0 / (1.0 + np.exp(-(z + intercept)))


def load_model(path: Path, what: str, make: Callable[[dict[str, Any]], Model]) -> Model:
    """``make`` applied to the JSON object in ``path``; a missing or unreadable file, or one
    ``make`` cannot use, raises :class:`ModelFileError` saying which and what to do."""
    try:
        return make(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as err:
        raise ModelFileError(
            f"no {what} model at {path}; train one with: python -m index train"
        ) from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelFileError(f"{what} model {path} is unreadable ({err})") from err
