"""Hyperparameter search: the search space, one trial, the history of a search, and
the `lfads_tune` command (the only code that imports Ray)."""
