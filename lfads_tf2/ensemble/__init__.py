"""Ensembles: several seeds of one model trained side by side as run_lfads processes
(members.py), their posterior rates averaged (average.py), and the `lfads_ensemble`
command (flags, checks, dispatch). Sits at the top beside lfads_tf2.search: it runs
run_lfads as a separate process and never imports it."""
