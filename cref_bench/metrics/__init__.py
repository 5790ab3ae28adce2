"""The metrics: Fourier shells, FSC, the C_ref family of scores, model maps, metric facts.

Modules: :mod:`~cref_bench.metrics.shells` (the one shell definition),
:mod:`~cref_bench.metrics.fsc` (spectra, FSC curves, resolution at a threshold),
:mod:`~cref_bench.metrics.scores` (C_ref, the scores of a denoised map, ``evaluate``),
:mod:`~cref_bench.metrics.model_map` (maps from atomic models),
:mod:`~cref_bench.metrics.facts` (what is known of each scalar metric, one table).
"""

from cref_bench._lazy import lazy_exports

__all__, __getattr__ = lazy_exports(__name__, {
    "Shells": "shells", "fourier_shells": "shells", "reference_shells": "shells",
    "FSCCurve": "fsc", "Spectra": "fsc", "resolution_at": "fsc",
    "c_ref": "scores", "evaluate": "scores", "MetricReport": "scores", "DenoisedMaps": "scores",
    "cref_rmse": "scores", "cref_l1": "scores", "fsc_fd_curve": "scores",
    "variance_analysis": "scores",
    "read_model": "model_map", "atom_mask": "model_map",
    "METRICS": "facts", "MetricFacts": "facts", "metric_facts": "facts",
})
