"""Training: the flag schema and hyperparameters, TensorFlow's runtime settings, the
compiled steps, the optimizer, the epoch loop and the checkpoints it writes."""
