"""Command-line commands contributed by dataset_builder (``cref_bench.commands`` entry points)."""
