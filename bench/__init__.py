"""Benchmarks (SPEC §7). Run from the repo root; see bench/README.md."""
