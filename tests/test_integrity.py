"""A damaged index is refused in one line at load, and ``build --if-changed`` heals it.

Each kind of damage a volume meets (a truncated FAISS file, a lost manifest, a
dangling ``current`` link, bytes flipped inside the vectors, a deleted file) is made
on a copy of one real index, then checked the way the bot's container meets it:
loading fails with one line naming what is wrong, and ``python -m index build
--if-changed``, run as the image runs it, rebuilds from the corpus (reusing none
of the damaged vectors) so that the index loads again.
"""

from __future__ import annotations

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


def truncate_faiss(index_dir: Path) -> str:
    path = build_of(index_dir) / "passages.faiss"
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size // 2)
    return "passages.faiss has"


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


def flip_faiss_bytes(index_dir: Path) -> str:
    """400 bytes inverted inside the vectors: the file still has its size and still loads."""
    path = build_of(index_dir) / "passages.faiss"
    data = bytearray(path.read_bytes())
    for i in range(400):
        data[200 + i * 37] ^= 0xFF
    path.write_bytes(bytes(data))
    return "passages.faiss does not match its checksum"


def delete_build_file(index_dir: Path) -> str:
    (build_of(index_dir) / "sentences.npy").unlink()
    return "sentences.npy is missing"


DAMAGE: list[Callable[[Path], str]] = [
    truncate_faiss,
    delete_manifest,
    break_current_link,
    remove_current_link,
    flip_faiss_bytes,
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
        if p.is_file() and p.name != "manifest.json"
    }
    assert set(manifest.checksums) == on_disk
    size, digest = manifest.checksums["passages.faiss"]
    assert size == (build / "passages.faiss").stat().st_size and len(digest) == 64
