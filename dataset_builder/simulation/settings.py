"""What a simulated entry is made of: :class:`SimulationSettings` and named :data:`PRESETS`.

Every field has a documented default;
:meth:`SimulationSettings.as_dict` is what an entry records. The settings in RELION's terms:
``noise_sigma`` is ``relion_project --white_noise`` (the standard deviation of white noise per
pixel of each particle image, in the units of the specimen's projection: the sum of voxel
values along the ray), ``particles`` the particles per half, ``voltage_kv``, ``cs_mm``,
``amplitude_contrast`` (300 kV, 2.7 mm, 0.1 by default), ``defocus_um`` (uniform, no
astigmatism) and ``envelope_b`` (``rlnCtfBfactor``: ``exp(−B s² / 4)``) are the optics and
CTF a particle STAR file carries (:mod:`.relion` writes one); ``snr`` is the alternative to
``noise_sigma``. The presets span the EMDB range (boxes 96 to 256, resolutions about 2.5 to
8 Å), some with a preferred orientation, some with a flexible domain. Each name gives the
FSC-0.143 resolution the settings imply (:func:`.entry.implied_half_fsc`, with the ``fsc``
regulariser and solvent flattening; for the procedural specimen of seed 0: 2.5, 3.4, 4.2,
4.2, 6.8 and 7.9 Å); it varies with the specimen drawn from the seed, as real entries'
resolutions do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from dataset_builder.simulation.ctf import Microscope
from dataset_builder.simulation.flexibility import Flexibility
from dataset_builder.simulation.orientations import ViewDistribution

MIN_BOX, MAX_BOX = 32, 512
REGULARISERS = ("fsc", "oracle", "none")
"""The regulariser settings (see :class:`SimulationSettings`)."""


@dataclass(frozen=True)
class SimulationSettings:
    """Settings of one simulated single-particle data set and its reconstructions.

    Attributes:
        model: an atomic model file (PDB/mmCIF); None draws a procedural model from the seed.
        specimen: a map file (MRC/CCP4) to use as the truth instead of a model: cubic, its
            edge ``box`` and its voxel size ``voxel_size`` (rigid only).
        box: edge of the cubic box, voxels (even, 32 to 512).
        voxel_size: Å per voxel (and per image pixel).
        particles: particles per half-map (each half is reconstructed from its own).
        reference_factor: the reference map has the spectral SNR of this many times
            ``particles`` particles: it is reconstructed from ``particles`` further particles
            (independent of the halves) whose SNR is ``reference_factor · snr``.
        snr: particle SNR (see :mod:`.ssnr`; ``inf``: no noise); used when ``noise_sigma``
            is None.
        noise_sigma: standard deviation of the white Gaussian noise added to every pixel of
            each particle image, in the units of the specimen's projection (the sum of the
            map's voxel values along the ray, as ``relion_project`` projects;
            ``relion_project --white_noise``); None: set from ``snr``. 0: no noise.
        defocus_um: defocus range, µm, drawn uniformly per particle (underfocus positive).
        ctf: apply the CTF (False: CTF = 1).
        envelope_b: B-factor of the CTF envelope, Å².
        voltage_kv, cs_mm, amplitude_contrast: the microscope.
        preferred_kappa: von Mises-Fisher concentration of the preferred view about z (0: uniform).
        preferred_fraction: share of particles in the preferred view.
        flexible_fraction: share of atoms in an automatically chosen flexible domain (0: none).
        flexible_selection: a gemmi selection naming the flexible domain instead.
        flex_shift: σ of the domain's translation, Å per axis.
        flex_angle: σ of the domain's rotation, degrees per axis.
        regulariser: how each map is regularised (:mod:`.reconstruction`): ``fsc`` (default;
            as RELION's refinement: ``SSNR = FSC / (1 − FSC)`` per shell from the FSC of the
            two unregularised half-maps, the FSC clipped to [0.045, 0.999] as RELION's is),
            ``oracle`` (the true signal power per shell) or ``none``.
        tau2_fudge: ``T``, the regulariser's fudge (RELION's ``--tau2_fudge``; larger:
            weaker; 1: Wiener).
        flatten_solvent: flatten the solvent outside the reconstruction sphere (radius
            ``box/2``, 3-voxel raised-cosine edge, outside set to its mean), as
            ``relion_reconstruct`` does.
        batch_size: particles simulated and gridded together (bounds memory; part of what
            determines the random draws, so it is recorded).
    """

    model: str | None = None
    specimen: str | None = None
    box: int = 128
    voxel_size: float = 1.2
    particles: int = 10_000
    reference_factor: float = 4.0
    snr: float = 0.05
    noise_sigma: float | None = None
    defocus_um: tuple[float, float] = (0.8, 2.5)
    ctf: bool = True
    envelope_b: float = 60.0
    voltage_kv: float = 300.0
    cs_mm: float = 2.7
    amplitude_contrast: float = 0.1
    preferred_kappa: float = 0.0
    preferred_fraction: float = 1.0
    flexible_fraction: float = 0.0
    flexible_selection: str | None = None
    flex_shift: float = 0.0
    flex_angle: float = 0.0
    regulariser: str = "fsc"
    tau2_fudge: float = 1.0
    flatten_solvent: bool = True
    batch_size: int = 256
    name: str = field(default="custom", compare=False)

    def __post_init__(self):
        def fail(what: str, value, need: str):
            raise ValueError(f"simulation settings {self.name!r}: {what} = {value!r}; {need}")

        if not isinstance(self.box, (int, np.integer)) or not MIN_BOX <= self.box <= MAX_BOX \
                or self.box % 2:
            fail("box", self.box, f"it must be an even integer from {MIN_BOX} to {MAX_BOX}")
        if not (np.isfinite(self.voxel_size) and self.voxel_size > 0):
            fail("voxel_size", self.voxel_size, "it must be a positive number of Å")
        if not isinstance(self.particles, (int, np.integer)) or self.particles < 1:
            fail("particles", self.particles, "it must be a positive integer")
        if not (np.isfinite(self.reference_factor) and self.reference_factor >= 1):
            fail("reference_factor", self.reference_factor, "it must be at least 1")
        if not self.snr > 0:
            fail("snr", self.snr, "it must be positive (inf for no noise)")
        low, high = self.defocus_um
        if not 0 < low <= high:
            fail("defocus_um", self.defocus_um, "it must be (low, high) with 0 < low <= high")
        if self.noise_sigma is not None and not (np.isfinite(self.noise_sigma)
                                                 and self.noise_sigma >= 0):
            fail("noise_sigma", self.noise_sigma, "it must be a number >= 0 (or null)")
        if self.regulariser not in REGULARISERS:
            fail("regulariser", self.regulariser, f"it must be one of {', '.join(REGULARISERS)}")
        if not (np.isfinite(self.tau2_fudge) and self.tau2_fudge > 0):
            fail("tau2_fudge", self.tau2_fudge, "it must be positive")
        if not isinstance(self.batch_size, (int, np.integer)) or self.batch_size < 1:
            fail("batch_size", self.batch_size, "it must be a positive integer")
        if self.model is not None and not Path(self.model).is_file():
            fail("model", self.model, "no such model file")
        if self.specimen is not None:
            if self.model is not None:
                fail("specimen", self.specimen, "give a map (specimen) or a model, not both")
            if not Path(self.specimen).is_file():
                fail("specimen", self.specimen, "no such map file")
            if self.flexible_fraction > 0 or self.flexible_selection is not None:
                fail("specimen", self.specimen, "a map specimen is rigid: a flexible domain "
                     "needs an atomic model")
        try:
            self.microscope()
            self.views()
            self.flexibility()
        except ValueError as error:
            raise ValueError(f"simulation settings {self.name!r}: {error}") from error

    def microscope(self) -> Microscope | None:
        """The optics, or None when the CTF is off."""
        if not self.ctf:
            return None
        return Microscope(self.voltage_kv, self.cs_mm, self.amplitude_contrast, self.envelope_b)

    def views(self) -> ViewDistribution:
        """The orientation distribution."""
        return ViewDistribution(self.preferred_kappa, self.preferred_fraction)

    def flexibility(self) -> Flexibility:
        """The flexible domain's definition and motion (procedural models: whole chains)."""
        return Flexibility(self.flexible_fraction, self.flexible_selection, self.flex_shift,
                           self.flex_angle, by_chain=self.model is None)

    @property
    def defocus_range(self) -> tuple[float, float]:
        """The defocus range in Å."""
        return (self.defocus_um[0] * 1e4, self.defocus_um[1] * 1e4)

    @property
    def reference_snr(self) -> float:
        """Particle SNR of the reference map's particles."""
        return self.reference_factor * self.snr

    def with_(self, **changes) -> SimulationSettings:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)

    def as_dict(self) -> dict:
        """Every field, JSON-ready."""
        out = asdict(self)
        out["defocus_um"] = list(self.defocus_um)
        out["snr"] = None if np.isinf(self.snr) else float(self.snr)
        return out


PRESETS: dict[str, SimulationSettings] = {s.name: s for s in (
    SimulationSettings(name="rigid-2.5A", box=96, voxel_size=0.9, particles=40_000, snr=0.15,
                       envelope_b=20.0),
    SimulationSettings(name="rigid-3.5A", box=128, voxel_size=1.1, particles=15_000,
                       snr=0.1, envelope_b=40.0),
    SimulationSettings(name="flexible-4.5A", box=128, voxel_size=1.2, particles=10_000,
                       snr=0.06, flexible_fraction=0.25, flex_shift=1.5, flex_angle=3.0),
    SimulationSettings(name="preferred-4.5A", box=160, voxel_size=1.3, particles=10_000,
                       snr=0.03, preferred_kappa=5.0, preferred_fraction=0.7),
    SimulationSettings(name="flexible-preferred-7A", box=192, voxel_size=1.6,
                       particles=6_000, snr=0.03, envelope_b=100.0, preferred_kappa=4.0,
                       preferred_fraction=0.6, flexible_fraction=0.3, flex_shift=2.5,
                       flex_angle=5.0),
    SimulationSettings(name="low-8A", box=256, voxel_size=1.8, particles=4_000, snr=0.03,
                       envelope_b=150.0),
)}
"""Named settings spanning the EMDB range (see the module docstring)."""


__all__ = ["PRESETS", "REGULARISERS", "SimulationSettings"]
