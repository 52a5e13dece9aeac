"""Evaluation: the kinds of run_lfads that read a trained model and write output files
(posterior samples, prior samples, model parameters), and the figures."""
