"""The ``python -m index`` command line, run as a user runs it."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import DEV_QA, MODEL, ROOT, needs_shared
from tests.conftest import run_index as run


@pytest.mark.parametrize("command", [[], ["build"], ["search"], ["stats"], ["eval"], ["verify"]])
def test_every_command_has_help(command):
    result = run(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert "Usage" in result.stdout


def test_search_json_one_object_per_question_from_stdin(seed_index_dir):
    result = run(
        "search",
        "--json",
        "--k",
        "2",
        index_dir=seed_index_dir,
        stdin="how many votes did the 63rd resolution get?\n\nWho painted the Mona Lisa?\n",
    )
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["found"] for line in lines] == [True, False]
    first = lines[0]
    assert first["question"] == "how many votes did the 63rd resolution get?"
    assert "85 votes" in first["answers"][0]["quote"]
    assert first["answers"][0]["sources"][0]["publisher"] == "Iran Focus"
    assert len(first["answers"]) <= 2


def test_search_plain_text_prints_quote_and_source(seed_index_dir):
    result = run("search", "What do the people of Iran want?", index_dir=seed_index_dir)
    assert result.returncode == 0, result.stderr
    assert "regime change" in result.stdout
    assert "— MEK Iran: Executions Continue" in result.stdout


def test_verify_hashes_every_file(seed_index_dir, tmp_path):
    result = run("verify", "--index", str(seed_index_dir))
    assert result.returncode == 0, result.stderr
    assert "is intact" in result.stdout and "files" in result.stdout
    copy = tmp_path / "index"
    shutil.copytree(seed_index_dir, copy, symlinks=True)
    (vectors,) = (copy / "current").resolve().glob("seg-*/sentence-vectors.npy")
    data = bytearray(vectors.read_bytes())
    data[-1] ^= 0x01
    vectors.write_bytes(bytes(data))
    result = run("verify", "--index", str(copy))
    assert result.returncode == 1
    assert "sentence-vectors.npy does not match its checksum" in result.stderr


def test_stats_and_missing_index_message(seed_index_dir, tmp_path):
    result = run("stats", index_dir=seed_index_dir)
    assert result.returncode == 0
    assert "articles      5" in result.stdout
    assert MODEL in result.stdout
    missing = run("search", "anything", index_dir=tmp_path / "none")
    assert missing.returncode == 1
    assert "no index found" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_eval_reports_quality_on_the_dev_questions(seed_index_dir):
    result = run("eval", str(needs_shared(DEV_QA)), "--json", index_dir=seed_index_dir)
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout)
    # The shipped models learned from these 24 questions among some 15,000 others; the
    # held-out figures (README, "What it scores") are what says how well it generalises.
    assert scores["hit@1"] >= 0.90
    assert scores["hit@3"] >= 0.95
    assert scores["unanswerable_not_found"] == scores["unanswerable"]
    assert scores["answerable_not_found"] <= 1


def test_strict_build_fails_on_a_bad_file(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "ok.txt").write_text("A title\n\nSome article text about harbours.", encoding="utf-8")
    (corpus / "bad.txt").write_bytes(b"\xff\xfe\x00bad")
    args = ["build", "--corpus", str(corpus), "--index", str(tmp_path / "i"), "--no-progress"]
    lenient = run(*args)
    assert lenient.returncode == 0, lenient.stderr
    assert "skipped bad.txt: binary file" in lenient.stderr
    assert (lenient.stdout + lenient.stderr).count("bad.txt") == 1  # reported once, not twice
    assert "1 skipped (listed above)" in lenient.stdout
    strict = run(*args, "--strict")
    assert strict.returncode == 1
    assert "bad.txt" in strict.stderr


def test_building_an_empty_corpus_is_one_clear_error(tmp_path):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    result = run("build", "--corpus", str(corpus), "--index", str(tmp_path / "i"), "--no-progress")
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: no article files in {corpus}")
    assert "left as it was" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "i" / "current").exists()


def test_building_from_a_jsonl_archive(tmp_path):
    archive = tmp_path / "export.jsonl"
    archive.write_text(
        json.dumps({"title": "Harbour", "text": "The harbour reopened on Monday."}) + "\n{broken\n"
    )
    args = ["build", "--corpus", str(archive), "--index", str(tmp_path / "i"), "--no-progress"]
    result = run(*args)
    assert result.returncode == 0, result.stderr
    assert "skipped export.jsonl line 2: not JSON" in result.stderr
    assert "Indexed 1 article(s)" in result.stdout
    assert "up to date" in run(*args, "--if-changed").stdout


@pytest.mark.parametrize(
    ("command", "variables"),
    [
        ("build", ["QUOTEBOT_CORPUS_DIR", "QUOTEBOT_INDEX_DIR", "QUOTEBOT_MODEL"]),
        ("search", ["QUOTEBOT_INDEX_DIR", "QUOTEBOT_MODEL"]),
        ("stats", ["QUOTEBOT_INDEX_DIR"]),
    ],
)
def test_help_names_the_environment_variables(command, variables):
    result = run(command, "--help")
    assert result.returncode == 0, result.stderr
    for name in variables:
        assert f"env var: {name}" in result.stdout
    assert "default: (var/index)" in result.stdout


def test_search_on_a_terminal_says_what_it_waits_for(seed_index_dir):
    """Without a question, on a terminal, search prompts instead of waiting silently."""
    master, slave = pty.openpty()
    env = {**os.environ, "QUOTEBOT_MODEL": MODEL, "QUOTEBOT_INDEX_DIR": str(seed_index_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "index", "search"],
        cwd=ROOT,
        env=env,
        stdin=slave,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(slave)
    try:
        # Typed ahead: the terminal holds the line, then Ctrl-D ends the input.
        os.write(master, b"What do the people of Iran want?\n\x04")
        out, err = proc.communicate(timeout=180)
    finally:
        os.close(master)
    assert proc.returncode == 0, err
    assert "Type a question and press Enter" in err
    assert "regime change" in out


def test_rebuild_hint_names_the_command_as_it_was_run(tmp_path):
    missing = tmp_path / "none"
    result = run("stats", "--index", str(missing))
    assert result.returncode == 1
    exe = Path(sys.executable)
    if shutil.which(exe.name) == str(exe):
        program = exe.name
    elif exe.is_relative_to(ROOT):
        program = str(exe.relative_to(ROOT))
    else:
        program = str(exe)
    assert f"build one with: {program} -m index build --index {missing}" in result.stderr


def test_search_json_lines_all_have_the_same_keys(seed_index_dir):
    from index.engine import MAX_QUESTION_CHARS

    too_long = "why " * (MAX_QUESTION_CHARS // 4 + 1)
    result = run(
        "search",
        "--json",
        index_dir=seed_index_dir,
        stdin=f"how many votes did the 63rd resolution get?\n{too_long}\n",
    )
    assert result.returncode == 0, result.stderr
    answered, refused = [json.loads(line) for line in result.stdout.splitlines()]
    assert list(answered) == list(refused) == ["question", "found", "answers", "error"]
    assert answered["error"] is None and answered["found"]
    assert "too long" in refused["error"]
    assert (refused["found"], refused["answers"]) == (False, [])


def test_needs_shared_skips_on_a_clone_and_fails_on_ci(tmp_path, monkeypatch):
    absent = tmp_path / "shared" / "eval" / "dev_qa.jsonl"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="shared eval data"):
        needs_shared(absent)
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must run every test"):
        needs_shared(absent)
    assert needs_shared(ROOT / "README.md") == ROOT / "README.md"


def test_make_run_builds_the_index_only_if_the_corpus_changed():
    """`make run` must not spend seconds rebuilding an index that is up to date."""
    dry = subprocess.run(
        ["make", "-n", "run"], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True
    )
    builds = [line for line in dry.stdout.splitlines() if "-m index build" in line]
    assert builds and all("--if-changed" in line for line in builds), dry.stdout
