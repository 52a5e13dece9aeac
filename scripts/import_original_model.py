"""Imports a model trained with the original (TF1) LFADS into a save folder of ours.

    python scripts/import_original_model.py SRC OUT [--hps=FILE]

The same as the installed command `lfads_import_original` (lfads_tf2/train/import_original.py).
"""
from lfads_tf2.train import import_original

if __name__ == "__main__":
    import_original.console_main()
