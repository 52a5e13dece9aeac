"""Scores of output files: the Neural Latents Benchmark's metrics, rate R² against the
truth, and the `lfads_score` command."""
