"""Command-line commands contributed by the baselines package (registered as entry points)."""
