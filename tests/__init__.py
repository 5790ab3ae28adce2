"""The test suite of cref-bench (run with ``python3 -m pytest -q``)."""
