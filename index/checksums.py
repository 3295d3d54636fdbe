"""Checksums of the files a folder was written with: are they still those files?

The index's builds and the converted-model cache both record ``[size, sha256]``
per file when they write a folder and check it before use: sizes first (a
truncated or deleted file costs a ``stat``), then the streamed hashes (a flipped byte).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from pathlib import Path
from typing import Any


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, streamed (a file can be gigabytes); OSError if unreadable."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def checksums_of(folder: Path, skip: Collection[str] = ()) -> dict[str, list[Any]]:
    """``[size, sha256]`` of each file under ``folder``, by relative path, but those in ``skip``."""
    return {
        path.relative_to(folder).as_posix(): [path.stat().st_size, file_sha256(path)]
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name not in skip
    }


def damage(folder: Path, checksums: dict[str, list[Any]]) -> str | None:
    """What differs from ``checksums`` under ``folder``, in a few words; None when nothing does."""
    for name, (size, _) in checksums.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if path.stat().st_size != size:
            return f"{name} has {path.stat().st_size} bytes, {size} were written"
    for name, (_, digest) in checksums.items():
        try:
            if file_sha256(folder / name) != digest:
                return f"{name} does not match its checksum"
        except OSError as err:
            return f"{name} cannot be read ({err.strerror or err})"
    return None
