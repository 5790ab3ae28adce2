"""Denoisers scored by cref-bench, each registered as a method."""
