"""Turning sources (EMDB, procedural phantoms) into a cref-bench corpus store."""
