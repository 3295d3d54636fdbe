"""The store's array helpers: the same numbers as the plain NumPy they stand in for."""

from __future__ import annotations

import numpy as np
import pytest

from index.arrays import as_float32, concat_ranges


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
