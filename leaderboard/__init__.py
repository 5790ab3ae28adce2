"""Turning cref-bench result tables into ranked tables and figures."""
