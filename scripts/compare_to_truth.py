#!/usr/bin/env python
"""R² of LFADS posterior-averaged rates against the ground truth of synthetic data.

Usage (from the repo root):
  python scripts/compare_to_truth.py --output_file=F --data_file=D [--split=valid]
      [--output_dist=poisson|gaussian] [--smoothing_sd_bins=N] [--truth_scale=S]
      [--per_bin]

F is a `posterior_sample_and_average` or `posterior_push_mean` file (spec §10.2/§10.3),
D the dataset file it was run on, which must hold `<split>_truth`. The split defaults to
the one in F's canonical name (`..._<split>_posterior_...`). Rates are mapped to the
truth's units with the conversion-factor convention detected from D (spec §13 Q19, see
`plot_lfads.truth_scale`). Prints `key value` lines, e.g. `r2_pooled 0.9312`;
--per_bin adds one line per time bin with its R² and its share of the error
(`r2_bin 0 0.2012 error_share 0.0710`), which shows where in the trial the error lies.

Also the home of the small h5 helpers that scripts/plot_lfads_outputs.py shares.
"""
import argparse
import os
import re
import sys

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

import h5py  # noqa: E402
import numpy as np  # noqa: E402

import plot_lfads  # noqa: E402


class CliError(Exception):
    """A user-facing problem; main() prints it as one line and exits with status 2."""


# ---------------------------------------------------------------- h5 helpers

def open_h5(path, what):
    """Opens an HDF5 file read-only, turning every failure into a one-line CliError."""
    if not os.path.exists(path):
        raise CliError("%s: %s not found" % (path, what))
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise CliError("%s: %s is not a readable HDF5 file (%s)"
                       % (path, what, str(e).splitlines()[0])) from None


def require(hf, key):
    """hf[key], or a CliError naming the file, the key and what is there instead."""
    if key not in hf:
        keys = sorted(hf.keys())
        shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
        raise CliError("%s: missing key '%s' (present: %s)" % (hf.filename, key, shown))
    return hf[key]


def read_scalar(hf, key):
    """A scalar dataset as float, or None when absent."""
    if key not in hf:
        return None
    value = np.asarray(hf[key][()])
    if value.size != 1:
        raise CliError("%s: key '%s' should be a scalar, has shape %s"
                       % (hf.filename, key, value.shape))
    return float(value.reshape(()))


_SPLIT_IN_NAME = re.compile(r"(?:^|_)(train|valid)_(?:posterior_sample_and_average|"
                            r"posterior_push_mean)$")


def resolve_split(split, output_file):
    """The split to use: --split, else the one in the output file's canonical name.

    A --split that contradicts the name is an error: plotting/scoring train outputs
    against valid data would silently compare unrelated trials.
    """
    m = _SPLIT_IN_NAME.search(os.path.basename(output_file))
    named = m.group(1) if m else None
    if split is None:
        if named is None:
            raise CliError("%s: cannot tell the split from the file name; pass --split"
                           % output_file)
        return named
    if named is not None and named != split:
        raise CliError("%s: file name says split '%s' but --split=%s"
                       % (output_file, named, split))
    return split


def check_shapes(out_path, params_shape, data_path, data_key, data_shape):
    """Checks output_dist_params [E_out, T, D or 2D] against the data's [E, T, D]."""
    if len(params_shape) != 3 or len(data_shape) != 3:
        raise CliError("%s: output_dist_params has shape %s, %s: %s has %s; both must be "
                       "[trials, time, channels]" % (out_path, params_shape, data_path,
                                                     data_key, data_shape))
    e_out, t_out = params_shape[:2]
    e_dat, t_dat = data_shape[:2]
    if e_out > e_dat:
        raise CliError("mismatched trial counts: %s has %d trials but %s: %s has %d "
                       "(wrong --split or data file?)" % (out_path, e_out, data_path,
                                                          data_key, e_dat))
    if t_out != t_dat:
        raise CliError("mismatched time bins: %s has %d, %s: %s has %d"
                       % (out_path, t_out, data_path, data_key, t_dat))


def resolve_output_dist(requested, width, n_chan, out_path):
    """Poisson iff output_dist_params is [.., D], Gaussian iff [.., 2D] (means, variances)."""
    inferred = {n_chan: "poisson", 2 * n_chan: "gaussian"}.get(width)
    if inferred is None:
        raise CliError("%s: output_dist_params has %d channels, the data %d: expected %d "
                       "(poisson) or %d (gaussian)" % (out_path, width, n_chan, n_chan,
                                                      2 * n_chan))
    if requested is not None and requested != inferred:
        raise CliError("%s: --output_dist=%s but output_dist_params has %d channels for "
                       "%d data channels (that is %s)" % (out_path, requested, width,
                                                          n_chan, inferred))
    return inferred


def truth_scale_from_file(hf, output_dist):
    """plot_lfads.truth_scale with the scalars read from a data file."""
    return plot_lfads.truth_scale(read_scalar(hf, "conversion_factor"),
                                  read_scalar(hf, "max_firing_rate"),
                                  read_scalar(hf, "dt"), output_dist)


# ---------------------------------------------------------------- R²

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

    Each neuron's mean over trials x time is removed from pred and truth separately, so
    a constant per-neuron offset is not penalised. Returns a dict:
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

    Rates are mapped to the truth's units by `scale` if given, else by the convention
    `plot_lfads.truth_scale(conversion_factor, max_firing_rate, dt, output_dist)` detects
    (ITB: divide by cf; chaotic/labeled: multiply). Returns `r2_scores(...)` plus
    "scale" and "convention".
    """
    if scale is None:
        scale, convention = plot_lfads.truth_scale(conversion_factor, max_firing_rate, dt,
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
    return r2_against_truth(plot_lfads.smooth_time(data_etd, sd_bins, axis=1), truth_etd,
                            conversion_factor, max_firing_rate, dt, output_dist, scale)


# ---------------------------------------------------------------- CLI

def _parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output_file", required=True,
                   help="posterior_sample_and_average or posterior_push_mean h5 file")
    p.add_argument("--data_file", required=True, help="the dataset h5 file (with truth)")
    p.add_argument("--split", choices=("train", "valid"), default=None,
                   help="default: taken from the output file's name")
    p.add_argument("--output_dist", choices=("poisson", "gaussian"), default=None,
                   help="default: inferred from the width of output_dist_params")
    p.add_argument("--smoothing_sd_bins", type=float, default=None,
                   help="also print the R² of spikes smoothed with this Gaussian s.d.")
    p.add_argument("--truth_scale", type=float, default=None,
                   help="override the rates -> truth multiplier instead of detecting it")
    p.add_argument("--per_bin", action="store_true",
                   help="also print each time bin's R² and share of the error")
    return p.parse_args(argv)


def run(args):
    """Computes and prints the scores; raises CliError on bad input."""
    split = resolve_split(args.split, args.output_file)
    with open_h5(args.output_file, "output file") as out_h5, \
            open_h5(args.data_file, "data file") as data_h5:
        params = require(out_h5, "output_dist_params")
        truth_ds = require(data_h5, "%s_truth" % split)
        check_shapes(args.output_file, params.shape, args.data_file, truth_ds.name[1:],
                     truth_ds.shape)
        n_trials, _, n_chan = params.shape[0], params.shape[1], truth_ds.shape[2]
        output_dist = resolve_output_dist(args.output_dist, params.shape[2], n_chan,
                                          args.output_file)
        # Only the first D columns: the rates, or the Gaussian means (variances follow).
        rates = params[:, :, :n_chan]
        truth = truth_ds[:n_trials]
        data = None
        if args.smoothing_sd_bins is not None:
            data = require(data_h5, "%s_data" % split)[:n_trials]
        scalars = [read_scalar(data_h5, k) for k in ("conversion_factor", "max_firing_rate",
                                                      "dt")]

    if n_trials < truth_ds.shape[0]:
        print("note: %s covers the first %d of %d %s trials (ps_nexamples_to_process?)"
              % (args.output_file, n_trials, truth_ds.shape[0], split), file=sys.stderr)
    res = r2_against_truth(rates, truth, *scalars, output_dist=output_dist,
                           scale=args.truth_scale)
    print("split %s" % split)
    print("trials %d" % n_trials)
    print("output_dist %s" % output_dist)
    print("convention %s" % res["convention"])
    print("truth_scale %.6g  # %s" % (res["scale"],
                                      plot_lfads.describe_convention(res["convention"],
                                                                     res["scale"])))
    print("r2_pooled %.4f" % res["r2_pooled"])
    print("r2_mean_per_neuron %.4f" % res["r2_mean_per_neuron"])
    if args.per_bin:
        r2_t, share_t = r2_per_bin(np.asarray(rates, dtype=np.float64) * res["scale"], truth)
        for t, (r2, share) in enumerate(zip(r2_t, share_t)):
            print("r2_bin %d %.4f error_share %.4f" % (t, r2, share))
    if data is not None:
        base = smoothed_spikes_r2(data, truth, args.smoothing_sd_bins, *scalars,
                                  output_dist=output_dist, scale=res["scale"])
        print("smoothing_sd_bins %g" % args.smoothing_sd_bins)
        print("r2_pooled_smoothed %.4f" % base["r2_pooled"])
        print("r2_mean_per_neuron_smoothed %.4f" % base["r2_mean_per_neuron"])
    return res


def main(argv=None):
    args = _parse_args(argv)
    try:
        run(args)
    except CliError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
