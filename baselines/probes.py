"""Adversarial probes: methods built to top a score without denoising better.

Each probe is an honest map (the average ``M``, or a classic filter's output, ``base``)
changed in a way that should never improve it, so that ``cref-bench score-validity`` can show
which scores such a change fools (a score that ranks a probe above its base, or above an
honest filter, can be gamed). They are pair methods: they see both halves, so the held-out
scores do not apply to them.

* ``probe-inject`` / ``probe-inject-average``: shell-matched noise injection. Per Fourier
  shell, noise orthogonal to ``M`` and to the base map is added to the base map (the
  FSC-weighted map / the average) until ``FSC(D, M)`` equals ``C_ref``; the shape C_ref RMSE
  rewards, with the signal no closer to the truth (further: noise was added).
* ``probe-first-half``: the first noisy half alone as the denoised map.
* ``probe-swap-halves``: the base's full map, its denoised halves swapped (``D2`` is made
  from ``M1``, so ``FSC(D2, M1)`` measures ``M1`` against itself).
* ``probe-average-halves``: the base's full map handed back as both denoised halves.
* ``probe-huge-scale``: the base's maps times ``factor`` (1e36): a scale-free score must not
  move.

Their names start with ``probe-``, which is how the score-validity study tells them apart.
scipy and the metrics are imported when a probe runs, so that listing the methods is quick.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from baselines.classic import FSCWeight, Lowpass, Noisy, Wiener
from cref_bench.maps.volume import Volume
from cref_bench.methods.protocol import Denoised, Method, average_halves

if TYPE_CHECKING:
    from cref_bench.metrics.shells import Shells

PREFIX = "probe-"
"""The start of every probe's name."""

BASES = {"noisy": Noisy, "fsc-weight": FSCWeight, "wiener": Wiener, "lowpass": Lowpass}
"""The honest methods a probe may be built on, by name."""

_AXES = (0, 1, 2)


def _base(name: str) -> Method:
    if name not in BASES:
        raise ValueError(f"base must be one of {', '.join(BASES)}, got {name!r}")
    return BASES[name]()


class _Probe(Method):
    """A probe built on an honest method ``base``."""

    version = "1"
    needs_gpu = False
    safe_in_process = True

    def __init__(self, base: str = "fsc-weight"):
        self.base_name = base
        self.base = _base(base)

    def params(self) -> dict:
        return {"base": self.base_name}


def _shell_dot(a: np.ndarray, b: np.ndarray, shells: Shells, weights: np.ndarray) -> np.ndarray:
    """``Σ Re(a · conj(b))`` per shell over the full transform (Friedel-weighted)."""
    inside = shells.index >= 0
    values = (weights * (a.real * b.real + a.imag * b.imag))[inside]
    return np.bincount(shells.index[inside], weights=values, minlength=shells.n)


def _per_voxel(per_shell: np.ndarray, shells: Shells) -> np.ndarray:
    """A per-shell value spread over the half-space (0 on the DC term and the corners)."""
    return np.append(per_shell, 0.0)[shells.index]


def inject_noise(base: Volume, average: Volume, target: np.ndarray,
                 rng: np.random.Generator) -> Volume:
    """``base`` plus noise orthogonal, shell by shell, to ``average`` and to ``base``, so that
    ``FSC(result, average)`` equals ``target`` in every shell where ``base`` agrees better.

    Args:
        base: the map to add noise to.
        average: the map the FSC is taken against.
        target: the FSC wanted per shell (of :func:`cref_bench.metrics.shells.fourier_shells`).
        rng: the noise's generator.

    Returns:
        The noisy map (a shell where ``FSC(base, average)`` is at or below the target, or the
        target is 0 while ``average`` has no power, is left as it is).
    """
    import scipy.fft

    from cref_bench.metrics.shells import fourier_shells, friedel_weights

    shells = fourier_shells(base.shape, base.voxel_size)
    weights = np.broadcast_to(friedel_weights(base.shape[2]), shells.index.shape)
    fm = scipy.fft.rfftn(average.data.astype(np.float64), workers=-1)
    fb = scipy.fft.rfftn(base.data.astype(np.float64), workers=-1)
    fn = scipy.fft.rfftn(rng.standard_normal(base.shape), workers=-1)

    def remove(component: np.ndarray, along: np.ndarray) -> np.ndarray:
        power = _shell_dot(along, along, shells, weights)
        share = np.divide(_shell_dot(component, along, shells, weights), power,
                          out=np.zeros(shells.n), where=power > 0)
        return component - _per_voxel(share, shells) * along

    fn = remove(remove(fn, fm), remove(fb, fm))
    p_m, p_b, p_n = (_shell_dot(x, x, shells, weights) for x in (fm, fb, fn))
    cross = _shell_dot(fb, fm, shells, weights)
    target = np.clip(np.nan_to_num(np.asarray(target, np.float64)), 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        wanted = np.where(target > 0, cross ** 2 / (target ** 2 * p_m) - p_b, p_m)
        gain = np.sqrt(np.where((wanted > 0) & (p_n > 0), wanted / p_n, 0.0))
    gain = np.nan_to_num(gain, nan=0.0, posinf=0.0)
    out = scipy.fft.irfftn(fb + _per_voxel(gain, shells) * fn, s=base.shape, axes=_AXES,
                           workers=-1)
    return base.like(out.astype(np.float32), source=f"noise injected into {base.source}")


def _rng() -> np.random.Generator:
    """A generator drawn from numpy's global one (the runner seeds it per entry)."""
    return np.random.default_rng(np.random.randint(0, 2 ** 31))


class NoiseInjection(_Probe):
    """Shell-matched noise injection on the FSC-weighted map: ``FSC(D, M) = C_ref``.

    Args:
        base: the honest method whose full map gets the noise (default ``fsc-weight``).
    """

    name = "probe-inject"

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None = None) -> Denoised:
        """The base's full map with shell-matched noise (no denoised halves)."""
        from cref_bench.metrics.fsc import fsc
        from cref_bench.metrics.scores import c_ref

        target = c_ref(fsc(half1, half2, mask).value)
        base = self.base.denoise(half1, half2, mask).full
        full = inject_noise(base, average_halves(half1, half2), target, _rng())
        return Denoised(full=full, note="probe: the full map only")


class NoiseInjectionAverage(NoiseInjection):
    """Shell-matched noise injection on the average of the halves."""

    name = "probe-inject-average"

    def __init__(self, base: str = "noisy"):
        super().__init__(base)


class FirstHalf(Method):
    """The first noisy half alone as the denoised map."""

    name = "probe-first-half"
    version = "1"
    needs_gpu = False
    safe_in_process = True

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None = None) -> Denoised:
        """``M1`` as the full map (no denoised halves)."""
        half1.check_same_grid(half2)
        return Denoised(full=half1.like(half1.data.copy(), source=f"first half {half1.source}"),
                        note="probe: the full map only")


class SwappedHalves(_Probe):
    """The base's full map, its denoised halves swapped."""

    name = "probe-swap-halves"

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None = None) -> Denoised:
        """The base's output with ``half1`` and ``half2`` exchanged."""
        out = self.base.denoise(half1, half2, mask)
        return Denoised(full=out.full, half1=out.half2, half2=out.half1)


class AverageAsHalves(_Probe):
    """The base's full map handed back as both denoised halves."""

    name = "probe-average-halves"

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None = None) -> Denoised:
        """The base's full map, three times."""
        full = self.base.denoise(half1, half2, mask).full
        return Denoised(full=full, half1=full, half2=full)


class HugeScale(_Probe):
    """The base's maps times ``factor``.

    Args:
        base: the honest method (default ``fsc-weight``).
        factor: the scale (default 1e36; the output must stay within float32).
    """

    name = "probe-huge-scale"

    def __init__(self, base: str = "fsc-weight", factor: float = 1e36):
        super().__init__(base)
        if not (np.isfinite(factor) and factor > 0):
            raise ValueError(f"factor must be a positive number, got {factor!r}")
        self.factor = float(factor)

    def params(self) -> dict:
        return {**super().params(), "factor": self.factor}

    def denoise(self, half1: Volume, half2: Volume, mask: Volume | None = None) -> Denoised:
        """The base's output, every map times ``factor``."""
        out = self.base.denoise(half1, half2, mask)
        factor = np.float32(self.factor)
        d, d1, d2 = (None if v is None else v.like(v.data * factor)
                     for v in (out.full, out.half1, out.half2))
        return Denoised(full=d, half1=d1, half2=d2, note=out.note)


__all__ = ["AverageAsHalves", "FirstHalf", "HugeScale", "NoiseInjection",
           "NoiseInjectionAverage", "SwappedHalves", "inject_noise"]
