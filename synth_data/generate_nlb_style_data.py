"""Generates data laid out as the Neural Latents Benchmark's: a chaotic rate RNN (no inputs)
whose N units are N - n_heldout held-in and n_heldout held-out neurons, observed for T
seconds plus T_forward seconds of forward bins, with condition labels.

`<split>_data` holds the held-in neurons over the first T seconds (what the model reads);
`<split>_recon_data` all neurons over all bins, its first bins and neurons equal to
`<split>_data`; `<split>_truth` the rates of all of them in [0, 1] (counts/bin = truth /
conversion_factor, as the chaotic sets). --ntrain keeps fewer training trials from the same
simulation, so sets of different sizes share the RNN, the conditions and the validation
trials.
"""
import os

import numpy as np

from synth_data import synthetic_data_utils
from synth_data.synthetic_data_utils import (generate_data, generate_rnn,
                                             get_train_n_valid_inds, nparray_and_transpose,
                                             spikify_data)


def _keep_train(train_inds, nreplications, ntrain, C):
    """The first ntrain // C training trials of each condition (all if ntrain is 0 or
    more than there are); trials are condition-major."""
    if ntrain <= 0 or ntrain >= len(train_inds):
        if ntrain > len(train_inds):
            print("note: --ntrain=%d but only %d training trials; keeping all"
                  % (ntrain, len(train_inds)))
        return train_inds
    if ntrain % C:
        raise ValueError("--ntrain=%d must be a multiple of --C=%d (the same number of "
                         "training trials per condition)" % (ntrain, C))
    rep = train_inds % nreplications  # replication of each trial within its condition
    return train_inds[rep < ntrain // C]


def generate_nlb_style_datasets(synth_data_seed=5, T=1.0, T_forward=0.2, C=50, N=70,
                                n_heldout=20, nreplications=50, train_percentage=0.8,
                                ntrain=0, g=1.5, x0_std=1.0, tau=0.025, dt=0.01,
                                max_firing_rate=30.0):
    """Returns {dataset_name: data dict}; arrays [E, T, D] as the other generators."""
    if not 0 < n_heldout < N:
        raise ValueError("--n_heldout=%d must lie in [1, N - 1] with N=%d" % (n_heldout, N))
    rng = np.random.RandomState(seed=synth_data_seed)
    E = nreplications * C
    # round, not int(): 0.2 / 0.01 is 19.999...
    t_heldin, t_forward = int(round(T / dt)), int(round(T_forward / dt))
    n_heldin = N - n_heldout
    rnn = generate_rnn(rng, N, g, tau, dt, max_firing_rate)
    rem_check = nreplications * train_percentage
    assert abs(rem_check - int(round(rem_check))) < 1e-8, \
        "nreplications * train_percentage must be an integer."

    # Condition-major trial order, as the chaotic sets: all replications of condition 0, ...
    x0s_nxe = np.concatenate([np.tile(x0_std * rng.randn(N, 1), nreplications)
                              for _ in range(C)], axis=1)
    condition_labels = np.repeat(np.arange(C, dtype=np.int64), nreplications)
    train_inds, valid_inds = get_train_n_valid_inds(E, train_percentage, nreplications)
    # Every trial is simulated and spikified before any is dropped, so that smaller
    # training sets are subsets of larger ones with identical validation trials.
    rates_exnxt, _, _ = generate_data(rnn, T=T + T_forward, E=E, x0s=x0s_nxe,
                                      nsteps=t_heldin + t_forward)
    spikes_exnxt = spikify_data(rates_exnxt, rng, dt, max_firing_rate)
    train_inds = _keep_train(train_inds, nreplications, ntrain, C)

    out = {}
    for split, inds in (("train", train_inds), ("valid", valid_inds)):
        counts_etn = nparray_and_transpose(spikes_exnxt[inds])
        out[split + "_recon_data"] = counts_etn
        out[split + "_data"] = np.ascontiguousarray(counts_etn[:, :t_heldin, :n_heldin])
        out[split + "_truth"] = nparray_and_transpose(rates_exnxt[inds])
        out["condition_labels_" + split] = condition_labels[inds]
        out[split + "_inds"] = inds
    out.update({
        "train_percentage": train_percentage,
        "nreplications": nreplications,
        "dt": dt,
        # Multiplies LFADS rates (counts/bin) back to the [0, 1] truth scale, as the
        # chaotic sets.
        "conversion_factor": 1.0 / rnn["conversion_factor"],
    })
    return {"dataset_N%d_heldin%d" % (N, n_heldin): out}


# (kind, name, default, help) of every command-line flag.
_FLAGS = [
    ("string", "save_dir", "/tmp/rnn_synth_data_v1.0/", "Folder to write the data to."),
    ("string", "datafile_name", "chaotic_rnn_nlb", "File name stem of the written data."),
    ("integer", "synth_data_seed", 5, "Seed of the random number generator."),
    ("float", "T", 1.0, "Held-in part of a trial in seconds (the bins the model reads)."),
    ("float", "T_forward", 0.2, "Forward-prediction bins after it, in seconds."),
    ("integer", "C", 50, "Number of conditions (initial states)."),
    ("integer", "N", 70, "Number of units of the RNN, all observed as neurons."),
    ("integer", "n_heldout", 20, "The last n_heldout neurons are held out."),
    ("float", "train_percentage", 4.0 / 5.0, "Fraction of replications used for training."),
    ("integer", "nreplications", 50, "Trials per condition (same rates, new noise)."),
    ("integer", "ntrain", 0, "Keep only this many training trials, the first ntrain / C of "
     "each condition (a multiple of C; 0: all)."),
    ("float", "g", 1.5, "Gain of the recurrent weights (chaos for g > 1)."),
    ("float", "x0_std", 1.0, "Standard deviation of the initial states."),
    ("float", "tau", 0.025, "Time constant of the RNN in seconds."),
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
    datasets = generate_nlb_style_datasets(
            synth_data_seed=F.synth_data_seed, T=F.T, T_forward=F.T_forward, C=F.C, N=F.N,
            n_heldout=F.n_heldout, nreplications=F.nreplications,
            train_percentage=F.train_percentage, ntrain=F.ntrain, g=F.g, x0_std=F.x0_std,
            tau=F.tau, dt=F.dt, max_firing_rate=F.max_firing_rate)
    synthetic_data_utils.write_and_report(F.save_dir, F.datafile_name, datasets)


if __name__ == "__main__":
    _define_flags()
    synthetic_data_utils.run_script(main, __doc__, _FLAGS, os.path.basename(__file__))
