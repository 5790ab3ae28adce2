"""Classic baselines: the noisy average, a low-pass filter, FSC weighting and a Wiener filter.

Every baseline here is a :class:`cref_bench.methods.protocol.Method` that multiplies each Fourier
shell of a map by one number derived from the half-map FSC, ``f = FSC(M1, M2)`` (computed
with the mask when one is given, unmasked otherwise); the filter is then applied to the
whole box, unmasked. The shells are those of :func:`cref_bench.metrics.shells.fourier_shells`, the
ones the metrics use, and the weight is looked up by shell index: every voxel of shell ``r``
gets the weight of shell ``r``, with no interpolation between shell centres. Per-shell
quantities of the output are therefore exact multiples of those of the input (power by
``w²``, covariance with the input by ``w``). The DC term keeps weight 1 (the mean is kept);
the corners of the box beyond the Nyquist shell, where no FSC is measured, get weight 0.

Weights (``C_ref(f) = sqrt(2f / (1 + f))``, ``f`` clipped to [0, 1], see
:func:`cref_bench.metrics.scores.c_ref`):

* ``noisy``: the average ``(M1 + M2) / 2`` and the halves, unchanged; the reference row.
* ``lowpass``: 1 up to the half-map FSC ``threshold`` crossing (0.143), 0 beyond, with a
  raised-cosine edge ``edge_shells`` shells wide lying *inside* the cutoff, so that nothing
  at or beyond the crossing survives. The same filter is applied to the average and to each
  half. A curve that never falls below the threshold leaves the maps unfiltered; one below
  it already at the first shell keeps only the mean.
* ``fsc-weight``: the average is weighted by ``C_ref(f)``, its expected FSC to the noise-free
  map (Rosenthal & Henderson 2003, post-processing without sharpening). Each half is weighted
  by the same rule applied to the half's own signal-to-noise ratio: its expected FSC to the
  noise-free map is ``sqrt(f)``.
* ``wiener``: the average is weighted by ``C_ref(f)² = 2f / (1 + f) = SNR / (1 + SNR)`` of the
  average, its Wiener weight; each half by ``f = SNR / (1 + SNR)`` of a half, its own
  Wiener weight.

Per-shell weights leave every FSC against another map unchanged within a shell, so these
filters change real-space agreement (correlation, RMSE) but not ``FSC(D, truth)`` nor
``FSC_FD`` where the weight is positive.

Cost: the FSC transforms the two (masked) halves once; the filter then transforms each half
once (the average's spectrum is the mean of the halves') and inverts three spectra, all
``float32`` / ``complex64`` with ``scipy.fft`` on every core.

scipy and the metrics are imported when a filter runs, so that listing the methods is quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import Denoised, Method, average_halves

if TYPE_CHECKING:
    from cref_bench.metrics.fsc import FSCCurve
    from cref_bench.metrics.shells import Shells

_AXES = (0, 1, 2)


def shell_weight_array(shells: Shells, weights: np.ndarray) -> np.ndarray:
    """The per-voxel weights of an ``rfftn`` half-space from per-shell weights.

    Args:
        shells: the shells of the grid (:func:`cref_bench.metrics.shells.fourier_shells`).
        weights: one weight per shell; NaN is taken as 0 (a shell without power).

    Returns:
        A ``float32`` array of the half-space shape: each voxel of shell ``r`` has
        ``weights[r]``, the DC term 1 and the corners beyond the last shell 0.

    Raises:
        ValueError: ``weights`` does not have one value per shell.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (shells.n,):
        raise ValueError(f"expected {shells.n} shell weights, got shape {weights.shape}")
    table = np.append(np.nan_to_num(weights, nan=0.0), 0.0).astype(np.float32)
    voxels = table[shells.index]  # index -1 (DC and corners) reads the trailing 0
    voxels[0, 0, 0] = 1.0
    return voxels


def filter_halves(half1: Volume, half2: Volume, full_weights: np.ndarray,
                  half_weights: np.ndarray, name: str) -> Denoised:
    """Apply per-shell weights to the average of two half-maps and to each half.

    Args:
        half1, half2: the half-maps (one grid).
        full_weights: per-shell weights of the average ``(M1 + M2) / 2``.
        half_weights: per-shell weights of each half.
        name: the method's name, recorded in the outputs' ``source``.

    Returns:
        A :class:`Denoised` with the filtered average and halves (``float32``).

    Raises:
        GeometryMismatch: the halves are not on one grid.
        ValueError: a weight array does not have one value per shell.
    """
    import scipy.fft

    from cref_bench.metrics.shells import fourier_shells

    half1.check_same_grid(half2)
    shells = fourier_shells(half1.shape, half1.voxel_size)
    shape = half1.shape
    spectrum1 = scipy.fft.rfftn(half1.data, workers=-1)
    spectrum2 = scipy.fft.rfftn(half2.data, workers=-1)
    full = spectrum1 + spectrum2
    full *= shell_weight_array(shells, full_weights)
    outputs = [scipy.fft.irfftn(full, s=shape, axes=_AXES, workers=-1)]
    outputs[0] *= np.float32(0.5)  # (M1 + M2) / 2
    del full
    voxel_weights = shell_weight_array(shells, half_weights)
    for spectrum in (spectrum1, spectrum2):
        spectrum *= voxel_weights
        outputs.append(scipy.fft.irfftn(spectrum, s=shape, axes=_AXES, workers=-1))
    sources = (f"average of {half1.source}", half1.source, half2.source)
    d, d1, d2 = (half1.like(out.astype(np.float32, copy=False), source=f"{name}({src})")
                 for out, src in zip(outputs, sources))
    return Denoised(full=d, half1=d1, half2=d2)


class Noisy(Method):
    """The noisy average ``(M1 + M2) / 2`` and the halves, unchanged: the reference row."""

    name = "noisy"
    version = "1"
    needs_gpu = False
    safe_in_process = True

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None = None) -> Denoised:
        """Return the average and the halves as given.

        Raises:
            GeometryMismatch: the halves are not on one grid.
        """
        return Denoised(full=average_halves(half1, half2), half1=half1, half2=half2)


class _ShellWeighting(Method):
    """A filter whose per-shell weights follow from the half-map FSC."""

    safe_in_process = True

    def weights(self, fsc_half: FSCCurve) -> tuple[np.ndarray, np.ndarray]:
        """Per-shell weights ``(of the average, of each half)`` for a half-map FSC curve."""
        raise NotImplementedError

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None = None) -> Denoised:
        """Filter the average and each half with weights from ``FSC(M1, M2)``.

        Args:
            half1, half2: the half-maps (one grid).
            mask: optional mask for the half-map FSC; the filter itself acts on the whole box.

        Returns:
            A :class:`Denoised` with the filtered average and halves.

        Raises:
            GeometryMismatch: the maps are not on one grid.
            MapError: a map has non-finite voxels.
        """
        from cref_bench.metrics.fsc import fsc

        full_weights, half_weights = self.weights(fsc(half1, half2, mask))
        return filter_halves(half1, half2, full_weights, half_weights, self.name)


class Lowpass(_ShellWeighting):
    """Low-pass filter at the half-map FSC crossing, with a raised-cosine edge inside it.

    Args:
        threshold: the half-map FSC threshold that sets the cutoff (default 0.143).
        edge_shells: width of the cosine edge in shells (0 for a hard cutoff); the weight
            falls from 1 at ``cutoff - edge_shells·Δ`` to 0 at the cutoff (``Δ``: shell width).

    Raises:
        ValueError: ``threshold`` outside (0, 1) or ``edge_shells`` negative.
    """

    name = "lowpass"
    version = "1"
    needs_gpu = False

    def __init__(self, threshold: float = 0.143, edge_shells: float = 3.0):
        if not 0.0 < threshold < 1.0:
            raise ValueError(f"threshold must lie in (0, 1), got {threshold}")
        if edge_shells < 0:
            raise ValueError(f"edge_shells must be >= 0, got {edge_shells}")
        self.threshold = float(threshold)
        self.edge_shells = float(edge_shells)

    def params(self) -> dict:
        return {"threshold": self.threshold, "edge_shells": self.edge_shells}

    def cutoff(self, fsc_half: FSCCurve) -> float | None:
        """The cutoff frequency in 1/Å, or ``None`` when the curve never crosses the threshold.

        A curve below the threshold already at the first shell gives the first shell's
        frequency (only the mean survives).
        """
        crossing = fsc_half.resolution_at(self.threshold)
        if crossing.resolution is not None:
            return 1.0 / crossing.resolution
        below_at_start = not fsc_half.value[0] >= self.threshold
        return float(fsc_half.frequency[0]) if below_at_start else None

    def weights(self, fsc_half: FSCCurve) -> tuple[np.ndarray, np.ndarray]:
        frequency = fsc_half.frequency
        cutoff = self.cutoff(fsc_half)
        if cutoff is None:
            w = np.ones_like(frequency)
        else:
            width = self.edge_shells * frequency[0]
            if width > 0:
                t = np.clip((frequency - (cutoff - width)) / width, 0.0, 1.0)
                w = 0.5 * (1.0 + np.cos(np.pi * t))
            else:
                w = (frequency < cutoff).astype(np.float64)
            w[frequency >= cutoff] = 0.0
        return w, w


class FSCWeight(_ShellWeighting):
    """FSC weighting: the average by ``C_ref(f)``, each half by ``sqrt(f)`` (``f`` = half-map FSC
    clipped to [0, 1]); each map by its expected FSC to the noise-free map."""

    name = "fsc-weight"
    version = "1"
    needs_gpu = False

    def weights(self, fsc_half: FSCCurve) -> tuple[np.ndarray, np.ndarray]:
        from cref_bench.metrics.scores import c_ref

        f = np.clip(fsc_half.value, 0.0, 1.0)
        return c_ref(fsc_half.value), np.sqrt(f)


class Wiener(_ShellWeighting):
    """Wiener filter: the average by ``C_ref(f)² = 2f / (1 + f)``, each half by ``f`` (``f`` =
    half-map FSC clipped to [0, 1]); each map by its own ``SNR / (1 + SNR)``."""

    name = "wiener"
    version = "1"
    needs_gpu = False

    def weights(self, fsc_half: FSCCurve) -> tuple[np.ndarray, np.ndarray]:
        from cref_bench.metrics.scores import c_ref

        return c_ref(fsc_half.value) ** 2, np.clip(fsc_half.value, 0.0, 1.0)


__all__ = ["FSCWeight", "Lowpass", "Noisy", "Wiener", "filter_halves", "shell_weight_array"]
