"""Benchmarks: each prints its figures; the last line is one JSON object."""
