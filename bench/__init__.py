"""Load benchmarks (`make bench`); the app imports bench.baseline only when asked to."""
