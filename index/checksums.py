"""Checksums of the files a folder was written with: are they still those files?

The index's builds and the converted-model cache both record ``[size, sha256]``
per file when they write a folder and check it before use: sizes first (a
truncated or deleted file costs a ``stat``), then the streamed hashes (a flipped byte).

Hashing gigabytes at every load would cost seconds, so a folder may also keep a
*stamp*: each file's size, inode, modification and change times (nanoseconds) as
they were when its hashes were last found right. A file whose ``stat`` still
matches its stamp has not been written to since (any write, rename over, copy
or ``touch`` moves its change time, which no program can set back), so it is
not hashed again; every other file is. A stamp is only trusted for files whose
change time lies well before the stamp was taken (``RACY_NS``): a write in the
same tick of the file system's clock could otherwise leave the times as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

# File systems stamp times from a clock that ticks every few milliseconds (jiffies);
# a file changed less than this before its stamp was taken is hashed anyway.
RACY_NS = 50_000_000


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


def stat_key(path: Path) -> list[int]:
    """What a stamp records of a file: size, device, inode, modification and change time."""
    st = path.stat()
    return [st.st_size, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_ctime_ns]


def damage(
    folder: Path,
    checksums: dict[str, list[Any]],
    stamp: dict[str, Any] | None = None,
    hashed: list[str] | None = None,
    observed: dict[str, list[int]] | None = None,
) -> str | None:
    """What differs from ``checksums`` under ``folder``, in a few words; None when nothing does.

    Files whose ``stat`` matches ``stamp`` (see :func:`read_stamp`) are not hashed;
    the names of those that were are added to ``hashed``, and every file's stat, as
    seen before hashing, to ``observed`` (for :func:`write_stamp`).
    """
    trusted: dict[str, list[int]] = {}
    if stamp:
        limit = int(stamp.get("taken_ns", 0)) - RACY_NS
        trusted = {name: key for name, key in stamp.get("files", {}).items() if key[4] <= limit}
    unchecked: list[str] = []
    for name, (size, _) in checksums.items():
        path = folder / name
        try:
            key = stat_key(path)
        except OSError:
            return f"{name} is missing"
        if not path.is_file():
            return f"{name} is missing"
        if key[0] != size:
            return f"{name} has {key[0]} bytes, {size} were written"
        if trusted.get(name) != key:
            unchecked.append(name)
        if observed is not None:
            observed[name] = key
    for name in unchecked:
        if hashed is not None:
            hashed.append(name)
        try:
            if file_sha256(folder / name) != checksums[name][1]:
                return f"{name} does not match its checksum"
        except OSError as err:
            return f"{name} cannot be read ({err.strerror or err})"
    return None


def read_stamp(path: Path) -> dict[str, Any]:
    """A stamp written by :func:`write_stamp`; empty if there is none or it is unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) and isinstance(data.get("files"), dict) else {}


def write_stamp(
    path: Path,
    folder: Path,
    names: Collection[str],
    seen: dict[str, list[int]] | None = None,
) -> bool:
    """Record the ``stat`` of ``names`` under ``folder``, just checked or written; False if
    it cannot be written (a read-only volume: the next load hashes again, nothing worse).

    ``seen``: the stats taken before the files were hashed; a file changed since is
    not stamped. Waits until the newest change time is ``RACY_NS`` old, so that every
    entry is trusted.
    """
    try:
        keys = seen if seen is not None else {name: stat_key(folder / name) for name in names}
        newest = max((key[4] for key in keys.values()), default=0)
        wait = (newest + RACY_NS - time.time_ns()) / 1e9
        if wait > 0:
            time.sleep(min(wait, 1.0))
        taken = time.time_ns()
        if any(stat_key(folder / name) != key for name, key in keys.items()):
            return False  # something wrote meanwhile: leave it to the next check
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"taken_ns": taken, "files": keys}), encoding="utf-8")
        os.replace(tmp, path)
        return True
    except OSError:
        return False
