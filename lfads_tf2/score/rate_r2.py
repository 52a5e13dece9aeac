"""How close inferred rates are to the true rates: R² scores, pure functions of arrays.

All arrays are [E, T, D] (trials, time bins, neurons). Each neuron's mean over
trials x time is removed from prediction and truth separately before scoring, so a
constant per-neuron offset is not penalised.
"""
import numpy as np

from lfads_tf2.evaluate import figures


def _centered(pred_etd, truth_etd):
    """pred and truth [E, T, D] as float64, each neuron's mean over trials x time removed."""
    pred = np.asarray(pred_etd, dtype=np.float64)
    truth = np.asarray(truth_etd, dtype=np.float64)
    if pred.shape != truth.shape or pred.ndim != 3:
        raise ValueError("pred %s and truth %s must both be [E, T, D]"
                         % (pred.shape, truth.shape))
    return (pred - pred.mean(axis=(0, 1), keepdims=True),
            truth - truth.mean(axis=(0, 1), keepdims=True))


def r2_scores(pred_etd, truth_etd):
    """R² of pred vs truth (same units), both [E, T, D], after removing each neuron's mean.

    Returns a dict:
      r2_pooled: 1 - SS_res / SS_tot summed over trials, time and neurons;
      r2_per_neuron [D]: the same per neuron (NaN where the truth is constant);
      r2_mean_per_neuron: the mean of r2_per_neuron over neurons with defined R².
    """
    pred_c, truth_c = _centered(pred_etd, truth_etd)
    ss_res_d = np.sum((pred_c - truth_c) ** 2, axis=(0, 1))
    ss_tot_d = np.sum(truth_c ** 2, axis=(0, 1))
    ss_tot = ss_tot_d.sum()
    r2_pooled = 1.0 - ss_res_d.sum() / ss_tot if ss_tot > 0 else np.nan
    with np.errstate(divide="ignore", invalid="ignore"):
        r2_d = np.where(ss_tot_d > 0, 1.0 - ss_res_d / np.where(ss_tot_d > 0, ss_tot_d, 1),
                        np.nan)
    r2_mean = float(np.nanmean(r2_d)) if np.any(np.isfinite(r2_d)) else np.nan
    return {"r2_pooled": float(r2_pooled), "r2_mean_per_neuron": r2_mean,
            "r2_per_neuron": r2_d}


def affine_fit(pred_etd, truth_etd):
    """Each neuron's least-squares map truth ~ a_d * pred + b_d over trials x time ->
    (a [D], b [D]); a = 0 for a neuron whose prediction is constant. For data whose
    units differ from the truth's (e.g. calcium traces against spike rates)."""
    pred_c, truth_c = _centered(pred_etd, truth_etd)
    var_d = np.sum(pred_c ** 2, axis=(0, 1))
    cov_d = np.sum(pred_c * truth_c, axis=(0, 1))
    a = np.where(var_d > 0, cov_d / np.where(var_d > 0, var_d, 1.0), 0.0)
    pred_mean = np.asarray(pred_etd, np.float64).mean(axis=(0, 1))
    truth_mean = np.asarray(truth_etd, np.float64).mean(axis=(0, 1))
    return a, truth_mean - a * pred_mean


def r2_affine(pred_etd, truth_etd, fit_pred_etd=None, fit_truth_etd=None):
    """r2_scores of a_d * pred + b_d against truth, the per-neuron map (affine_fit)
    fitted on (fit_pred, fit_truth), by default the scored arrays themselves (then each
    neuron's R² is its squared correlation with the truth). Adds "slopes" [D]."""
    if fit_pred_etd is None:
        fit_pred_etd, fit_truth_etd = pred_etd, truth_etd
    a, b = affine_fit(fit_pred_etd, fit_truth_etd)
    out = r2_scores(np.asarray(pred_etd, np.float64) * a + b, truth_etd)
    out["slopes"] = a
    return out


def r2_per_bin(pred_etd, truth_etd):
    """R² of each time bin, and its share of the error; pred and truth [E, T, D].

    With each neuron's mean over trials x time removed (as in r2_scores), for bin t
    r2[t] = 1 - SS_res[t] / SS_tot[t], sums over trials and neurons, and
    error_share[t] = SS_res[t] / sum_t SS_res[t]. Returns (r2_t, error_share_t), [T] each.
    """
    pred_c, truth_c = _centered(pred_etd, truth_etd)
    ss_res_t = np.sum((pred_c - truth_c) ** 2, axis=(0, 2))
    ss_tot_t = np.sum(truth_c ** 2, axis=(0, 2))
    with np.errstate(divide="ignore", invalid="ignore"):
        r2_t = np.where(ss_tot_t > 0, 1.0 - ss_res_t / np.where(ss_tot_t > 0, ss_tot_t, 1),
                        np.nan)
        share_t = ss_res_t / ss_res_t.sum() if ss_res_t.sum() > 0 \
            else np.zeros_like(ss_res_t)
    return r2_t, share_t


def r2_against_truth(rates_etd, truth_etd, conversion_factor=None, max_firing_rate=None,
                     dt=None, output_dist="poisson", scale=None):
    """R² of rates (counts/bin, or Gaussian means) [E, T, D] against truth [E, T, D].

    Rates are mapped to the truth's units, truth ~ rates * scale, by `scale` if given,
    else by the convention `plots.truth_scale(conversion_factor, max_firing_rate,
    dt, output_dist)` detects (ITB: divide by cf; chaotic/labeled: multiply).
    Returns `r2_scores(...)` plus "scale" and "convention".
    """
    if scale is None:
        scale, convention = figures.truth_scale(conversion_factor, max_firing_rate, dt,
                                                   output_dist)
    else:
        convention = "override"
    out = r2_scores(np.asarray(rates_etd, dtype=np.float64) * scale, truth_etd)
    out.update(scale=float(scale), convention=convention)
    return out


def smoothed_spikes_r2(data_etd, truth_etd, sd_bins, conversion_factor=None,
                       max_firing_rate=None, dt=None, output_dist="poisson", scale=None):
    """Baseline: R² of Gaussian-smoothed data [E, T, D] (s.d. `sd_bins` bins) vs truth.

    The smoothed counts are in counts/bin like LFADS rates, so they get the same scale;
    LFADS should beat this for any reasonable `sd_bins`.
    """
    return r2_against_truth(figures.smooth_time(data_etd, sd_bins, axis=1), truth_etd,
                            conversion_factor, max_firing_rate, dt, output_dist, scale)
