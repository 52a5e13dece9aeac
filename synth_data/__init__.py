"""Synthetic data generators for LFADS (chaotic RNN, integration to bound, labeled RNNs)."""
