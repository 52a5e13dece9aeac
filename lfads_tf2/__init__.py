"""LFADS for TensorFlow 2: the library modules behind run_lfads.py and lfads.py."""
