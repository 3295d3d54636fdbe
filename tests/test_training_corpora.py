"""The indexes training asks its questions of: built once, kept, built again when their
vectors would not be the embedder's (another backend, or another conversion of it)."""

from __future__ import annotations

import json

from index.store import read_manifest
from index.training.corpora import build_corpora
from tests.conftest import CORPUS


def test_a_training_index_of_other_vectors_is_built_again(tmp_path, embedder):
    corpora = {"seeds": (CORPUS, sorted(CORPUS.glob("*.md")))}
    said: list[str] = []
    index = build_corpora(corpora, tmp_path, embedder, said.append)["seeds"]
    manifest = read_manifest(index)
    assert manifest.embedding == embedder.vectors
    assert embedder.vectors.startswith(embedder.backend)

    build_corpora(corpora, tmp_path, embedder, said.append)
    assert read_manifest(index).build_id == manifest.build_id  # the same vectors: kept

    path = index / "current" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "embedding": "torch-elsewhere"}))
    build_corpora(corpora, tmp_path, embedder, said.append)
    again = read_manifest(index)
    assert again.build_id != manifest.build_id and again.embedding == embedder.vectors
    assert any("another embedding" in line for line in said)
