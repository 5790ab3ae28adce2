"""The leaderboard's figures, one module per kind (the crefDenoiser paper's evaluation).

Each module draws on a :class:`~leaderboard.figures.common.Context` and returns a
:class:`~leaderboard.figures.common.Drawn` (PNG, vector PDF and the data as CSV, with a
caption) or an :class:`~leaderboard.figures.common.Absent` saying why it cannot be drawn:

* :mod:`.distribution`: the primary metric per method, box and points (Fig. 1);
* :mod:`.fsc05_change`: FSC-0.5 change, unmasked and masked (Fig. 2);
* :mod:`.reference_fsc`: FSC to a higher-resolution reference map (Fig. 3);
* :mod:`.model_fsc`: model-map FSC resolution before and after denoising (Fig. 4);
* :mod:`.variance_ratios`: var(S)/var(N) and var(S)/var(B) against resolution (Fig. 7);
* :mod:`.entry_curves`: FSC_FD against C_ref for one entry (Fig. S1);
* :mod:`.shell_diagnostics`: per-shell var(S), var(N), cov(D1, D2) (Fig. S4);
* :mod:`.cref_curves`: mean FSC_FD² against C_ref² across entries;
* :mod:`.breakdown`: the primary metric by resolution and box size.

:data:`PAPER_FIGURES` lists the modules drawn from the context alone, in the report's order.
matplotlib is imported only when a figure is drawn.
"""

from __future__ import annotations

from leaderboard.figures import (
    cref_curves,
    distribution,
    entry_curves,
    fsc05_change,
    model_fsc,
    reference_fsc,
    shell_diagnostics,
    variance_ratios,
)

PAPER_FIGURES = (distribution, fsc05_change, reference_fsc, model_fsc, variance_ratios,
                 entry_curves, shell_diagnostics, cref_curves)
"""The figure modules whose ``make(ctx, out_dir)`` the report calls, in its order."""
