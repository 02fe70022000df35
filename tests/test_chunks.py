"""detector.chunks.in_chunks: the one chunked-scoring helper (serving, training, research)."""

import numpy as np

from detector.chunks import in_chunks


def test_in_chunks_calls_in_order_and_bounds_each_call():
    calls = []

    def fn(x):
        calls.append(len(x))
        return x * 2

    x = np.arange(10)
    assert in_chunks(fn, x, 4).tolist() == (x * 2).tolist() and calls == [4, 4, 2]
    calls.clear()
    assert in_chunks(fn, x, 10).tolist() == (x * 2).tolist() and calls == [10]
    assert in_chunks(fn, x[:0], 4).shape == (0,) and calls == [10]
