"""Generates synthetic calcium-imaging data: a chaotic rate RNN (no inputs) whose N units
are N neurons, Poisson spikes, a calcium indicator with AR(1) decay, noisy fluorescence
frames, and their non-negative deconvolution, a sparse trace that is exactly zero in most
frames. The deconvolved traces are what a zero-inflated gamma (ZIG) observation model reads
(RADICaL: Zhu et al., Nature Neuroscience 2022).

`<split>_data` holds the deconvolved traces [E, T, N] (float32, in spikes: one spike's
calcium jump is 1), optionally with missing entries as NaN; `<split>_truth` the true Poisson
rates in expected spikes per bin (conversion_factor 1.0); `<split>_spikes` the true counts.
--missing_fraction and --missing_neuron_fraction blank entries without changing any other
number, so sets with and without missing entries from the same seed share their observed
entries.
"""
import os

import numpy as np

from synth_data import synthetic_data_utils
from synth_data.synthetic_data_utils import (generate_data, generate_rnn,
                                             get_train_n_valid_inds, nparray_and_transpose,
                                             spikify_data)

# The fluorescence F = baseline + amplitude * (c + noise_std * eps) is in units where the
# resting fluorescence is 1 and one spike adds 0.2 (dF/F of 20 %, GCaMP6-like). The
# deconvolution knows both, as a pipeline that estimated them well would.
FLUORESCENCE_BASELINE = 1.0
SPIKE_AMPLITUDE = 0.2
# Traces deconvolved at once (see deconvolve_ar1); does not change any number.
_TRACE_CHUNK = 4096


def calcium_decay(tau_calcium, dt):
    """The indicator's decay per frame, gamma = exp(-dt / tau_calcium)."""
    return float(np.exp(-dt / tau_calcium))


def calcium_trace(spikes_mxt, gamma, c_init_m):
    """Calcium concentration c [M, T] of M traces: c_t = gamma * c_{t-1} + spikes_t, with
    c_{-1} = c_init [M] (in spikes: one spike raises c by 1)."""
    spikes_mxt = np.asarray(spikes_mxt, dtype=np.float64)
    c_mxt = np.empty_like(spikes_mxt)
    c_m = np.asarray(c_init_m, dtype=np.float64)
    for t in range(spikes_mxt.shape[1]):  # T is short; each step is vectorised over M
        c_m = gamma * c_m + spikes_mxt[:, t]
        c_mxt[:, t] = c_m
    return c_mxt


def _oasis_pools(z_mxt, gamma):
    """Pools of the projection of z [M, T] onto {c : c_0 >= 0, c_t >= gamma c_{t-1}}.

    The pool-adjacent-violators scheme of OASIS (Friedrich et al. 2017), run for all M
    traces at once: frame by frame a new pool is pushed, and a pool whose value v is below
    gamma^l times its predecessor's (a negative spike between them) is merged into it,
    until no pool violates. A pool of length l starting at frame t holds c = v gamma^k,
    k < l, with v = a / w, a = sum_k gamma^k z_{t+k}, w = sum_k gamma^{2k} (least
    squares); only the first pool is clipped at 0 (c_0 >= 0). Returns (v, length, top):
    [M, T] values and lengths of the pools 0..top[m] of each trace.
    """
    M, T = z_mxt.shape
    g_pow = gamma ** np.arange(T + 1)
    a, w, v = np.zeros((M, T)), np.zeros((M, T)), np.zeros((M, T))
    length = np.zeros((M, T), dtype=np.int64)
    top = np.full(M, -1, dtype=np.int64)
    rows = np.arange(M)
    for t in range(T):
        top += 1
        a[rows, top], w[rows, top], length[rows, top] = z_mxt[:, t], 1.0, 1
        v[rows, top] = z_mxt[:, t] if t else np.maximum(z_mxt[:, t], 0.0)
        m = rows if t else rows[:0]
        while m.size:
            # Only traces that merged can violate again, so the loop shrinks quickly.
            p = top[m] - 1
            m = m[v[m, p + 1] < g_pow[length[m, p]] * v[m, p]]
            if not m.size:
                break
            p = top[m] - 1
            gl = g_pow[length[m, p]]
            a[m, p] += gl * a[m, p + 1]
            w[m, p] += gl * gl * w[m, p + 1]
            length[m, p] += length[m, p + 1]
            v[m, p] = np.where(p == 0, np.maximum(a[m, p] / w[m, p], 0.0), a[m, p] / w[m, p])
            top[m] -= 1
            m = m[top[m] >= 1]
    return v, length, top


def deconvolve_ar1(y_mxt, gamma, l1_penalty=0.0, s_min=0.0):
    """Non-negative AR(1) deconvolution of M traces y [M, T] (fluorescence minus baseline,
    in units of one spike's amplitude); returns (s, c) [M, T].

    Solves, per trace, exactly (Friedrich et al. 2017, OASIS):
        min_{c, s} 1/2 ||y - c||^2 + l1_penalty * sum_t s_t,
        s_t = c_t - gamma c_{t-1} >= 0 (t >= 1), s_0 = c_0 >= 0,
    i.e. non-negative least squares of y on the AR(1) kernel with an L1 penalty (the same
    solution as scipy.optimize.nnls on [kernel | gamma^t] and y - l1_penalty * d, but
    vectorised over traces: about 50x faster). As the penalty on s is linear in c, the
    problem is the projection of z = y - l1_penalty * d, d_t = 1 - gamma (d_{T-1} = 1),
    onto the cone above. s is exactly 0 inside each pool; spikes below s_min are set to 0
    afterwards, so that non-zero values are at least s_min (the ZIG model's support).
    The first frame's s_0 takes all of c_0 (the calcium before the trace is unknown), so
    callers deconvolve a burn-in before the frames they keep.

    Why not threshold the inverse filter y_t - gamma y_{t-1}, the simplest deconvolution:
    it sees one frame per spike and amplifies the noise (std sqrt(1 + gamma^2) noise_std),
    where the least-squares fit weighs the whole decay. On this generator's defaults, at
    the same ~93 % of spikes found (within a frame), 26 % of the inverse filter's events
    are false against 2 % of this one's.
    """
    y_mxt = np.asarray(y_mxt, dtype=np.float64)
    s_mxt, c_mxt = np.empty_like(y_mxt), np.empty_like(y_mxt)
    # Traces are independent; chunks keep the pools' working set in cache (about 2x faster
    # than all 50,000 traces of the default set at once) and bound the memory.
    for start in range(0, y_mxt.shape[0], _TRACE_CHUNK):
        rows = slice(start, start + _TRACE_CHUNK)
        s_mxt[rows], c_mxt[rows] = _deconvolve_chunk(y_mxt[rows], gamma, l1_penalty, s_min)
    return s_mxt, c_mxt


def _deconvolve_chunk(y_mxt, gamma, l1_penalty, s_min):
    """deconvolve_ar1 of the M traces y [M, T] at once; returns (s, c) [M, T]."""
    M, T = y_mxt.shape
    d_t = np.full(T, 1.0 - gamma)
    d_t[-1] = 1.0
    v, length, top = _oasis_pools(y_mxt - l1_penalty * d_t, gamma)
    # Pool starts from the lengths of the live pools 0..top (entries above are stale).
    live = np.arange(T)[None, :] <= top[:, None]
    length = np.where(live, length, 0)
    starts = np.cumsum(length, axis=1) - length
    is_start = np.zeros((M, T), dtype=bool)
    is_start[np.nonzero(live)[0], starts[live]] = True
    pool = np.cumsum(is_start, axis=1) - 1
    k = np.arange(T)[None, :] - np.take_along_axis(starts, pool, axis=1)
    c_mxt = np.take_along_axis(v, pool, axis=1) * gamma ** k
    s_mxt = np.zeros((M, T))
    s_mxt[:, 0] = c_mxt[:, 0]
    # Exact zeros inside pools (c_t - gamma c_{t-1} there is only rounding); the maximum
    # only removes rounding below 0 at pool starts.
    jump = np.maximum(c_mxt[:, 1:] - gamma * c_mxt[:, :-1], 0.0)
    s_mxt[:, 1:] = np.where(is_start[:, 1:], jump, 0.0)
    s_mxt[s_mxt < s_min] = 0.0
    return s_mxt, c_mxt


def _check_fractions(missing_fraction, missing_neuron_fraction):
    for name, frac in (("missing_fraction", missing_fraction),
                       ("missing_neuron_fraction", missing_neuron_fraction)):
        if not 0.0 <= frac < 1.0:
            raise ValueError("--%s=%g must lie in [0, 1)" % (name, frac))


def missing_mask(rng, E, T, N, missing_fraction=0.0, missing_neuron_fraction=0.0):
    """Boolean [E, T, N], True where an entry is missing: each entry with probability
    missing_fraction, and each neuron's whole trial with probability
    missing_neuron_fraction (as a neuron outside the field of view in some trials).

    Both uniform arrays are always drawn (entries, then neurons) and thresholded, so the
    draws do not depend on the fractions: a smaller fraction's mask is a subset of a
    larger one's.
    """
    _check_fractions(missing_fraction, missing_neuron_fraction)
    entry_u = rng.uniform(size=(E, T, N))
    neuron_u = rng.uniform(size=(E, N))
    return (entry_u < missing_fraction) | (neuron_u < missing_neuron_fraction)[:, None, :]


def _simulate(rng, rnn, x0s_nxe, nsteps, nburn, gamma, noise_std):
    """Rates, spikes, calcium and noisy calcium of all trials, burn-in first.

    Returns rates [E, N, nsteps] (normalised to [0, 1]), counts [E, N, nburn + nsteps],
    calcium c and y = c + noise_std * eps [E, N, nburn + nsteps] (fluorescence minus
    baseline over the spike amplitude).
    """
    E = x0s_nxe.shape[1]
    rates_exnxt, _, _ = generate_data(rnn, T=None, E=E, x0s=x0s_nxe, nsteps=nsteps)
    # The burn-in holds each trial's first rate, and the calcium before it starts at that
    # rate's steady state (its expectation, lambda / (1 - gamma)), so trials do not start
    # at an empty indicator and the deconvolution sees what came before the first frame.
    burn_exnxb = np.repeat(rates_exnxt[:, :, :1], nburn, axis=2)
    spikes_exnxt = spikify_data(np.concatenate([burn_exnxb, rates_exnxt], axis=2), rng,
                                rnn["dt"], rnn["max_firing_rate"])
    lam0_en = rates_exnxt[:, :, 0] * rnn["max_firing_rate"] * rnn["dt"]
    c_mxt = calcium_trace(spikes_exnxt.reshape(E * rnn["N"], -1), gamma,
                          lam0_en.reshape(-1) / (1.0 - gamma))
    c_exnxt = c_mxt.reshape(spikes_exnxt.shape)
    y_exnxt = c_exnxt + noise_std * rng.randn(*c_exnxt.shape)
    return rates_exnxt, spikes_exnxt, c_exnxt, y_exnxt


def generate_calcium_datasets(synth_data_seed=5, T=1.0, C=50, N=50, nreplications=20,
                              train_percentage=0.8, g=1.5, x0_std=1.0, tau=0.025, dt=0.01,
                              max_firing_rate=30.0, tau_calcium=0.3, noise_std=0.3,
                              burn_in=0.3, deconv_l1=0.1, deconv_threshold=1.5,
                              missing_fraction=0.0, missing_neuron_fraction=0.0,
                              save_fluorescence=False):
    """Returns {dataset_name: data dict}; arrays [E, T, N] as the other generators.

    noise_std is the fluorescence noise in units of one spike's amplitude; deconv_l1 the
    L1 penalty of the deconvolution (same units); deconv_threshold * noise_std its s_min.
    Draws of the seeded RandomState, in order: the RNN, the initial states, the spikes
    (burn-in and trial), the fluorescence noise, the missing-entry masks (always drawn).
    """
    _check_fractions(missing_fraction, missing_neuron_fraction)  # before the slow part
    rng = np.random.RandomState(seed=synth_data_seed)
    E = nreplications * C
    nsteps, nburn = int(round(T / dt)), int(round(burn_in / dt))
    rnn = generate_rnn(rng, N, g, tau, dt, max_firing_rate)
    rem_check = nreplications * train_percentage
    assert abs(rem_check - int(round(rem_check))) < 1e-8, \
        "nreplications * train_percentage must be an integer."
    # Condition-major trial order, as the chaotic sets: all replications of condition 0, ...
    x0s_nxe = np.concatenate([np.tile(x0_std * rng.randn(N, 1), nreplications)
                              for _ in range(C)], axis=1)
    condition_labels = np.repeat(np.arange(C, dtype=np.int64), nreplications)
    train_inds, valid_inds = get_train_n_valid_inds(E, train_percentage, nreplications)
    gamma = calcium_decay(tau_calcium, dt)
    rates_exnxt, spikes_exnxt, _, y_exnxt = _simulate(rng, rnn, x0s_nxe, nsteps, nburn,
                                                      gamma, noise_std)
    s_mxt, _ = deconvolve_ar1(y_exnxt.reshape(E * N, -1), gamma, deconv_l1,
                              deconv_threshold * noise_std)
    # The burn-in only gave the deconvolution the frames before the trial; dropped here.
    deconv_etn = nparray_and_transpose(s_mxt.reshape(E, N, -1)[:, :, nburn:])
    deconv_etn = deconv_etn.astype(np.float32)
    deconv_etn[missing_mask(rng, E, nsteps, N, missing_fraction,
                            missing_neuron_fraction)] = np.nan

    out = {}
    for split, inds in (("train", train_inds), ("valid", valid_inds)):
        out[split + "_data"] = deconv_etn[inds]
        # Expected spikes per bin, computed as spikify_data computes its Poisson means.
        lam_exnxt = rates_exnxt[inds] * max_firing_rate
        lam_exnxt *= dt
        out[split + "_truth"] = nparray_and_transpose(lam_exnxt)
        out[split + "_spikes"] = nparray_and_transpose(spikes_exnxt[inds, :, nburn:])
        if save_fluorescence:
            fluor = FLUORESCENCE_BASELINE + SPIKE_AMPLITUDE * y_exnxt[inds, :, nburn:]
            out[split + "_fluorescence"] = nparray_and_transpose(fluor).astype(np.float32)
        out["condition_labels_" + split] = condition_labels[inds]
        out[split + "_inds"] = inds
    out.update({
        "train_percentage": train_percentage, "nreplications": nreplications, "dt": dt,
        # truth is already in expected spikes per bin, the unit of LFADS's rates.
        "conversion_factor": 1.0,
        "tau_calcium": tau_calcium, "calcium_decay": gamma, "noise_std": noise_std,
        "burn_in": burn_in, "deconv_l1": deconv_l1,
        "deconv_s_min": deconv_threshold * noise_std,
        "missing_fraction": missing_fraction,
        "missing_neuron_fraction": missing_neuron_fraction,
        "fluorescence_baseline": FLUORESCENCE_BASELINE, "spike_amplitude": SPIKE_AMPLITUDE,
    })
    return {"dataset_N%d" % N: out}


def describe(data):
    """One line on a generated set: the fraction of exact zeros and of NaN among the
    training entries, and the mean over neurons of the correlation between the
    condition-averaged training data (NaN ignored) and the true rates."""
    x_etn, truth_etn = data["train_data"], data["train_truth"]
    labels = data["condition_labels_train"]
    observed = ~np.isnan(x_etn)
    conds = np.unique(labels)
    psth_ctn = np.stack([np.nanmean(x_etn[labels == c], axis=0) for c in conds])
    # Trials of a condition share their rates (no inputs), so any one holds the truth.
    true_ctn = np.stack([truth_etn[labels == c][0] for c in conds])
    corr = [np.corrcoef(psth_ctn[:, :, n].ravel(), true_ctn[:, :, n].ravel())[0, 1]
            for n in range(x_etn.shape[2])]
    return ("train_data: %.3f of observed entries exactly zero, %.3f missing (NaN); "
            "correlation of condition-averaged data with the true rates %.3f (mean over "
            "neurons)" % (np.mean(x_etn[observed] == 0), 1.0 - np.mean(observed),
                          np.nanmean(corr)))


# (kind, name, default, help) of every command-line flag.
_FLAGS = [
    ("string", "save_dir", "/tmp/rnn_synth_data_v1.0/", "Folder to write the data to."),
    ("string", "datafile_name", "calcium_chaotic_rnn", "File name stem of the written data."),
    ("integer", "synth_data_seed", 5, "Seed of the random number generator."),
    ("float", "T", 1.0, "Length of a trial in seconds."),
    ("integer", "C", 50, "Number of conditions (initial states)."),
    ("integer", "N", 50, "Number of units of the RNN, all observed as neurons."),
    ("float", "train_percentage", 4.0 / 5.0, "Fraction of replications used for training."),
    ("integer", "nreplications", 20, "Trials per condition (same rates, new noise)."),
    ("float", "g", 1.5, "Gain of the recurrent weights (chaos for g > 1)."),
    ("float", "x0_std", 1.0, "Standard deviation of the initial states."),
    ("float", "tau", 0.025, "Time constant of the RNN in seconds."),
    ("float", "dt", 0.010, "Frame (bin) width in seconds."),
    ("float", "max_firing_rate", 30.0, "Firing rate (Hz) that a normalised rate of 1 maps to."),
    ("float", "tau_calcium", 0.3, "Decay time constant of the calcium indicator in seconds "
     "(GCaMP6-like); calcium decays by exp(-dt / tau_calcium) per frame."),
    ("float", "noise_std", 0.3, "Standard deviation of the fluorescence noise per frame, in "
     "units of one spike's fluorescence jump."),
    ("float", "burn_in", 0.3, "Seconds simulated at each trial's first rate before it (from "
     "the calcium's steady state) and deconvolved with it, then dropped."),
    ("float", "deconv_l1", 0.1, "L1 penalty on the spikes of the deconvolution (units of "
     "one spike's jump)."),
    ("float", "deconv_threshold", 1.5, "Deconvolved values below deconv_threshold * "
     "noise_std are set to 0 (the smallest non-zero value, s_min)."),
    ("float", "missing_fraction", 0.0, "Fraction of the entries of <split>_data set to NaN "
     "at random (missing)."),
    ("float", "missing_neuron_fraction", 0.0, "Fraction of (trial, neuron) pairs whose "
     "whole trace is NaN (a neuron outside the field of view in that trial)."),
    ("boolean", "save_fluorescence", False, "Also write the fluorescence frames as "
     "<split>_fluorescence (float32, as large as the data)."),
]


def _define_flags(flag_values=None):
    """Defines this generator's flags (see synthetic_data_utils.define_flags)."""
    return synthetic_data_utils.define_flags(_FLAGS, flag_values)


def main(argv):
    del argv
    from absl import flags
    F = flags.FLAGS
    datasets = generate_calcium_datasets(
            synth_data_seed=F.synth_data_seed, T=F.T, C=F.C, N=F.N,
            nreplications=F.nreplications, train_percentage=F.train_percentage, g=F.g,
            x0_std=F.x0_std, tau=F.tau, dt=F.dt, max_firing_rate=F.max_firing_rate,
            tau_calcium=F.tau_calcium, noise_std=F.noise_std, burn_in=F.burn_in,
            deconv_l1=F.deconv_l1, deconv_threshold=F.deconv_threshold,
            missing_fraction=F.missing_fraction,
            missing_neuron_fraction=F.missing_neuron_fraction,
            save_fluorescence=F.save_fluorescence)
    for data in datasets.values():
        print(describe(data))
    synthetic_data_utils.write_and_report(F.save_dir, F.datafile_name, datasets)


if __name__ == "__main__":
    _define_flags()
    synthetic_data_utils.run_script(main, __doc__, _FLAGS, os.path.basename(__file__))
