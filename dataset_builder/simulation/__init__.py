"""Simulated single-particle reconstructions with known truth.

:func:`simulate_entry` turns :class:`SimulationSettings` (or one of the :data:`PRESETS`) and a
seed into a :class:`SimulatedEntry`: two half-maps reconstructed from disjoint simulated
particle sets (central slices of an atomic model's density, CTF, noise, preferred views,
a flexible domain), the noise-free truth, a mask, a reference map from more particles, the
model and a record of every parameter. The modules, by step: :mod:`.specimen` (model and
truth), :mod:`.flexibility`, :mod:`.orientations`, :mod:`.ctf`, :mod:`.particles` (images in
Fourier space), :mod:`.reconstruction` (direct Fourier inversion), :mod:`.ssnr` (the noise a
particle SNR sets and the FSC the settings imply), :mod:`.entry` (the recipe).
"""

from dataset_builder.simulation.entry import SimulatedEntry, simulate_entry
from dataset_builder.simulation.settings import PRESETS, SimulationSettings

__all__ = ["PRESETS", "SimulatedEntry", "SimulationSettings", "simulate_entry"]
