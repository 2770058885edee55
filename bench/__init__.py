"""Throughput and memory benchmarks: `make bench`, `make bench-memory` (see README)."""
