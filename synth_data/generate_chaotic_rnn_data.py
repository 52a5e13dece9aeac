"""Generates spiking (or Gaussian) data from a chaotic rate RNN, optionally with input pulses.

One file per dataset at <save_dir>/<datafile_name>_<dataset_name>. With S < N the N
units are split into N // S sessions observing disjoint units, and each session gets PCA-based
alignment matrices (multi-session LFADS).
"""
import os

import numpy as np

from synth_data import synthetic_data_utils
from synth_data.synthetic_data_utils import (add_alignment_projections, gaussify_data,
                                             generate_data, generate_rnn,
                                             get_train_n_valid_inds, nparray_and_transpose,
                                             spikify_data, split_list_by_inds)


def generate_chaotic_rnn_datasets(synth_data_seed=5, T=1.0, C=100, N=50, S=50, npcs=10,
                                  train_percentage=0.8, nreplications=40, g=1.5, x0_std=1.0,
                                  tau=0.025, dt=0.01, input_magnitude=20.0, max_firing_rate=30.0,
                                  noise_type="poisson"):
    """Returns {dataset_name: data dict} with the original's keys (arrays [E, T, S])."""
    if noise_type not in ("poisson", "gaussian"):
        raise ValueError("noise_type must be 'poisson' or 'gaussian', got %r" % noise_type)
    rng = np.random.RandomState(seed=synth_data_seed)
    E = nreplications * C
    nsteps = int(T / dt)

    rnn = generate_rnn(rng, N, g, tau, dt, max_firing_rate)
    # The original asserted this for every N == 50 run; it only holds for seed 5.
    if N == 50 and synth_data_seed == 5:
        assert abs(rnn["W"][0, 0] - 0.06239899) < 1e-8, "Error in random seed?"
    rem_check = nreplications * train_percentage
    assert abs(rem_check - int(round(rem_check))) < 1e-8, \
        "nreplications * train_percentage must be an integer."

    # Condition-major trial order: all replications of condition 0, then condition 1, ...
    x0s = []
    condition_labels = []
    for c in range(C):
        x0_nx1 = x0_std * rng.randn(N, 1)
        x0s.append(np.tile(x0_nx1, nreplications))
        condition_labels.extend([c] * nreplications)
    x0s_nxe = np.concatenate(x0s, axis=1)
    condition_labels = np.array(condition_labels, dtype=np.int64)

    train_inds, valid_inds = get_train_n_valid_inds(E, train_percentage, nreplications)
    ndatasets = N // S
    # Session n observes units n*S ... (n+1)*S - 1.
    P_list = [np.roll(np.eye(S, N), n * S, axis=1) for n in range(ndatasets)]
    shared_rates_exdxt = None
    datasets = {}
    for n in range(ndatasets):
        name = "dataset_N%d_S%d" % (N, S)
        if S < N:
            name += "_n%d" % (n + 1)
        P_sxn = P_list[n]

        if input_magnitude > 0.0:
            # Drawn anew for every session, between the datasets' noise draws.
            input_times = rng.choice(nsteps // 2, size=E) + nsteps // 4
            rates_exsxt, _, inputs_ex1xt = generate_data(
                    rnn, T=T, E=E, x0s=x0s_nxe, P_sxn=P_sxn, input_magnitude=input_magnitude,
                    input_times=input_times)
        else:
            input_times = None
            # Without inputs every session sees the same trajectories, so integrate once and
            # observe all sessions' units together. P holds only 0s and 1s, so each observed
            # value is an exact copy of a unit's rate and slicing equals per-session projection.
            if shared_rates_exdxt is None:
                shared_rates_exdxt, _, _ = generate_data(rnn, T=T, E=E, x0s=x0s_nxe,
                                                         P_sxn=np.concatenate(P_list, axis=0))
            rates_exsxt = shared_rates_exdxt[:, n * S:(n + 1) * S]
            inputs_ex1xt = np.zeros([E, 1, nsteps])
        if noise_type == "poisson":
            noisy_exsxt = spikify_data(rates_exsxt, rng, dt, max_firing_rate)
        else:
            noisy_exsxt = gaussify_data(rates_exsxt, rng, dt, max_firing_rate)

        rates_train, rates_valid = split_list_by_inds(rates_exsxt, train_inds, valid_inds)
        noisy_train, noisy_valid = split_list_by_inds(noisy_exsxt, train_inds, valid_inds)
        inputs_train, inputs_valid = split_list_by_inds(inputs_ex1xt, train_inds, valid_inds)
        labels_train, labels_valid = split_list_by_inds(condition_labels, train_inds, valid_inds)
        if input_times is not None:
            times_train, times_valid = split_list_by_inds(input_times.astype(np.int64),
                                                          train_inds, valid_inds)
        else:
            times_train = np.zeros(0, dtype=np.int64)
            times_valid = np.zeros(0, dtype=np.int64)

        datasets[name] = {
            "train_truth": nparray_and_transpose(rates_train),
            "valid_truth": nparray_and_transpose(rates_valid),
            "input_train_truth": nparray_and_transpose(inputs_train),
            "input_valid_truth": nparray_and_transpose(inputs_valid),
            "train_data": nparray_and_transpose(noisy_train),
            "valid_data": nparray_and_transpose(noisy_valid),
            "train_percentage": train_percentage,
            "nreplications": nreplications,
            "dt": dt,
            "input_magnitude": input_magnitude,
            "input_times_train": times_train,
            "input_times_valid": times_valid,
            "P_sxn": P_sxn,
            "condition_labels_train": labels_train,
            "condition_labels_valid": labels_valid,
            # Multiplies LFADS rates (counts/bin) back to the [0, 1] truth scale (the ITB
            # generator stores the reciprocal).
            "conversion_factor": 1.0 / rnn["conversion_factor"],
        }

    if S < N:
        add_alignment_projections(datasets, npcs=npcs)
    return datasets


# (kind, name, default, help) of every command-line flag.
_FLAGS = [
    ("string", "save_dir", "/tmp/rnn_synth_data_v1.0/", "Folder to write the data to."),
    ("string", "datafile_name", "thits_data", "File name stem of the written data."),
    ("string", "noise_type", "poisson", "Observation noise: poisson or gaussian."),
    ("integer", "synth_data_seed", 5, "Seed of the random number generator."),
    ("float", "T", 1.0, "Trial length in seconds."),
    ("integer", "C", 100, "Number of conditions (initial states)."),
    ("integer", "N", 50, "Number of units of the RNN."),
    ("integer", "S", 50, "Units observed per dataset; N // S datasets are written."),
    ("integer", "npcs", 10, "Principal components for the multi-dataset alignment."),
    ("float", "train_percentage", 4.0 / 5.0, "Fraction of replications used for training."),
    ("integer", "nreplications", 40, "Trials per condition (same rates, new noise)."),
    ("float", "g", 1.5, "Gain of the recurrent weights (chaos for g > 1)."),
    ("float", "x0_std", 1.0, "Standard deviation of the initial states."),
    ("float", "tau", 0.025, "Time constant of the RNN in seconds."),
    ("float", "dt", 0.010, "Bin width (integration step) in seconds."),
    ("float", "input_magnitude", 20.0, "Height of the one-bin input pulse (0: no inputs)."),
    ("float", "max_firing_rate", 30.0, "Firing rate (Hz) that a normalised rate of 1 maps to."),
]


def _define_flags(flag_values=None):
    """Defines this generator's flags (see synthetic_data_utils.define_flags)."""
    return synthetic_data_utils.define_flags(_FLAGS, flag_values)


def main(argv):
    del argv
    from absl import flags
    F = flags.FLAGS
    datasets = generate_chaotic_rnn_datasets(
            synth_data_seed=F.synth_data_seed, T=F.T, C=F.C, N=F.N, S=F.S, npcs=F.npcs,
            train_percentage=F.train_percentage, nreplications=F.nreplications, g=F.g,
            x0_std=F.x0_std, tau=F.tau, dt=F.dt, input_magnitude=F.input_magnitude,
            max_firing_rate=F.max_firing_rate, noise_type=F.noise_type)
    synthetic_data_utils.write_and_report(F.save_dir, F.datafile_name, datasets)


if __name__ == "__main__":
    _define_flags()
    synthetic_data_utils.run_script(main, __doc__, _FLAGS, os.path.basename(__file__))
