"""A method that changes nothing, in a module of its own so that a method process that loads
it imports no more than a small method package would (benchmarks/bench_runner.py)."""

from __future__ import annotations

import numpy as np

from cref_bench.methods.protocol import Denoised, Method


class Identity(Method):
    """Returns the noisy average and the halves unchanged."""

    name = "identity-bench"
    version = "1"

    def denoise(self, half1, half2, mask=None):
        average = half1.like((half1.data + half2.data) * np.float32(0.5))
        return Denoised(full=average, half1=half1, half2=half2)
