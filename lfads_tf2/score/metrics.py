"""Scores of inferred rates as the Neural Latents Benchmark (NLB) defines them.

Pure functions of arrays [E, T, N] (trials, time bins, neurons); rates in counts per bin.
The data layout they expect (see the README, "Held-out neurons and forward prediction"):
spikes `recon_etn` [E, T + T_fp, N_in + N_out] whose first N_in neurons are the held-in
ones (the model's input) and whose first T bins are the bins the model reads; the model's
rates cover the same extent.

* bits per spike (co-bps on the held-out neurons over the T held-in bins, fp-bps on all
  neurons over the T_fp forward bins): how much better the rates predict the spikes than
  each neuron's mean rate, in bits per spike.
* bits per entry (co-bpe, fp-bpe), the same for continuous data (Gaussian, ZIG, gamma)
  with the observation model's likelihood, per observed entry.
* PSTH R²: condition-averaged rates against condition-averaged (smoothed) spikes.
* Rate R² against known true rates: `lfads_tf2.score.rate_r2`.
"""
import math

import numpy as np

# NLB replaces zero rates by this before taking logs (a neuron that never fires gets a
# null rate of 0, and a model may predict 0 too).
ZERO_RATE = 1e-9


def poisson_nll(rates, spikes):
    """Total Poisson negative log-likelihood sum(r - n log r + log n!) of spikes given
    rates (same shape). Bins where spikes are NaN are left out; zero rates count as
    ZERO_RATE. Negative or NaN rates are an error."""
    rates = np.asarray(rates, dtype=np.float64)
    spikes = np.asarray(spikes, dtype=np.float64)
    if rates.shape != spikes.shape:
        raise ValueError("rates %s and spikes %s must have the same shape"
                         % (rates.shape, spikes.shape))
    keep = ~np.isnan(spikes)
    rates, spikes = rates[keep], spikes[keep]
    if np.any(np.isnan(rates)):
        raise ValueError("NaN rates where spikes are observed")
    if np.any(rates < 0):
        raise ValueError("negative rates")
    rates = np.where(rates == 0, ZERO_RATE, rates)
    from scipy.special import gammaln
    return float(np.sum(rates - spikes * np.log(rates) + gammaln(spikes + 1.0)))


def bits_per_spike(rates_etn, spikes_etn):
    """(LL(rates) - LL(null)) / (total spikes * ln 2), Poisson log-likelihoods.

    The null model predicts each neuron's mean count per bin over all trials and bins
    of `spikes_etn` (its last axis is the neuron). NaN spikes are left out. Raises
    ValueError when there are no spikes at all (the score is undefined).
    """
    spikes = np.asarray(spikes_etn, dtype=np.float64)
    total = np.nansum(spikes)
    if not total > 0:
        raise ValueError("no spikes to score (bits per spike divides by their number)")
    with np.errstate(invalid="ignore"):  # an all-NaN neuron: its null rate is unused
        null_n = np.nanmean(spikes.reshape(-1, spikes.shape[-1]), axis=0)
    null = np.broadcast_to(null_n, spikes.shape)
    return (poisson_nll(null, spikes) - poisson_nll(rates_etn, spikes)) / total / math.log(2)


def co_bps(rates_etn, recon_etn, n_heldin, t_heldin):
    """Co-smoothing bits per spike: held-out neurons (columns n_heldin:) over the first
    t_heldin bins. rates and recon are [E, >= t_heldin, N_in + N_out]."""
    return bits_per_spike(np.asarray(rates_etn)[:, :t_heldin, n_heldin:],
                          np.asarray(recon_etn)[:, :t_heldin, n_heldin:])


def fp_bps(rates_etn, recon_etn, t_heldin):
    """Forward-prediction bits per spike: all neurons (held-in and held-out) over the
    bins after the first t_heldin. rates and recon are [E, T + T_fp, N]."""
    return bits_per_spike(np.asarray(rates_etn)[:, t_heldin:],
                          np.asarray(recon_etn)[:, t_heldin:])


def bits_per_entry(model, params_etp, x_etn):
    """(LL(params) - LL(null)) / (entries * ln 2): NLB's bits per spike for continuous
    data, with the observation model's log-likelihood in place of Poisson's and the
    number of observed (non-NaN) entries in place of the spikes' (a trace has no count
    to divide by).

    model: an observation model (lfads_tf2.model.observation) with its constants;
    params [E, T, P*N] its output_dist_params, x [E, T, N] the data. The null model
    holds each neuron's parameters constant, fitted by maximum likelihood to x itself
    (model.null_params), as NLB's null rate is each neuron's mean count. NaN entries of
    x are left out. Raises ValueError when no entry is observed.
    """
    x = np.asarray(x_etn, dtype=np.float64)
    observed = ~np.isnan(x)
    n = int(observed.sum())
    if n == 0:
        raise ValueError("no observed entries to score (bits per entry divides by "
                         "their number)")
    ll_model = model.log_likelihood_np(x, params_etp)[observed].sum()
    ll_null = model.log_likelihood_np(x, model.null_params(x))[observed].sum()
    return float((ll_model - ll_null) / n / math.log(2))


def co_bpe(model, params_etp, recon_etn, n_heldin, t_heldin):
    """Co-smoothing bits per entry: held-out neurons (n_heldin:) over the first
    t_heldin bins; params [E, >= t_heldin, P*N], recon [E, >= t_heldin, N]."""
    recon = np.asarray(recon_etn)
    part, params = model.take_neurons(np.asarray(params_etp)[:, :t_heldin],
                                      slice(n_heldin, recon.shape[-1]))
    return bits_per_entry(part, params, recon[:, :t_heldin, n_heldin:])


def fp_bpe(model, params_etp, recon_etn, t_heldin):
    """Forward-prediction bits per entry: all neurons over the bins after t_heldin."""
    return bits_per_entry(model, np.asarray(params_etp)[:, t_heldin:],
                          np.asarray(recon_etn)[:, t_heldin:])


def condition_means(x_etn, labels_e, conditions):
    """[C, T, N] mean of x over the trials of each condition (NaN where it has none)."""
    x = np.asarray(x_etn, dtype=np.float64)
    labels = np.asarray(labels_e)
    out = np.full((len(conditions),) + x.shape[1:], np.nan)
    for i, cond in enumerate(conditions):
        rows = labels == cond
        if rows.any():
            out[i] = x[rows].mean(axis=0)
    return out


def true_psths(spikes_etn, labels_e, sd_bins, conditions=None):
    """(conditions [C], psth [C, T, N]): each condition's mean of the spikes smoothed
    along time by a Gaussian of s.d. `sd_bins` bins (NLB smooths, then averages)."""
    from lfads_tf2.evaluate import figures
    labels = np.asarray(labels_e)
    if conditions is None:
        conditions = np.unique(labels)
    smooth = figures.smooth_time(spikes_etn, sd_bins, axis=1)
    return np.asarray(conditions), condition_means(smooth, labels, conditions)


def r2_uniform(true_sxn, pred_sxn):
    """R² of each column (neuron) over the rows, averaged over columns.

    A column whose truth is constant scores 1 if predicted exactly, else 0 (as
    scikit-learn's r2_score, which NLB uses, does by default)."""
    true = np.asarray(true_sxn, dtype=np.float64)
    pred = np.asarray(pred_sxn, dtype=np.float64)
    ss_res_n = np.sum((true - pred) ** 2, axis=0)
    ss_tot_n = np.sum((true - true.mean(axis=0)) ** 2, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2_n = np.where(ss_tot_n > 0, 1.0 - ss_res_n / ss_tot_n,
                        np.where(ss_res_n == 0, 1.0, 0.0))
    return float(np.mean(r2_n))


def psth_r2(rates_etn, labels_e, psth_ctn, conditions_c):
    """PSTH R²: for each condition with trials in `labels_e`, the mean of its rates
    against its true PSTH `psth_ctn[c]`; all conditions' bins stacked as rows, R² per
    neuron, averaged over neurons. Bins where the true PSTH is NaN (its first neuron,
    as NLB) are left out. rates [E, T, N], psth [C, T, N] with the same T and N."""
    rates = np.asarray(rates_etn, dtype=np.float64)
    psth = np.asarray(psth_ctn, dtype=np.float64)
    if rates.shape[1:] != psth.shape[1:]:
        raise ValueError("rates %s and PSTHs %s differ in bins or neurons"
                         % (rates.shape, psth.shape))
    pred = condition_means(rates, labels_e, conditions_c)
    true_rows, pred_rows = [], []
    for i in range(len(conditions_c)):
        if np.isnan(pred[i]).all():
            continue  # no trial of this condition among the rates
        keep_t = ~np.isnan(psth[i, :, 0])
        if np.isnan(pred[i][keep_t]).any():
            raise ValueError("NaN rates within the PSTH's bins")
        true_rows.append(psth[i][keep_t])
        pred_rows.append(pred[i][keep_t])
    if not true_rows:
        raise ValueError("no condition of the PSTHs has trials among the rates")
    return r2_uniform(np.concatenate(true_rows), np.concatenate(pred_rows))
