"""Command-line commands contributed by dataset_builder (registered as cref_bench.commands entry points)."""
