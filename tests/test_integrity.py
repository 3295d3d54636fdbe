"""A damaged index is refused in one line at load, and ``build --if-changed`` heals it.

Each kind of damage a volume meets (a truncated FAISS file, a lost manifest, a
dangling ``current`` link, bytes flipped inside the vectors, a deleted file) is made
on a copy of one real index, then checked the way the bot's container meets it:
loading fails with one line naming what is wrong, and ``python -m index build
--if-changed``, run as the image runs it, rebuilds from the corpus (reusing none
of the damaged vectors) so that the index loads again.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from index import store
from index.build import build_index, is_up_to_date
from index.store import IndexLoadError, load_index
from tests.conftest import CORPUS, MODEL, run_index

# Two of the seed articles: enough for real passages and vectors, quick to embed again.
ARTICLES = ("ncri-political-prisoners-statement.md", "rajavi-welcomes-resolution.md")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, embedder) -> tuple[Path, Path]:
    """A small corpus and its real index, built once; tests damage copies of it."""
    root = tmp_path_factory.mktemp("integrity")
    corpus = root / "corpus"
    corpus.mkdir()
    for name in ARTICLES:
        shutil.copy(CORPUS / name, corpus / name)
    index_dir = root / "index"
    build_index(corpus, index_dir, MODEL, embedder=embedder, progress=False)
    return corpus, index_dir


@pytest.fixture
def index_copy(pristine, tmp_path) -> Path:
    copy = tmp_path / "index"
    shutil.copytree(pristine[1], copy, symlinks=True)
    return copy


def build_of(index_dir: Path) -> Path:
    return (index_dir / "current").resolve()


def segment_file(index_dir: Path, name: str) -> Path:
    (path,) = build_of(index_dir).glob(f"seg-*/{name}")
    return path


def truncate_vectors(index_dir: Path) -> str:
    path = segment_file(index_dir, "passage-vectors.npy")
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    return "passage-vectors.npy has"


def delete_manifest(index_dir: Path) -> str:
    (index_dir / "current" / "manifest.json").unlink()
    return "manifest.json is missing"


def break_current_link(index_dir: Path) -> str:
    current = index_dir / "current"
    current.unlink()
    current.symlink_to(Path("builds") / "gone")
    return "builds/gone, which does not exist"


def remove_current_link(index_dir: Path) -> str:
    (index_dir / "current").unlink()
    return "current link is missing"


def flip_vector_bytes(index_dir: Path) -> str:
    """400 bytes inverted inside the vectors: the file still has its size and still loads."""
    path = segment_file(index_dir, "passage-vectors.npy")
    data = bytearray(path.read_bytes())
    for i in range(400):
        data[200 + i * 37] ^= 0xFF
    path.write_bytes(bytes(data))
    return "passage-vectors.npy does not match its checksum"


def flip_bytes_keep_times(index_dir: Path) -> str:
    """Bytes changed in place and the file's mtime set back: its ctime still tells."""
    path = segment_file(index_dir, "sentence-vectors.npy")
    before = path.stat()
    with open(path, "r+b") as handle:
        handle.seek(before.st_size // 2)
        byte = handle.read(1)
        handle.seek(before.st_size // 2)
        handle.write(bytes([byte[0] ^ 0x01]))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    return "sentence-vectors.npy does not match its checksum"


def delete_build_file(index_dir: Path) -> str:
    segment_file(index_dir, "sentence-vectors.npy").unlink()
    return "sentence-vectors.npy is missing"


DAMAGE: list[Callable[[Path], str]] = [
    truncate_vectors,
    delete_manifest,
    break_current_link,
    remove_current_link,
    flip_vector_bytes,
    flip_bytes_keep_times,
    delete_build_file,
]


@pytest.mark.parametrize("damage", DAMAGE, ids=[d.__name__ for d in DAMAGE])
def test_damage_is_refused_in_one_line_and_if_changed_rebuilds(pristine, index_copy, damage):
    corpus, _ = pristine
    named = damage(index_copy)

    with pytest.raises(IndexLoadError) as caught:
        load_index(index_copy)
    message = str(caught.value)
    assert named in message and "\n" not in message
    assert message.endswith(store.REBUILD_HINT)

    stats = run_index("stats", "--index", str(index_copy))
    assert stats.returncode == 1
    lines = stats.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stats.stderr, stats.stderr
    assert named in lines[0] and f"build --index {index_copy}" in lines[0]

    assert not is_up_to_date(corpus, index_copy, MODEL)
    build = ["build", "--if-changed", "--corpus", str(corpus), "--index", str(index_copy)]
    healed = run_index(*build, "--no-progress", timeout=300)
    assert healed.returncode == 0, healed.stderr
    assert "nothing to do" not in healed.stdout
    # Every article embedded again: nothing is taken from the damaged build.
    assert f"({len(ARTICLES)} embedded, 0 reused)" in healed.stdout, healed.stdout
    assert load_index(index_copy).manifest.articles == len(ARTICLES)
    assert is_up_to_date(corpus, index_copy, MODEL)


def test_an_intact_index_is_up_to_date(pristine, index_copy):
    corpus, _ = pristine
    assert is_up_to_date(corpus, index_copy, MODEL)
    result = run_index("build", "--if-changed", "--corpus", str(corpus), "--index", str(index_copy))
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout
    assert load_index(index_copy).manifest.articles == len(ARTICLES)


def test_the_manifest_records_every_file_of_its_build(index_copy):
    build = build_of(index_copy)
    manifest = load_index(index_copy).manifest
    on_disk = {
        p.relative_to(build).as_posix()
        for p in build.rglob("*")
        if p.is_file() and p.name not in ("manifest.json", store.STAMP)
    }
    assert set(manifest.checksums) == on_disk
    vectors = segment_file(index_copy, "passage-vectors.npy").relative_to(build).as_posix()
    size, digest = manifest.checksums[vectors]
    assert size == (build / vectors).stat().st_size and len(digest) == 64


def test_a_changed_byte_in_any_file_of_the_build_is_found(pristine, tmp_path):
    """Every file of a build (segments, words, view, vectors) is covered by the checks."""
    corpus, index_dir = pristine
    names = sorted(load_index(index_dir).manifest.checksums)
    assert len(names) > 20
    for n, name in enumerate(names):
        copy = tmp_path / f"copy-{n}"
        shutil.copytree(index_dir, copy, symlinks=True)
        path = build_of(copy) / name
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
        with pytest.raises(store.IndexDamaged, match=f"{name} does not match its checksum"):
            load_index(copy)
        assert not is_up_to_date(corpus, copy, MODEL), name
        shutil.rmtree(copy)


def test_loading_trusts_the_stamp_and_hashes_what_changed(index_copy, monkeypatch):
    """A loaded build is not hashed again while its files' stat is as recorded."""
    load_index(index_copy)  # a copy: hashed once, then stamped
    hashed: list[str] = []
    real = store.damage.__globals__["file_sha256"]

    def counting(path: Path) -> str:
        hashed.append(path.name)
        return real(path)

    monkeypatch.setitem(store.damage.__globals__, "file_sha256", counting)
    load_index(index_copy)
    assert hashed == []
    view = build_of(index_copy) / store.VIEW
    view.write_bytes(view.read_bytes())  # same bytes, new times: hashed, found right
    load_index(index_copy)
    assert hashed == [store.VIEW]
