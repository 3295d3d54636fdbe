"""The OpenVINO embedding backends: offline conversion, agreement with torch, the cache.

The packaged model is converted once per session (a fixture) into a temporary cache
folder; the tests then load from that cache, damage it, and check what happens.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from index.embeddings import Embedder, ModelLoadError, _read_entry
from tests.conftest import MODEL, ROOT

TEXTS = [
    "The UN General Assembly adopted its 63rd resolution condemning human rights violations.",
    "Who adopted the resolution?",
    "”",
    "London, 20 Dec",
    "Mrs. Rajavi praised the political prisoners persistence in the face increasing pressures, "
    "and called for the U.N.'s intervention in defense of these prisoners of conscience. " * 4,
]


@pytest.fixture(scope="session")
def backend_cache(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embed-cache")


@pytest.fixture(scope="session")
def int8_embedder(backend_cache) -> Embedder:
    return Embedder(MODEL, "openvino-int8", cache_dir=backend_cache)


def _entries(cache: Path, backend: str) -> list[Path]:
    """The cache entries of ``backend`` (named ``<model>-<backend>-<16 hex digits>``)."""
    return sorted(p for p in cache.iterdir() if re.search(rf"-{backend}-[0-9a-f]{{16}}$", p.name))


def test_int8_vectors_agree_with_torch(int8_embedder, embedder):
    torch_vectors = embedder.encode(TEXTS)
    vectors = int8_embedder.encode(TEXTS, batch_size=2)
    assert vectors.dtype == np.float32 and vectors.shape == torch_vectors.shape
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    cosine = np.sum(vectors * torch_vectors, axis=1)
    assert cosine.min() >= 0.99, cosine
    # The same text gives the same vector whatever batch it is in.
    alone = int8_embedder.encode([TEXTS[1]])[0]
    assert float(alone @ vectors[1]) > 0.9999
    assert int8_embedder.encode_query(TEXTS[1]) @ alone > 0.9999


def test_warm_up_runs_the_model_once_at_every_question_length(int8_embedder, monkeypatch):
    """OpenVINO prepares each input shape when it first meets it: the warm-up meets them
    all (3 to 64 word pieces) before a user's question does, and only once per model."""
    from index.embeddings import QUESTION_TOKENS

    before = int8_embedder.encode(TEXTS[:2])
    runner = int8_embedder._runner
    lengths: list[int] = []
    real = runner.encode

    def counted(model, texts, batch_size, progress):
        lengths.extend(len(model.tokenizer(t)["input_ids"]) for t in texts)
        return real(model, texts, batch_size, progress)

    monkeypatch.setattr(runner, "encode", counted)
    monkeypatch.setattr(int8_embedder, "_warmed", 0)
    int8_embedder.warm_up()
    assert sorted(lengths) == list(range(3, QUESTION_TOKENS + 1))
    lengths.clear()
    int8_embedder.warm_up()  # a reload sharing the model
    assert lengths == []
    np.testing.assert_array_equal(int8_embedder.encode(TEXTS[:2]), before)


def test_conversion_is_cached_and_reused(int8_embedder, backend_cache, caplog):
    (entry,) = _entries(backend_cache, "openvino-int8")
    meta = json.loads((entry / "export.json").read_text())
    assert meta["key"]["backend"] == "openvino-int8" and meta["inputs"]
    # activations in int8 too, checked against the float model on the calibration texts
    assert meta["int8"] == "weights and activations" and meta["min_cosine"] >= 0.99
    before = {p.name: p.stat().st_mtime_ns for p in entry.iterdir()}
    with caplog.at_level(logging.WARNING, logger="index.embeddings"):
        again = Embedder(MODEL, "openvino-int8", cache_dir=backend_cache)
    assert not [r for r in caplog.records if "converting" in r.getMessage()]
    assert {p.name: p.stat().st_mtime_ns for p in entry.iterdir()} == before
    assert not list(backend_cache.glob(".export-*"))
    np.testing.assert_allclose(again.encode(TEXTS[:2]), int8_embedder.encode(TEXTS[:2]))


def test_damaged_cache_is_converted_again(int8_embedder, backend_cache, tmp_path, caplog):
    cache = tmp_path / "cache"
    shutil.copytree(backend_cache, cache)
    (entry,) = _entries(cache, "openvino-int8")
    weights = entry / "model.bin"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a torn write
    with caplog.at_level(logging.WARNING, logger="index.embeddings"):
        rebuilt = Embedder(MODEL, "openvino-int8", cache_dir=cache)
    messages = [r.getMessage() for r in caplog.records]
    assert any("broken" in m for m in messages) and any("converting" in m for m in messages)
    intact = _entries(backend_cache, "openvino-int8")[0] / "model.bin"
    assert weights.stat().st_size == intact.stat().st_size
    np.testing.assert_allclose(
        rebuilt.encode(TEXTS[:2]), int8_embedder.encode(TEXTS[:2]), atol=1e-6
    )

    # An entry without its metadata (written last) is incomplete: removed, to be converted.
    (entry / "export.json").unlink()
    assert _read_entry(entry) is None and not entry.exists()


def test_int8_activations_that_disagree_fall_back_to_int8_weights(
    tmp_path, embedder, monkeypatch, caplog
):
    """Where int8 activations would move a calibration text's vector below the bar
    (here: a bar no quantized model meets), the conversion keeps activations in float."""
    import index.embeddings

    monkeypatch.setattr(index.embeddings, "INT8_MIN_COSINE", 1.01)
    with caplog.at_level(logging.WARNING, logger="index.embeddings"):
        fallback = Embedder(MODEL, "openvino-int8", cache_dir=tmp_path)
    assert any("keeping activations in float" in r.getMessage() for r in caplog.records)
    (entry,) = _entries(tmp_path, "openvino-int8")
    meta = json.loads((entry / "export.json").read_text())
    assert meta["int8"] == "weights" and 0.99 <= meta["min_cosine_activations"] < 1.01
    cosine = np.sum(fallback.encode(TEXTS) * embedder.encode(TEXTS), axis=1)
    assert cosine.min() >= 0.99, cosine


def test_a_new_conversion_removes_the_old_ones_no_install_uses(backend_cache, tmp_path, caplog):
    """Made beside a conversion: removed, one of the same model and backend converted
    over 30 days ago and one whose model folder is gone; kept, a recent one whose model
    is there, another backend's, and whatever is not a whole entry."""
    (session_entry,) = _entries(backend_cache, "openvino-int8")
    slug = session_entry.name[: -len("-openvino-int8-") - 16]
    cache = tmp_path / "cache"
    month_ago = time.time() - 40 * 86400

    def entry(name: str, model: Path, *, old: bool, whole: bool = True) -> Path:
        folder = cache / name
        folder.mkdir(parents=True)
        (folder / "model.bin").write_bytes(b"\0" * 1000)
        if whole:
            meta = folder / "export.json"
            meta.write_text(json.dumps({"key": {"model": {"path": str(model)}}}))
            if old:
                os.utime(meta, (month_ago, month_ago))
        return folder

    here, gone = tmp_path, tmp_path / "uninstalled"
    removed = [
        entry(f"{slug}-openvino-{'0' * 16}", here, old=True),
        entry(f"{slug}-openvino-{'1' * 16}", gone, old=False),
    ]
    kept = [
        entry(f"{slug}-openvino-{'2' * 16}", here, old=False),
        entry(f"{slug}-openvino-int8-{'3' * 16}", here, old=True),
        entry(f"{slug}-openvino-not-an-entry", gone, old=True),
        entry(f"{slug}-openvino-{'4' * 16}", gone, old=True, whole=False),
    ]
    with caplog.at_level(logging.WARNING, logger="index.embeddings"):
        Embedder(MODEL, "openvino", cache_dir=cache)
    assert not any(p.exists() for p in removed)
    assert all(p.exists() for p in kept)
    (new,) = set(_entries(cache, "openvino")) - set(kept)
    assert (new / "model.xml").exists()
    assert any("removed 2 old conversion(s)" in r.getMessage() for r in caplog.records)


def test_killed_conversion_leaves_no_entry(backend_cache, tmp_path):
    """A conversion killed midway leaves only a temporary folder, never a cache entry."""
    cache = tmp_path / "cache"
    script = (
        "import os, sys\n"
        "import index.embeddings as e\n"
        "real = e._convert\n"
        "def killed(*a, **k):\n"
        "    real(*a, **k)\n"
        "    os._exit(9)  # killed after the files are written, before they are in place\n"
        "e._convert = killed\n"
        f"e.Embedder({MODEL!r}, 'openvino', cache_dir=e.Path(sys.argv[1]))\n"
    )
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(cache)], cwd=ROOT, env=env, timeout=300
    )
    assert done.returncode == 9
    (temp,) = cache.iterdir()
    assert temp.name.startswith(".export-") and (temp / "model.xml").exists()
    assert not _entries(cache, "openvino")  # so the next load converts again (as above)


def test_unknown_backend_is_one_clear_line():
    with pytest.raises(ModelLoadError) as err:
        Embedder(MODEL, "tensorrt")
    message = str(err.value)
    assert "\n" not in message
    assert "'tensorrt'" in message and "torch, openvino, openvino-int8" in message


def test_backend_comes_from_the_setting(tmp_path):
    """QUOTEBOT_EMBED_BACKEND reaches the CLI: a wrong one is one error line, no traceback."""
    env = {**os.environ, "QUOTEBOT_EMBED_BACKEND": "onnx-fp8", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "index", "build", "--corpus", str(ROOT / "corpus"),
         "--index", str(tmp_path / "index"), "--no-progress"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if "onnx-fp8" in line]
    assert len(lines) == 1 and lines[0].startswith("error: unknown embedding backend")
