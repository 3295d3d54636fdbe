"""Figures the fault, crash and fuzz tests measured, printed at the end of the pytest run.

A test calls :func:`report` with one line; the line is printed at once (seen with
``pytest -s``) and again in a "quotebot figures" section of pytest's terminal summary
(see ``pytest_terminal_summary`` in ``tests/conftest.py``), so a plain ``make test``
shows them too.
"""

from __future__ import annotations

FIGURES: list[str] = []


def report(line: str) -> None:
    FIGURES.append(line)
    print(line, flush=True)
