"""Generates spiking data from a trained integration-to-bound (ITB) RNN driven by white noise.

The network's 50 hidden units are mixed by a random matrix P, normalised per trial and
channel to [0, 1] and turned into Poisson counts. The original restored the network from a TF1
checkpoint that no longer exists; we load weights trained by train_itb_rnn.py (see itb_rnn.py).
"""
import os

import numpy as np

from synth_data import synthetic_data_utils
from synth_data.itb_rnn import SAMPLE_CHECKPOINT, load_itb_weights, run_itb_rnn
from synth_data.synthetic_data_utils import (get_train_n_valid_inds, normalize_rates,
                                             nparray_and_transpose, spikify_data,
                                             split_list_by_inds)


def generate_itb_datasets(synth_data_seed=5, T=1.0, C=800, N=50, train_percentage=0.8,
                          nreplications=5, dt=0.01, max_firing_rate=30.0, u_std=0.25,
                          checkpoint_path=SAMPLE_CHECKPOINT, weights=None):
    """Returns {"dataset_N<N>": data dict} with the original's keys (arrays [E, T, N]).

    `weights` (a dict as returned by `load_itb_weights`) overrides `checkpoint_path`.
    """
    if weights is None:
        weights = load_itb_weights(checkpoint_path)
    if weights["Wh"].shape[0] != N:
        raise ValueError("N=%d does not match the network's %d units"
                         % (N, weights["Wh"].shape[0]))
    rng = np.random.RandomState(seed=synth_data_seed)
    u_rng = np.random.RandomState(seed=synth_data_seed + 1)
    nsteps = int(T / dt)
    E = C * nreplications

    P_nxn = rng.randn(N, N) / np.sqrt(N)
    # One input sequence per condition, drawn condition by condition as the original did.
    u_cxt = np.concatenate([u_rng.randn(1, nsteps) * u_std for _ in range(C)], axis=0)
    h_cxtxn, z_cxt = run_itb_rnn(weights, u_cxt)
    r_cxnxt = np.matmul(P_nxn, np.transpose(h_cxtxn, (0, 2, 1)))

    # Replications share the condition's rates and inputs; only the spikes differ. (The original
    # appended one array object per condition and normalised it repeatedly; min-max scaling is
    # idempotent, so normalising once per trial gives the same numbers.)
    rates_exnxt = normalize_rates(np.repeat(r_cxnxt, nreplications, axis=0))
    inputs_ex1xt = np.repeat(u_cxt[:, None, :], nreplications, axis=0)
    outputs_ext = np.repeat(z_cxt, nreplications, axis=0)
    spikes_exnxt = spikify_data(rates_exnxt, rng, dt, max_firing_rate)

    train_inds, valid_inds = get_train_n_valid_inds(E, train_percentage, nreplications)
    rates_train, rates_valid = split_list_by_inds(rates_exnxt, train_inds, valid_inds)
    spikes_train, spikes_valid = split_list_by_inds(spikes_exnxt, train_inds, valid_inds)
    inputs_train, inputs_valid = split_list_by_inds(inputs_ex1xt, train_inds, valid_inds)
    outputs_train, outputs_valid = split_list_by_inds(outputs_ext, train_inds, valid_inds)

    data = {
        "train_truth": nparray_and_transpose(rates_train),
        "valid_truth": nparray_and_transpose(rates_valid),
        "train_data": nparray_and_transpose(spikes_train),
        "valid_data": nparray_and_transpose(spikes_valid),
        "train_percentage": train_percentage,
        "nreplications": nreplications,
        "dt": dt,
        "u_std": u_std,
        "max_firing_rate": max_firing_rate,
        "train_inputs_u": nparray_and_transpose(inputs_train),
        "valid_inputs_u": nparray_and_transpose(inputs_valid),
        "train_outputs_u": outputs_train,
        "valid_outputs_u": outputs_valid,
        # Spikes per bin at rate 1.0, as the original: the reciprocal of the chaotic/labeled
        # convention (lfads_tf2.evaluate.figures.truth_scale tells them apart).
        "conversion_factor": max_firing_rate * dt,
    }
    return {"dataset_N%d" % N: data}


# (kind, name, default, help) of every command-line flag.
_FLAGS = [
    ("string", "save_dir", "/tmp/rnn_synth_data_v1.0/", "Folder to write the data to."),
    ("string", "datafile_name", "itb_rnn", "File name stem of the written data."),
    ("integer", "synth_data_seed", 5, "Seed of the random number generators."),
    ("float", "T", 1.0, "Trial length in seconds."),
    ("integer", "C", 800, "Number of conditions (input sequences)."),
    ("integer", "N", 50, "Number of units; must match the trained network."),
    ("float", "train_percentage", 4.0 / 5.0, "Fraction of replications used for training."),
    ("integer", "nreplications", 5, "Spike-noise replications per condition."),
    ("float", "tau", 0.025, "Unused; kept for command-line compatibility."),
    ("float", "dt", 0.010, "Bin width in seconds."),
    ("float", "max_firing_rate", 30.0, "Firing rate (Hz) that a normalised rate of 1 maps to."),
    ("float", "u_std", 0.25, "Standard deviation of the white-noise input per step."),
    ("string", "checkpoint_path", SAMPLE_CHECKPOINT,
     "ITB network weights: SAMPLE_CHECKPOINT (the shipped trained_itb/itb_rnn_weights.npz), "
     "an .npz file, or a TF1 checkpoint prefix."),
]


def _define_flags(flag_values=None):
    """Defines this generator's flags (see synthetic_data_utils.define_flags)."""
    return synthetic_data_utils.define_flags(_FLAGS, flag_values)


def main(argv):
    del argv
    from absl import flags
    F = flags.FLAGS
    datasets = generate_itb_datasets(
            synth_data_seed=F.synth_data_seed, T=F.T, C=F.C, N=F.N,
            train_percentage=F.train_percentage, nreplications=F.nreplications, dt=F.dt,
            max_firing_rate=F.max_firing_rate, u_std=F.u_std, checkpoint_path=F.checkpoint_path)
    synthetic_data_utils.write_and_report(F.save_dir, F.datafile_name, datasets)


if __name__ == "__main__":
    _define_flags()
    synthetic_data_utils.run_script(main, __doc__, _FLAGS, os.path.basename(__file__))
