"""Compiled inner loops of the Fourier metrics (numba).

One pass over a stack of half-space spectra accumulates, per shell, the Friedel-weighted
sums ``Σ Re(F_i · conj(F_j))`` for a list of pairs ``(i, j)``. Reading every spectrum once,
whatever the number of pairs, keeps the metrics close to the cost of the FFTs themselves.
"""

from __future__ import annotations

import numba
import numpy as np


@numba.njit(parallel=True, cache=True, fastmath=False)
def _shell_pair_sums(spectra, index, pairs, n_shells, nx_even):
    nz, ny, nxh = spectra[0].shape
    n_pairs = pairs.shape[0]
    partial = np.zeros((nz, n_pairs, n_shells), dtype=np.float64)
    for z in numba.prange(nz):
        acc = partial[z]
        for y in range(ny):
            for x in range(nxh):
                s = index[z, y, x]
                if s < 0:
                    continue
                w = 2.0
                if x == 0 or (nx_even and x == nxh - 1):
                    w = 1.0
                for p in range(n_pairs):
                    a = spectra[pairs[p, 0]][z, y, x]
                    b = spectra[pairs[p, 1]][z, y, x]
                    acc[p, s] += w * (np.float64(a.real) * b.real + np.float64(a.imag) * b.imag)
    return partial.sum(axis=0)


def shell_pair_sums(spectra: np.ndarray, index: np.ndarray, pairs, n_shells: int,
                    nx: int) -> np.ndarray:
    """Per-shell sums of ``Re(F_i · conj(F_j))`` over the full transform, for each pair.

    Args:
        spectra: a sequence of complex arrays ``(nz, ny, nx // 2 + 1)`` of one dtype:
            rfftn half-spaces.
        index: int16 shell index of the half-space (-1 where left out).
        pairs: sequence of ``(i, j)`` positions in ``spectra``.
        n_shells: the number of shells.
        nx: the real-space length of the last axis (its parity decides the Friedel weights).

    Returns:
        float64 array ``(len(pairs), n_shells)``.
    """
    pairs = np.ascontiguousarray(np.asarray(pairs, dtype=np.int64).reshape(-1, 2))
    return _shell_pair_sums(tuple(spectra), index, pairs, int(n_shells), bool(nx % 2 == 0))
