"""Small array helpers for the store: ranges, and .npy files written a piece at a time."""

from __future__ import annotations

import ctypes
import errno
import os
import sys
import time
from functools import lru_cache
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import numpy as np

_ALIGN = 64  # numpy pads .npy headers so the data starts at a multiple of this
_PAGE = 4096
_TOUCH_BLOCK = 4 << 20  # small: a cold disk must not overrun the time budget by much
_MADV_POPULATE_READ = 22  # Linux 5.14+: map a range's pages in one call (asm-generic/mman-common.h)


def concat_ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """``np.concatenate([np.arange(a, b) for a, b in zip(starts, ends)])``, without the loop."""
    starts = np.asarray(starts, dtype=np.int64)
    counts = np.asarray(ends, dtype=np.int64) - starts
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    shift = starts - (np.cumsum(counts) - counts)
    return np.repeat(shift, counts) + np.arange(total, dtype=np.int64)


def ranks(scores: np.ndarray) -> np.ndarray:
    """Each score's place when sorted best first (0 for the best; ties in the order given)."""
    order = np.argsort(-scores, kind="stable")
    placed = np.empty(len(scores))
    placed[order] = np.arange(len(scores))
    return placed


def dot_rows(rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """``rows @ vector`` in this thread only.

    NumPy's ``@`` hands a few thousand rows to BLAS, which splits them over its
    threads: on a busy 2-core machine, waking those threads cost 8 ms per question
    (measured on the SQuAD set: 13.7 ms per answer with 2 BLAS threads, 5.2 ms with 1).
    ``einsum`` does the same sum in one thread, in microseconds.
    """
    return np.einsum("ij,j->i", rows, vector)


def as_float32(block: np.ndarray) -> np.ndarray:
    """``block`` as float32 (itself when it is float32 already; stored vectors are often float16).

    NumPy casts float16 one value at a time: for the ~1,000 sentence vectors a
    question's candidates hold, 0.48 ms, a quarter of the work past the
    embedding. torch casts the same block with F16C instructions in 0.08 ms. It
    is cut into pieces below torch's grain size, so no pool thread is woken (see
    :func:`dot_rows` for what that costs on a busy machine). The values are the
    same either way: float16 to float32 is exact.
    """
    if block.dtype != np.float16 or block.size < _TORCH_CAST_MIN:
        return np.asarray(block, dtype=np.float32)
    torch = _torch()
    out = np.empty(block.shape, dtype=np.float32)
    if torch is None:
        out[...] = block
        return out
    source = torch.from_numpy(np.ascontiguousarray(block)).view(-1)
    target = torch.from_numpy(out).view(-1)
    for start in range(0, source.numel(), _TORCH_CAST_PIECE):
        target[start : start + _TORCH_CAST_PIECE].copy_(source[start : start + _TORCH_CAST_PIECE])
    return out


_TORCH_CAST_MIN = 8192  # values; below this NumPy's cast is as quick as a call into torch
_TORCH_CAST_PIECE = 16384  # values; under ATen's grain size (32768): one thread per piece


@lru_cache(maxsize=1)
def _torch() -> ModuleType | None:
    try:
        import torch
    except ImportError:  # the cast falls back to NumPy's
        return None
    return torch


class NpyAppender:
    """A ``.npy`` file written row block by row block, its shape set when it is closed.

    The header is written first with room to spare and rewritten in place at the
    end, so rows go straight to disk: a million vectors never sit in memory.
    ``np.load(path, mmap_mode="r")`` reads the result like any ``.npy``.
    """

    def __init__(self, path: Path, dtype: np.dtype | str, row_shape: tuple[int, ...] = ()) -> None:
        self.path = path
        self.dtype = np.dtype(dtype)
        self.row_shape = tuple(row_shape)
        self.rows = 0
        self._handle = open(path, "wb")  # noqa: SIM115 (closed in close())
        self._handle.write(self._header(0))

    def append(self, block: np.ndarray) -> None:
        block = np.ascontiguousarray(block, dtype=self.dtype)
        if block.shape[1:] != self.row_shape:
            raise ValueError(
                f"{self.path.name}: rows of shape {block.shape[1:]}, not {self.row_shape}"
            )
        self._handle.write(block.tobytes())
        self.rows += len(block)

    def close(self) -> None:
        if self._handle.closed:
            return
        self._handle.seek(0)
        self._handle.write(self._header(self.rows))
        self._handle.close()

    def __enter__(self) -> NpyAppender:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _text(self, rows: int) -> str:
        shape = (rows, *self.row_shape)
        descr = np.lib.format.dtype_to_descr(self.dtype)
        return repr({"descr": descr, "fortran_order": False, "shape": shape})

    def _header(self, rows: int) -> bytes:
        # As long as the longest row count needs, rounded up as numpy aligns headers.
        longest = len(self._text(10**18)) + 1
        room = -(-(10 + longest) // _ALIGN) * _ALIGN - 10
        if room > 0xFFFF:
            raise ValueError(f"{self.path.name}: header too long")
        body = (self._text(rows).ljust(room - 1) + "\n").encode("latin1")
        return b"\x93NUMPY\x01\x00" + len(body).to_bytes(2, "little") + body


def mapped(path: Path) -> np.ndarray:
    """A ``.npy`` file memory-mapped read-only, as a plain array (``np.memmap``'s own
    indexing costs microseconds a call; the mapping lives as long as the array)."""
    if np.prod(npy_shape(path)) == 0:
        return np.load(path)  # nothing to map (and an empty mapping is an error)
    prefetch(path)
    return np.load(path, mmap_mode="r").view(np.ndarray)


def touch_pages(arrays: list[np.ndarray], budget: float) -> list[np.ndarray]:
    """Map every memory page of ``arrays`` into the process, in order, for up to ``budget``
    seconds; returns the arrays (or their remaining parts) left untouched.

    A process that maps a file still takes a page fault the first time it reads each
    page, even when the page cache holds it: thousands of them for the first
    question's nearest-neighbour search. Mapping the pages beforehand moves that
    cost to the load. The kernel does it a block at a time where it can
    (:func:`_populate`); elsewhere one byte of each page is read.
    """
    deadline = time.perf_counter() + budget
    left: list[np.ndarray] = []
    for n, array in enumerate(arrays):
        flat = array.reshape(-1).view(np.uint8) if array.size else array
        for start in range(0, len(flat), _TOUCH_BLOCK):
            if time.perf_counter() > deadline:
                left.append(flat[start:])
                left.extend(arrays[n + 1 :])
                return left
            block = flat[start : start + _TOUCH_BLOCK]
            if not _populate(block):
                int(block[::_PAGE].max(initial=0))
    return left


def _libc_madvise() -> Any:
    """libc's ``madvise`` (Linux only), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).madvise
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_madvise = _libc_madvise()


def _populate(block: np.ndarray) -> bool:
    """Have the kernel map ``block``'s pages (``madvise(MADV_POPULATE_READ)``); False where
    it cannot, and the caller reads them instead.

    Measured at a million passages (11.8 GB mapped, page cache warm): 0.86-0.94 s for
    all of it against 1.1 s read a page at a time; and ctypes lets go of the GIL
    for the call, so the page-in thread no longer holds up the first questions'
    Python (their first answer, 12-14 ms against 11.5-21 ms, README).
    """
    global _madvise
    if _madvise is None or not block.flags.c_contiguous or not block.nbytes:
        return False
    start = block.ctypes.data
    aligned = start - start % _PAGE
    if _madvise(aligned, start + block.nbytes - aligned, _MADV_POPULATE_READ) == 0:
        return True
    if ctypes.get_errno() == errno.EINVAL:  # a kernel before 5.14: never ask again
        _madvise = None
    return False


def prefetch(path: Path) -> None:
    """Ask the kernel to read ``path`` into the page cache in the background.

    Loading maps files without reading them; without this, the first questions
    after a start (a cold page cache) would each wait for the disk pages they touch.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_WILLNEED)
    except (OSError, AttributeError):
        pass  # not on this system: the pages come as they are touched
    finally:
        os.close(fd)


def npy_shape(path: Path) -> tuple[int, ...]:
    """The shape recorded in a ``.npy`` file's header, without reading its data."""
    with open(path, "rb") as handle:
        version = np.lib.format.read_magic(handle)
        header = (
            np.lib.format.read_array_header_1_0(handle)
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0(handle)
        )
    return tuple(header[0])


def fsync_file(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
