"""Shared building blocks of the synthetic data generators.

All randomness comes from a caller-supplied `np.random.RandomState`, and the order of the draws is
part of the interface: the same seed must give exactly the same data as the original generators.
Arrays are kept trial-major, e.g. `rates_exsxt` is [E trials, S channels, T steps]; files store
[E, T, S] (see `nparray_and_transpose`).
"""
import numpy as np

# Trials are integrated in chunks so the [E, N, T] unit trajectories of big sets (multisession:
# 6000 trials x 100 units) never have to sit in memory at once. Trials are independent, so the
# chunk size does not change any number.
_TRIAL_CHUNK = 1000


def generate_rnn(rng, N, g, tau, dt, max_firing_rate):
    """Draws a random rate network: W [N, N], Bin [N], Bin2 [N] (in this order), b = 0.

    `conversion_factor` = expected spikes per bin at rate 1.0 (max_firing_rate * dt).
    """
    W_nxn = rng.randn(N, N) / np.sqrt(N)
    Bin_n = rng.randn(N) / np.sqrt(1.0)
    # Drawn only to keep the original's draw order; never used.
    Bin2_n = rng.randn(N) / np.sqrt(1.0)
    b_n = np.zeros(N)
    return {"N": N, "W": W_nxn, "Bin": Bin_n, "Bin2": Bin2_n, "b": b_n, "g": g, "tau": tau,
            "dt": dt, "max_firing_rate": max_firing_rate,
            "conversion_factor": max_firing_rate / (1.0 / dt)}


def integrate_rnn_loop(rnn, x0_n, nsteps, input_magnitude=0.0, input_time=None):
    """Integrates one trial the original's way; returns r [N, nsteps], u [1, nsteps].

    Slow; kept so tests can check that `integrate_rnn` reproduces it exactly.
    """
    dtdivtau = rnn["dt"] / rnn["tau"]
    W, b, Bin, g = rnn["W"], rnn["b"], rnn["Bin"], rnn["g"]
    x_n = np.array(x0_n, dtype=np.float64)
    r_n = np.tanh(x_n)
    r_nxt = np.zeros([rnn["N"], nsteps])
    u_1xt = np.zeros([1, nsteps])
    for t in range(nsteps):
        x_n = (1.0 - dtdivtau) * x_n + dtdivtau * g * W.dot(r_n) + dtdivtau * b
        if input_time is not None and t == input_time:
            u_1xt[0, t] = input_magnitude
            x_n = x_n + dtdivtau * Bin * u_1xt[0, t]
        r_n = np.tanh(x_n)
        r_nxt[:, t] = r_n
    return r_nxt, u_1xt


def integrate_rnn(rnn, x0s_nxe, nsteps, input_magnitude=0.0, input_times=None):
    """Integrates all trials at once; returns rates r [E, N, nsteps] and inputs u [E, 1, nsteps].

    Bit-identical to `integrate_rnn_loop` trial by trial: every elementwise expression is evaluated
    in the same order with the same scalars, and the recurrent product uses a batched matmul whose
    per-trial matrix-vector products go through the same BLAS routine (gemv) as `W.dot(r)`. This
    matters because the networks are chaotic: a 1-ulp difference grows to ~1e-8 in 100 steps.
    """
    dtdivtau = rnn["dt"] / rnn["tau"]
    W, b, Bin, g = rnn["W"], rnn["b"], rnn["Bin"], rnn["g"]
    E = x0s_nxe.shape[1]
    # Same scalar products, in the same order, as `(1-a)*x + a*g*(W r) + a*b` in the loop.
    decay = 1.0 - dtdivtau
    rec_scale = dtdivtau * g
    bias_n = dtdivtau * b
    pulse_n = dtdivtau * Bin
    x_exnx1 = np.array(x0s_nxe.T, dtype=np.float64)[:, :, None]
    r_exnx1 = np.tanh(x_exnx1)
    r_exnxt = np.zeros([E, rnn["N"], nsteps])
    u_ex1xt = np.zeros([E, 1, nsteps])
    for t in range(nsteps):
        x_exnx1 = decay * x_exnx1 + rec_scale * np.matmul(W, r_exnx1) + bias_n[:, None]
        if input_times is not None:
            pulsed = np.asarray(input_times) == t
            if np.any(pulsed):
                u_ex1xt[pulsed, 0, t] = input_magnitude
                x_exnx1[pulsed] = x_exnx1[pulsed] + pulse_n[:, None] * u_ex1xt[pulsed, :, t:t + 1]
        r_exnx1 = np.tanh(x_exnx1)
        r_exnxt[:, :, t] = r_exnx1[:, :, 0]
    return r_exnxt, u_ex1xt


def normalize_rates(data_exsxt):
    """Min-max scales every (trial, channel) time course to [0, 1]; returns a new array."""
    min_exsx1 = data_exsxt.min(axis=2, keepdims=True)
    max_exsx1 = data_exsxt.max(axis=2, keepdims=True)
    assert np.all(max_exsx1 != min_exsx1), "A channel is constant over a trial; cannot normalise."
    # In place on a copy: same numbers as (data - min) / (max - min), fewer big temporaries.
    normed_exsxt = data_exsxt - min_exsx1
    normed_exsxt /= max_exsx1 - min_exsx1
    return normed_exsxt


def generate_data(rnn, T, E, x0s=None, P_sxn=None, input_magnitude=0.0, input_times=None,
                  nsteps=None):
    """Simulates E trials and observes them through P_sxn.

    Args:
        x0s: initial states [N, E]. P_sxn: observation matrix [S, N] (identity if None).
        input_times: [E] step of the single input pulse per trial, or None for no inputs.
        nsteps: steps to simulate; default int(T / dt) as the original (which rounds
            down: 1.2 / 0.01 gives 119, so callers that add bins pass the count).
    Returns:
        rates_exsxt [E, S, nsteps] normalised per trial and channel to [0, 1],
        x0s [N, E], inputs_ex1xt [E, 1, nsteps].
    """
    N = rnn["N"]
    if nsteps is None:
        nsteps = int(T / rnn["dt"])
    if P_sxn is None:
        P_sxn = np.eye(N)
    if x0s is None:
        x0s = np.zeros([N, E])
    obs_exsxt = np.zeros([E, P_sxn.shape[0], nsteps])
    inputs_ex1xt = np.zeros([E, 1, nsteps])
    units_s = selected_units(P_sxn)
    for start in range(0, E, _TRIAL_CHUNK):
        stop = min(start + _TRIAL_CHUNK, E)
        times = None if input_times is None else np.asarray(input_times)[start:stop]
        r_exnxt, u_ex1xt = integrate_rnn(rnn, x0s[:, start:stop], nsteps, input_magnitude, times)
        if units_s is not None:
            # Observing through 0/1 rows only copies units: indexing gives the same numbers
            # as the product (1 * r plus exact zeros) and is ~20x faster than numpy's
            # broadcast matmul [S, N] @ [E, N, T] (26 s for 2,500 trials of 70 units).
            obs_exsxt[start:stop] = r_exnxt[:, units_s]
        else:
            obs_exsxt[start:stop] = np.matmul(P_sxn, r_exnxt)
        inputs_ex1xt[start:stop] = u_ex1xt
    return normalize_rates(obs_exsxt), x0s, inputs_ex1xt


def selected_units(P_sxn):
    """The unit each row of P observes [S], if every row is one 1 among 0s; else None."""
    P = np.asarray(P_sxn)
    if P.ndim == 2 and np.all((P == 0) | (P == 1)) and np.all(P.sum(axis=1) == 1):
        return np.argmax(P, axis=1)
    return None


def spikify_data(data_exsxt, rng, dt=1.0, max_firing_rate=100.0):
    """Poisson counts with mean rate * max_firing_rate * dt; int64 [E, S, T].

    One vectorised call draws in C order (trial, channel, time), exactly the order of the
    original's per-trial, per-channel calls.
    """
    lam_exsxt = data_exsxt * max_firing_rate
    lam_exsxt *= dt  # same rounding as rate * mfr * dt, evaluated left to right
    return rng.poisson(lam_exsxt).astype(np.int64, copy=False)


def gaussify_data(data_exsxt, rng, dt=1.0, max_firing_rate=100.0):
    """Gaussian observations rate * mfr + N(0, 1) * 5 * mfr * sqrt(dt); float64 [E, S, T].

    The original drew this noise from numpy's global RNG, so its Gaussian data could not be
    reproduced from the seed. We draw from `rng` (trial by trial, channel by channel, in C order),
    which also shifts every later draw of `rng` relative to the original; that is intended.
    """
    noise_std = 5.0 * max_firing_rate * np.sqrt(dt)
    return data_exsxt * max_firing_rate + rng.randn(*data_exsxt.shape) * noise_std


def get_train_n_valid_inds(num_trials, train_fraction, nreplications):
    """Returns (train_inds, valid_inds) of `num_trials` trials.

    Trial i is validation iff (i mod nreplications) + 1 > train_fraction * nreplications.

    Trials are stored condition-major, so every condition gives its last replications to validation.
    """
    train_inds = []
    valid_inds = []
    for i in range(num_trials):
        if (i % nreplications) + 1 > train_fraction * nreplications:
            valid_inds.append(i)
        else:
            train_inds.append(i)
    return np.array(train_inds, dtype=np.int64), np.array(valid_inds, dtype=np.int64)


def split_list_by_inds(data, inds1, inds2):
    """Returns (data[inds1], data[inds2]) for an array indexed along its first axis."""
    data = np.asarray(data)
    return data[inds1], data[inds2]


def nparray_and_transpose(data_axbxc):
    """[A, B, C] (e.g. trials x channels x time) -> contiguous [A, C, B]."""
    return np.ascontiguousarray(np.transpose(np.asarray(data_axbxc), (0, 2, 1)))


def add_alignment_projections(datasets, npcs, ntime=None):
    """Adds `alignment_matrix_cxf` [S, npcs] and `alignment_bias_c` [S] to every dataset (in place).

    The matrices map each session's condition-averaged training counts (PSTHs) onto principal
    components shared across sessions, so that LFADS can start with aligned read-ins.
    """
    channel_spans = {}
    conditions = {}
    for name, data in datasets.items():
        cols = np.nonzero(data["P_sxn"])[1]
        channel_spans[name] = (int(cols.min()), int(cols.max()) + 1)
        conditions[name] = np.unique(data["condition_labels_train"])
    all_conditions = np.unique(np.concatenate(list(conditions.values())))
    if ntime is None:
        ntime = next(iter(datasets.values()))["train_data"].shape[1]
    nchannels = max(stop for _, stop in channel_spans.values())

    # Global [channels, time x conditions] matrix of PSTHs; zeros where a session lacks a condition.
    psth_cxtc = np.zeros([nchannels, ntime * len(all_conditions)])
    for name, data in datasets.items():
        start, stop = channel_spans[name]
        labels = np.asarray(data["condition_labels_train"])
        for cond in conditions[name]:
            k = int(np.searchsorted(all_conditions, cond))
            avg_txs = np.mean(data["train_data"][labels == cond], axis=0)
            psth_cxtc[start:stop, k * ntime:(k + 1) * ntime] = avg_txs.T

    # Light zero-phase boxcar smoothing, only to correlate neighbouring time steps a bit.
    filt_len = 6
    boxcar = np.ones(filt_len) / float(filt_len)
    import scipy.signal  # here, not at the top: it takes 2 s, and --help needs none of it
    psth_cxtc = scipy.signal.filtfilt(boxcar, [1.0], psth_cxtc, axis=1)

    means_c = psth_cxtc.mean(axis=1)
    centred_cxtc = psth_cxtc - means_c[:, None]
    evals, evecs_cxc = np.linalg.eigh(centred_cxtc.dot(centred_cxtc.T))
    order = np.argsort(evals)[::-1]
    pcs_pxtc = evecs_cxc[:, order[:npcs]].T.dot(centred_cxtc)

    for name, data in datasets.items():
        start, stop = channel_spans[name]
        W_sxp = np.linalg.lstsq(centred_cxtc[start:stop].T, pcs_pxtc.T, rcond=None)[0]
        data["alignment_matrix_cxf"] = W_sxp
        data["alignment_bias_c"] = means_c[start:stop]
    return datasets


# ------------------------------------------------------------------ command-line helpers
def define_flags(flag_specs, flag_values=None):
    """Defines (kind, name, default, help) flags on `flag_values` (default: global FLAGS).

    Only called when a generator runs as a script, so tests can import several generators
    in one process. Also accepts the original's old name `--nspikifications`.
    """
    from absl import flags
    fv = flags.FLAGS if flag_values is None else flag_values
    for kind, name, default, help_text in flag_specs:
        getattr(flags, "DEFINE_" + kind)(name, default, help_text, flag_values=fv)
    # The original scripts used both names for the replication count.
    flags.DEFINE_alias("nspikifications", "nreplications", flag_values=fv)
    return fv


def run_script(main, doc, flag_specs, script):
    """Runs a generator script with absl: `--help` prints `doc` and every flag (status 0),
    a bad flag is one line (status 2); see cli.run."""
    from lfads_tf2 import cli
    module = "synth_data." + script[:-len(".py")] if script.endswith(".py") else script
    description = (doc.strip() + "\n\nUsage: python -m %s --flag=value ...\n"
                   "More: synth_data/README.md in the source folder.\n" % module)
    names = [name for _, name, _, _ in flag_specs] + ["nspikifications"]
    cli.run(main, description, [("Flags", names)])


def write_and_report(save_dir, datafile_name, datasets):
    """Writes one file per dataset (no compression, as the original) and prints the paths."""
    import os
    import utils
    utils.write_datasets(save_dir, datafile_name, datasets, compression=None)
    for name in datasets:
        print("Wrote " + os.path.join(save_dir, datafile_name + "_" + name))
