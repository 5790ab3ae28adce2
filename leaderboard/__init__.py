"""Turning cref-bench result tables into ranked tables and figures.

* :mod:`leaderboard.tables`: read results folders (``load_results``, ``load_curves``), rank
  methods on the entries they all finished (``leaderboard_table``) and render the table
  (``to_markdown``, ``to_latex``, ``to_html``, ``to_csv``).
* :mod:`leaderboard.figures`: the distribution of a metric across entries and the mean
  FSC_FD² against C_ref² curves, as PNG and PDF.
* :mod:`leaderboard.commands.leaderboard`: the ``cref-bench leaderboard`` command.

The package imports nothing heavy on its own, so that building the CLI stays fast.
"""
