"""Command modules of the leaderboard package (registered as ``cref_bench.commands`` entry points)."""
