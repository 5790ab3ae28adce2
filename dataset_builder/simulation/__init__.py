"""Simulated single-particle reconstructions with known truth.

:func:`simulate_entry` turns :class:`SimulationSettings` (or one of the :data:`PRESETS`) and a
seed into a :class:`SimulatedEntry`: two half-maps reconstructed from disjoint simulated
particle sets (central slices of an atomic model's density or of a given map, CTF, noise,
preferred views, a flexible domain), regularised from their own FSC and solvent-flattened as
RELION's refinement writes them, the noise-free truth, a mask, a reference map from more
particles, the model and a record of every parameter. The modules, by step:
:mod:`.specimen` (model or map, truth), :mod:`.flexibility`, :mod:`.orientations`,
:mod:`.ctf`, :mod:`.particles` (images in Fourier space), :mod:`.reconstruction` (direct
Fourier inversion, regulariser, solvent flattening), :mod:`.ssnr` (the noise a particle SNR
sets and the FSC the settings imply), :mod:`.relion` (a particle set as RELION STAR files),
:mod:`.entry` (the recipe).
"""

from dataset_builder.simulation.entry import SimulatedEntry, simulate_entry
from dataset_builder.simulation.settings import PRESETS, SimulationSettings

__all__ = ["PRESETS", "SimulatedEntry", "SimulationSettings", "simulate_entry"]
