"""Generates spiking data from two chaotic RNNs, with the trial's RNN label as external input.

Every trial is simulated in both networks (A and B) from the same initial state; the
trial keeps the rates/spikes of the network picked by a random 0/1 label, and that label, held
constant over time, is the external input [E, T, 1].
"""
import os

import numpy as np

from synth_data import synthetic_data_utils
from synth_data.synthetic_data_utils import (generate_data, generate_rnn, get_train_n_valid_inds,
                                             nparray_and_transpose, spikify_data,
                                             split_list_by_inds)


def generate_labeled_rnn_datasets(synth_data_seed=5, T=1.0, C=400, N=50, train_percentage=0.8,
                                  nreplications=10, g=1.5, x0_std=1.0, tau=0.025, dt=0.01,
                                  max_firing_rate=30.0):
    """Returns {"dataset_N<N>": data dict} with the original's keys (arrays [E, T, N])."""
    rng = np.random.RandomState(seed=synth_data_seed)
    # Each network has its own generator, so A and B do not depend on the main draw order.
    rnn_a = generate_rnn(np.random.RandomState(seed=synth_data_seed + 1), N, g, tau, dt,
                         max_firing_rate)
    rnn_b = generate_rnn(np.random.RandomState(seed=synth_data_seed + 2), N, g, tau, dt,
                         max_firing_rate)
    nsteps = int(T / dt)
    E = C * nreplications

    # Draw order from rng: labels, initial states, projection, spikes of A, spikes of B.
    rnn_to_use = rng.randint(2, size=E).astype(np.int64)
    ext_input_ext = np.repeat(rnn_to_use[:, None], nsteps, axis=1)

    x0s = []
    condition_labels = []
    for c in range(C):
        x0_nx1 = x0_std * rng.randn(N, 1)
        x0s.append(np.tile(x0_nx1, nreplications))
        condition_labels.extend([c] * nreplications)
    x0s_nxe = np.concatenate(x0s, axis=1)
    condition_labels = np.array(condition_labels, dtype=np.int64)

    P_nxn = rng.randn(N, N) / np.sqrt(N)

    rates_a, _, _ = generate_data(rnn_a, T=T, E=E, x0s=x0s_nxe, P_sxn=P_nxn)
    spikes_a = spikify_data(rates_a, rng, dt, max_firing_rate)
    rates_b, _, _ = generate_data(rnn_b, T=T, E=E, x0s=x0s_nxe, P_sxn=P_nxn)
    spikes_b = spikify_data(rates_b, rng, dt, max_firing_rate)

    use_b = rnn_to_use.astype(bool)[:, None, None]
    rates_exnxt = np.where(use_b, rates_b, rates_a)
    spikes_exnxt = np.where(use_b, spikes_b, spikes_a)

    train_inds, valid_inds = get_train_n_valid_inds(E, train_percentage, nreplications)
    rates_train, rates_valid = split_list_by_inds(rates_exnxt, train_inds, valid_inds)
    spikes_train, spikes_valid = split_list_by_inds(spikes_exnxt, train_inds, valid_inds)
    labels_train, labels_valid = split_list_by_inds(condition_labels, train_inds, valid_inds)
    ext_train, ext_valid = split_list_by_inds(ext_input_ext, train_inds, valid_inds)

    data = {
        "train_truth": nparray_and_transpose(rates_train),
        "valid_truth": nparray_and_transpose(rates_valid),
        "train_data": nparray_and_transpose(spikes_train),
        "valid_data": nparray_and_transpose(spikes_valid),
        "train_ext_input": ext_train[:, :, None],
        "valid_ext_input": ext_valid[:, :, None],
        "train_percentage": train_percentage,
        "nreplications": nreplications,
        "dt": dt,
        "P_sxn": P_nxn,
        "condition_labels_train": labels_train,
        "condition_labels_valid": labels_valid,
        # Multiplies LFADS rates (counts/bin) back to the [0, 1] truth scale (the ITB
        # generator stores the reciprocal).
        "conversion_factor": 1.0 / rnn_a["conversion_factor"],
    }
    return {"dataset_N%d" % N: data}


# (kind, name, default, help) of every command-line flag.
_FLAGS = [
    ("string", "save_dir", "/tmp/rnn_synth_data_v1.0/", "Folder to write the data to."),
    ("string", "datafile_name", "conditioned_rnn_data", "File name stem of the written data."),
    ("integer", "synth_data_seed", 5, "Seed of the random number generators."),
    ("float", "T", 1.0, "Trial length in seconds."),
    ("integer", "C", 400, "Number of conditions (initial states)."),
    ("integer", "N", 50, "Number of units of each RNN (all are observed)."),
    ("float", "train_percentage", 4.0 / 5.0, "Fraction of replications used for training."),
    ("integer", "nreplications", 10, "Trials per condition."),
    ("float", "g", 1.5, "Gain of the recurrent weights (chaos for g > 1)."),
    ("float", "x0_std", 1.0, "Standard deviation of the initial states."),
    ("float", "tau", 0.025, "Time constant of the RNNs in seconds."),
    ("float", "dt", 0.010, "Bin width (integration step) in seconds."),
    ("float", "max_firing_rate", 30.0, "Firing rate (Hz) that a normalised rate of 1 maps to."),
]


def _define_flags(flag_values=None):
    """Defines this generator's flags (see synthetic_data_utils.define_flags)."""
    return synthetic_data_utils.define_flags(_FLAGS, flag_values)


def main(argv):
    del argv
    from absl import flags
    F = flags.FLAGS
    datasets = generate_labeled_rnn_datasets(
            synth_data_seed=F.synth_data_seed, T=F.T, C=F.C, N=F.N,
            train_percentage=F.train_percentage, nreplications=F.nreplications, g=F.g,
            x0_std=F.x0_std, tau=F.tau, dt=F.dt, max_firing_rate=F.max_firing_rate)
    synthetic_data_utils.write_and_report(F.save_dir, F.datafile_name, datasets)


if __name__ == "__main__":
    _define_flags()
    synthetic_data_utils.run_script(main, __doc__, _FLAGS, os.path.basename(__file__))
