"""Particle orientations: uniform on SO(3), or with a preferred view of stated strength.

A particle's orientation is a rotation matrix ``R`` acting on ``(x, y, z)`` vectors of the
specimen frame. Its image is the projection along the viewing direction ``d = R[2]``, and
the image's transform at ``(kx, ky)`` is the specimen's at ``kx R[0] + ky R[1]`` (the central
slice normal to ``d``).

The viewing direction is drawn from a mixture: with probability ``fraction`` from a von
Mises-Fisher distribution about the preferred axis ``a`` (the specimen's z axis) of
concentration ``κ``, density ``κ exp(κ d·a) / (4π sinh κ)`` on the unit sphere, otherwise
uniformly; the in-plane angle is uniform. ``κ = 0`` or ``fraction = 0`` is the uniform (Haar)
distribution on SO(3). (``d`` and ``-d`` give the same slice, so one pole suffices.)

Sampling density: a Fourier-space point in direction ``ω`` lies in the slice of every view
``d ⊥ ω``. Relative to uniform orientations the density of slices through it is
``h(ω) = 2 ∫_{d⊥ω} p(d) dℓ``, a great-circle integral; for the mixture above, with ``θ`` the
angle between ``ω`` and ``a``,

    h(ω) = fraction · κ I₀(κ sin θ) / sinh κ + (1 − fraction)

(1 everywhere for uniform orientations; small along the preferred axis, whose Fourier
direction is seen only by side views). The spectral SNR at ``ω`` scales with ``h(ω)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import i0e


@dataclass(frozen=True)
class ViewDistribution:
    """The distribution of viewing directions (see the module docstring).

    Attributes:
        kappa: von Mises-Fisher concentration about the z axis (0: uniform). ``κ = 5``
            puts 63 % of the preferred views within 37° of the axis.
        fraction: share of particles drawn from the preferred distribution, in [0, 1].
    """

    kappa: float = 0.0
    fraction: float = 1.0

    def __post_init__(self):
        if not (np.isfinite(self.kappa) and self.kappa >= 0):
            raise ValueError(f"kappa must be a finite number >= 0, got {self.kappa}")
        if not 0.0 <= self.fraction <= 1.0:
            raise ValueError(f"fraction must be in [0, 1], got {self.fraction}")

    @property
    def uniform(self) -> bool:
        """Whether this is the uniform distribution on SO(3)."""
        return self.kappa == 0.0 or self.fraction == 0.0

    def directions(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` viewing directions, unit ``(x, y, z)`` rows."""
        u = rng.uniform(size=n)
        azimuth = rng.uniform(0.0, 2.0 * np.pi, size=n)
        preferred = rng.uniform(size=n) < self.fraction
        cos_theta = 2.0 * u - 1.0
        if not self.uniform:
            k = self.kappa
            # Inverse CDF of d.a under the von Mises-Fisher distribution on S^2.
            vmf = 1.0 + np.log(u + (1.0 - u) * np.exp(-2.0 * k)) / k
            cos_theta = np.where(preferred, np.clip(vmf, -1.0, 1.0), cos_theta)
        sin_theta = np.sqrt(1.0 - cos_theta**2)
        return np.stack([sin_theta * np.cos(azimuth), sin_theta * np.sin(azimuth), cos_theta],
                        axis=1)

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        """``n`` rotations ``(n, 3, 3)``: viewing direction from the distribution, uniform
        in-plane angle.

        Args:
            rng: the random generator.
            n: how many.

        Returns:
            float64 rotation matrices with ``R[2]`` the viewing direction.
        """
        d = self.directions(rng, n)
        psi = rng.uniform(0.0, 2.0 * np.pi, size=n)
        helper = np.where(np.abs(d[:, :1]) < 0.9, [[1.0, 0.0, 0.0]], [[0.0, 1.0, 0.0]])
        e1 = np.cross(helper, d)
        e1 /= np.linalg.norm(e1, axis=1, keepdims=True)
        e2 = np.cross(d, e1)
        c, s = np.cos(psi)[:, None], np.sin(psi)[:, None]
        return np.stack([c * e1 + s * e2, -s * e1 + c * e2, d], axis=1)

    def slice_density(self, sin_theta: np.ndarray) -> np.ndarray:
        """``h(ω)``: density of slices through a Fourier point relative to uniform
        orientations, as a function of ``sin θ`` (``θ``: angle between the point's direction
        and the z axis).

        Args:
            sin_theta: values in [0, 1].

        Returns:
            ``h`` of the same shape (mean 1 over the sphere).
        """
        sin_theta = np.asarray(sin_theta, dtype=np.float64)
        if self.uniform:
            return np.ones_like(sin_theta)
        k = self.kappa
        # kappa I0(kappa x) / sinh(kappa)
        #     = 2 kappa i0e(kappa x) exp(kappa (x - 1)) / (1 - exp(-2 kappa))
        vmf = 2.0 * k * i0e(k * sin_theta) * np.exp(k * (sin_theta - 1.0)) / -np.expm1(-2.0 * k)
        return self.fraction * vmf + (1.0 - self.fraction)

    def as_dict(self) -> dict:
        """A JSON-ready description."""
        if self.uniform:
            return {"kind": "uniform"}
        return {"kind": "von Mises-Fisher about z (mixture with uniform)",
                "kappa": float(self.kappa), "fraction": float(self.fraction)}


__all__ = ["ViewDistribution"]
