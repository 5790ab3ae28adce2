"""Turning cref-bench results folders into ranked tables, statistics, figures and a report.

* :mod:`leaderboard.loading`: read results folders into one ``ResultSet`` (``load``): each
  method setting labelled (:mod:`leaderboard.labels`), values that are bounds kept as such,
  failures kept with their kind.
* :mod:`leaderboard.tables`: rank the settings on the entries they all scored
  (``leaderboard_table``) and render the table (``to_markdown``, ``to_latex``, ``to_html``,
  ``to_csv``).
* :mod:`leaderboard.statistics`: paired Wilcoxon tests with Holm's correction, bootstrap
  intervals, the breakdown by resolution and box size.
* :mod:`leaderboard.figures`: the paper's figures, one module per kind.
* :mod:`leaderboard.report`: the report folder and its self-contained ``index.html``.
* :mod:`leaderboard.commands`: ``cref-bench leaderboard``, ``report`` and ``demo``.

The package imports nothing heavy on its own (matplotlib, scipy.stats and jinja2 are imported
where a figure, a test or the page is made), so that building the CLI stays fast.
"""
