"""Benchmarks with their own runner (``python -m bench``) and recorded results (``bench/results/``)."""
