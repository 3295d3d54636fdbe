"""What the "not found" and highlight models share: a logistic regression over
standardised inputs, kept as a small JSON file that names what it reads.

Both are fitted by ``python -m index train`` (:mod:`index.training.fit`); here
is only how they are read and applied, so a file that is missing or damaged is
one clear error whichever model it is.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, fields
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


def load_model(path: Path, what: str, cls: type[Model]) -> Model:
    """The model dataclass ``cls`` read from the JSON object in ``path``: each field from
    the key of its name, a tuple for a ``tuple[...]`` field, a float for any other.

    A missing or unreadable file, or one ``cls`` refuses, raises
    :class:`ModelFileError` saying which and what to do.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(**{f.name: _field(f.type, data[f.name]) for f in fields(cls)})
    except FileNotFoundError as err:
        raise ModelFileError(
            f"no {what} model at {path}; train one with: python -m index train"
        ) from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ModelFileError(f"{what} model {path} is unreadable ({err})") from err


def save_model(model: Any, path: Path) -> None:
    """``model``'s fields as the JSON object :func:`load_model` reads back."""
    path.write_text(json.dumps(asdict(model), indent=1) + "\n", encoding="utf-8")


def _field(annotation: object, value: Any) -> Any:
    # the annotations are strings here (``from __future__ import annotations``)
    return tuple(value) if str(annotation).startswith("tuple") else float(value)
