"""Benchmarks. Run from the repo root; see bench/README.md."""
