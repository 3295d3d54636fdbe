"""Shared fixtures: one real embedding model and one real index of the seed corpus per run.

Loading the model is the slow part (seconds), so it is loaded once and shared;
every index a test builds is still built for real, with FAISS and BM25 on disk.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "corpus"
SHARED = ROOT.parent / "shared"  # the project's eval data and seeds, beside the checkout
DEV_QA = SHARED / "eval" / "dev_qa.jsonl"
MODEL = "sentence-transformers/all-MiniLM-L6-v2"

from tests.conftest_telegram import *  # noqa: E402, F403  (fixtures for the fake Telegram server)


def run_index(
    *args: str, index_dir: Path | None = None, stdin: str | None = None, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    """``python -m index ...`` as a user (or the Docker image) runs it, output captured."""
    env = {**os.environ, "QUOTEBOT_MODEL": MODEL}
    if index_dir is not None:
        env["QUOTEBOT_INDEX_DIR"] = str(index_dir)
    return subprocess.run(
        [sys.executable, "-m", "index", *args],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def embedder():
    from index.embeddings import Embedder

    return Embedder(MODEL)


@pytest.fixture(scope="session")
def seed_index_dir(tmp_path_factory, embedder) -> Path:
    from index.build import build_index

    index_dir = tmp_path_factory.mktemp("seed") / "index"
    build_index(CORPUS, index_dir, MODEL, embedder=embedder, progress=False)
    return index_dir


@pytest.fixture(scope="session")
def quote_index(seed_index_dir, embedder):
    from index import QuoteIndex

    return QuoteIndex(seed_index_dir, MODEL, embedder=embedder)


def needs_shared(path: Path) -> Path:
    """``path`` under ``../shared``, for a test that needs it.

    A clone without ``../shared`` (the eval data kept beside the checkout) skips the
    test and says why; CI always has it, so there (``CI`` set) its absence fails the
    test instead of hiding it.
    """
    if path.exists():
        return path
    message = f"needs {path}: the shared eval data beside the checkout ({SHARED}) is not there"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(f"{message}, and CI must run every test", pytrace=False)
    pytest.skip(message)


def write_article(folder: Path, name: str, body: str, **meta: str) -> Path:
    """Write a corpus Markdown file with front matter, as a user would."""
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    front = yaml.safe_dump(meta, allow_unicode=True, sort_keys=False) if meta else ""
    path = folder / name
    path.write_text(f"---\n{front}---\n\n{body.strip()}\n", encoding="utf-8")
    return path


def pytest_terminal_summary(terminalreporter) -> None:
    """Print what the fault, crash and fuzz tests measured (tests/figures.py)."""
    from tests.figures import FIGURES

    if FIGURES:
        terminalreporter.section("quotebot figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
