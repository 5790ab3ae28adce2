"""The contrast transfer function (CTF) of the simulated microscope, and its mean square.

Conventions: spatial frequency ``s`` in 1/Å; defocus ``Δf`` in Å, positive for underfocus;
``λ`` the relativistic electron wavelength (0.019687 Å at 300 kV); ``Cs`` in Å (2.7 mm is
2.7e7 Å); ``A`` the amplitude contrast; ``B`` the envelope B-factor (Å²). No astigmatism.

    χ(s)   = π λ Δf s² − (π/2) Cs λ³ s⁴
    CTF(s) = −(√(1 − A²) sin χ + A cos χ) · exp(−B s² / 4) = −sin(χ + arcsin A) · exp(−B s² / 4)

The sign makes a positive density dark at low frequency, as in real micrographs; the
reconstruction uses ``CTF · image`` and ``CTF²``, where the sign cancels. Over a defocus
drawn uniformly in ``[Δf₁, Δf₂]``, ``⟨sin²(χ + α)⟩`` has a closed form
(:meth:`Microscope.mean_ctf2`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Physical constants (CODATA): electron rest energy m0 c^2 in eV, and h c in eV Å.
_REST_ENERGY_EV = 510998.95
_HC_EV_ANGSTROM = 12398.419843


def electron_wavelength(voltage_kv: float) -> float:
    """Relativistic electron wavelength in Å at an accelerating voltage in kV.

    Args:
        voltage_kv: the voltage, kV (positive).

    Returns:
        ``λ = h c / sqrt(E (E + 2 m0 c²))`` with ``E`` the kinetic energy; 0.019687 Å at 300 kV.

    Raises:
        ValueError: the voltage is not positive.
    """
    if not voltage_kv > 0:
        raise ValueError(f"the voltage must be positive, got {voltage_kv} kV")
    energy = voltage_kv * 1e3
    return _HC_EV_ANGSTROM / np.sqrt(energy * (energy + 2.0 * _REST_ENERGY_EV))


@dataclass(frozen=True)
class Microscope:
    """The optics of the simulated microscope.

    Attributes:
        voltage_kv: accelerating voltage, kV.
        cs_mm: spherical aberration, mm.
        amplitude_contrast: fraction ``A`` in [0, 1).
        envelope_b: B-factor of the envelope ``exp(-B s² / 4)``, Å² (>= 0).
    """

    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    envelope_b: float = 80.0

    def __post_init__(self):
        if not 0.0 <= self.amplitude_contrast < 1.0:
            raise ValueError(f"amplitude contrast must be in [0, 1), got {self.amplitude_contrast}")
        if not self.envelope_b >= 0.0:
            raise ValueError(f"the envelope B-factor must be >= 0 Å², got {self.envelope_b}")
        if not self.cs_mm >= 0.0:
            raise ValueError(f"Cs must be >= 0 mm, got {self.cs_mm}")
        electron_wavelength(self.voltage_kv)

    @property
    def wavelength(self) -> float:
        """Electron wavelength, Å."""
        return electron_wavelength(self.voltage_kv)

    def phase_terms(self, s2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)`` with ``χ + arcsin A = a Δf − b`` at squared frequencies ``s2`` (1/Å²)."""
        lam = self.wavelength
        cs = self.cs_mm * 1e7
        a = np.pi * lam * s2
        b = 0.5 * np.pi * cs * lam**3 * s2**2 - np.arcsin(self.amplitude_contrast)
        return a, b

    def envelope(self, s2: np.ndarray) -> np.ndarray:
        """``exp(-B s² / 4)`` at squared frequencies ``s2``."""
        return np.exp(-0.25 * self.envelope_b * np.asarray(s2, dtype=np.float64))

    def ctf(self, s2: np.ndarray, defocus: float) -> np.ndarray:
        """The CTF at squared frequencies ``s2`` (1/Å²) for a defocus in Å (see the module
        docstring)."""
        a, b = self.phase_terms(np.asarray(s2, dtype=np.float64))
        return -np.sin(a * defocus - b) * self.envelope(s2)

    def mean_ctf2(self, s2: np.ndarray, defocus_range: tuple[float, float]) -> np.ndarray:
        """``⟨CTF²⟩`` over a defocus uniform in ``defocus_range`` (Å), in closed form.

        ``sin²(aΔf − b) = (1 − cos(2aΔf − 2b)) / 2``, whose mean over ``Δf`` in ``[f₁, f₂]``
        is ``(1 − (sin(2af₂ − 2b) − sin(2af₁ − 2b)) / (2a (f₂ − f₁))) / 2``.
        """
        s2 = np.asarray(s2, dtype=np.float64)
        low, high = defocus_range
        a, b = self.phase_terms(s2)
        if high > low:
            span = 2.0 * a * (high - low)
            safe = np.where(span > 1e-9, span, 1.0)
            mean_cos = np.where(span > 1e-9,
                                (np.sin(2 * a * high - 2 * b) - np.sin(2 * a * low - 2 * b)) / safe,
                                np.cos(2 * a * low - 2 * b))
        else:
            mean_cos = np.cos(2 * a * low - 2 * b)
        return 0.5 * (1.0 - mean_cos) * self.envelope(s2) ** 2


__all__ = ["Microscope", "electron_wavelength"]
