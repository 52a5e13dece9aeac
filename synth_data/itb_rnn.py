"""The integration-to-bound (ITB) network in numpy: weights I/O, forward pass, target.

Network (50 units): h_t = tanh(h_{t-1} Wh + b + u_t Bu), z_t = h_t Wro + bro, h_{-1} = 0.
It was trained (train_itb_rnn.py) to output the running sum of its noise input clipped to [-1, 1].
"""
import os

import numpy as np

WEIGHT_KEYS = ("Wh", "b", "Bu", "Wro", "bro")
DEFAULT_WEIGHTS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                    "trained_itb", "itb_rnn_weights.npz")
# The original's placeholder for "use the shipped network".
SAMPLE_CHECKPOINT = "SAMPLE_CHECKPOINT"


def itb_target(u_bxt):
    """Running sum of the input clipped to [-1, 1]; [B, T] -> [B, T]."""
    return np.clip(np.cumsum(u_bxt, axis=1), -1.0, 1.0)


def _load_tf1_checkpoint(path):
    """Reads a TF1 checkpoint holding the five unnamed variables `Variable` ... `Variable_4`."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(path)
    names = ["Variable"] + ["Variable_%d" % i for i in range(1, 5)]
    return {key: reader.get_tensor(name) for key, name in zip(WEIGHT_KEYS, names)}


def load_itb_weights(checkpoint_path=SAMPLE_CHECKPOINT):
    """Loads {Wh [N,N], b [1,N], Bu [1,N], Wro [N,1], bro [1]} as float64.

    Accepts SAMPLE_CHECKPOINT (the shipped weights), an .npz file (or a path that gives one when
    '.npz' is appended), or a TF1 checkpoint prefix such as the original's
    `trained_itb/model-65000`.
    """
    if checkpoint_path in (None, "", SAMPLE_CHECKPOINT):
        checkpoint_path = DEFAULT_WEIGHTS_PATH
    if not checkpoint_path.endswith(".npz") and os.path.isfile(checkpoint_path + ".npz"):
        checkpoint_path += ".npz"
    if os.path.isfile(checkpoint_path) and checkpoint_path.endswith(".npz"):
        with np.load(checkpoint_path) as f:
            weights = {key: f[key] for key in WEIGHT_KEYS}
    elif os.path.isfile(checkpoint_path + ".index"):
        weights = _load_tf1_checkpoint(checkpoint_path)
    else:
        raise FileNotFoundError("ITB weights not found: %s (expected an .npz file or a TF1 "
                                "checkpoint prefix)" % checkpoint_path)
    weights = {key: np.asarray(value, dtype=np.float64) for key, value in weights.items()}
    N = weights["Wh"].shape[0]
    expected = {"Wh": (N, N), "b": (1, N), "Bu": (1, N), "Wro": (N, 1), "bro": (1,)}
    for key, shape in expected.items():
        if weights[key].shape != shape:
            raise ValueError("%s: %s has shape %s, expected %s"
                             % (checkpoint_path, key, weights[key].shape, shape))
    return weights


def save_itb_weights(path, weights):
    """Writes the five weight arrays (float32) to an .npz file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez(path, **{key: np.asarray(weights[key], dtype=np.float32) for key in WEIGHT_KEYS})


def run_itb_rnn(weights, u_bxt):
    """Runs the network on a batch of input sequences.

    Returns hidden states h [B, T, N] and outputs z [B, T] (float64).
    """
    Wh, b, Bu = weights["Wh"], weights["b"], weights["Bu"]
    B, T = u_bxt.shape
    N = Wh.shape[0]
    h_bxn = np.zeros([B, N])
    h_bxtxn = np.zeros([B, T, N])
    for t in range(T):
        h_bxn = np.tanh(h_bxn.dot(Wh) + b + u_bxt[:, t:t + 1] * Bu)
        h_bxtxn[:, t] = h_bxn
    z_bxt = h_bxtxn.dot(weights["Wro"])[:, :, 0] + weights["bro"]
    return h_bxtxn, z_bxt


def integration_quality(weights, nseqs=1000, T=100, u_std=0.25, seed=0):
    """Returns (MSE, R^2) of the outputs vs `itb_target` on `nseqs` fresh input sequences."""
    u_bxt = np.random.RandomState(seed).randn(nseqs, T) * u_std
    _, z_bxt = run_itb_rnn(weights, u_bxt)
    target_bxt = itb_target(u_bxt)
    mse = float(np.mean((z_bxt - target_bxt) ** 2))
    r2 = 1.0 - mse / float(np.var(target_bxt))
    return mse, r2
