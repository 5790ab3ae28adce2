"""Speed and memory benchmarks (pytest-benchmark), each reporting a ratio to a baseline."""
