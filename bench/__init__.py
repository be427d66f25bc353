"""`make bench`: Herald's throughput and latency benchmarks (see bench/__main__.py)."""
