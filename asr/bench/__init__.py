"""Benchmarks that print speed figures: python -m asr.bench.<name>."""
