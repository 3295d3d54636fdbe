"""The store's array helpers: the same numbers as the plain NumPy they stand in for."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from index import arrays
from index.arrays import as_float32, concat_ranges, mapped, touch_pages


@pytest.mark.parametrize("rows", [0, 1, 7, 21, 43, 1000])  # below, at and past the torch pieces
def test_float16_vectors_are_cast_to_float32_exactly(rows):
    rng = np.random.default_rng(rows)
    block = rng.standard_normal((rows, 384)).astype(np.float16)
    block[:1, :3] = [np.inf, -0.0, np.float16(6e-8)]  # an infinity, a signed zero, a subnormal
    cast = as_float32(block)
    assert cast.dtype == np.float32 and cast.shape == block.shape
    assert np.array_equal(cast, block.astype(np.float32))
    assert not np.shares_memory(cast, block)


def test_a_strided_float16_block_is_cast_as_it_reads():
    block = np.arange(2000 * 16, dtype=np.float16).reshape(2000, 16)[::3, ::2]
    assert np.array_equal(as_float32(block), block.astype(np.float32))


def test_float32_vectors_pass_through():
    block = np.ones((5, 4), dtype=np.float32)
    assert as_float32(block) is block


def test_concat_ranges_is_the_concatenated_aranges():
    starts, ends = np.array([3, 0, 9, 9]), np.array([6, 2, 9, 12])
    expected = np.concatenate([np.arange(a, b) for a, b in zip(starts, ends, strict=True)])
    assert np.array_equal(concat_ranges(starts, ends), expected)


def _kernel_has_populate() -> bool:
    if not sys.platform.startswith("linux"):
        return False
    major, minor = (int(part) for part in os.uname().release.split(".")[:2])
    return (major, minor) >= (5, 14)


def test_touching_maps_every_page_of_a_mapped_file_and_leaves_nothing(tmp_path):
    path = tmp_path / "vectors.npy"
    data = np.arange(3 * (1 << 20), dtype=np.float32).reshape(-1, 384)  # 12 MB: 3 blocks
    np.save(path, data)
    array = mapped(path)
    odd = array[:, 1:]  # not contiguous: read a page at a time instead
    assert touch_pages([array, odd, np.zeros(0, np.uint8)], float("inf")) == []
    block = array.reshape(-1).view(np.uint8)[: 4096 * 3]
    assert arrays._populate(block) is _kernel_has_populate()
    assert np.array_equal(array, data)  # reading the pages changed none of them


def test_touching_past_its_budget_returns_what_it_left(tmp_path):
    path = tmp_path / "vectors.npy"
    np.save(path, np.ones((20_000, 384), dtype=np.float32))
    first, second = mapped(path), np.ones(100, dtype=np.uint8)
    left = touch_pages([first, second], 0.0)
    assert sum(part.nbytes for part in left) == first.nbytes + second.nbytes
    assert touch_pages(left, float("inf")) == []
