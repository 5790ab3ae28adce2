"""A single-map method (a Gaussian blur), and the same run the way the runner ran single-map
methods before held-out calls (one call of the method's own ``denoise``, which makes the
three ``denoise_map`` calls inside), in a module of its own so that a method process imports
no more than a small method package would (benchmarks/bench_heldout.py)."""

from __future__ import annotations

from scipy import ndimage

from cref_bench.methods.protocol import Method, SingleMapMethod


class Blur(SingleMapMethod):
    """Gaussian smoothing (sigma 1 voxel) of one map."""

    name = "blur-bench"
    version = "1"

    def denoise_map(self, volume, mask=None):
        return volume.like(ndimage.gaussian_filter(volume.data, 1.0))


class BlurInOneCall(Method):
    """:class:`Blur` as the runner called it before held-out calls: both halves in one call."""

    name = "blur-bench-one-call"
    version = "1"

    def denoise(self, half1, half2, mask=None):
        return Blur().denoise(half1, half2, mask)
