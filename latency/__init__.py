"""Latency measurement: pyperf micro-benchmarks of the hot path (and, later, the harness)."""
