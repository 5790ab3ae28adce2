"""Command modules of the leaderboard package (``cref_bench.commands`` entry points)."""
