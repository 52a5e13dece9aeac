"""The `lfads_score` command: NLB-style scores of a posterior output file.

Reads `output_dist_params` (and `output_dist_mean`) of a posterior_sample_and_average /
posterior_push_mean file and the data file it ran on, computes every metric of
lfads_tf2.score.metrics that the keys allow (or those --metrics names), prints them and
writes `<output>.scores.json`. The observation model (lfads_tf2.model.observation) is the
one the file names, else --dist, else the one its width fits.
"""
import collections
import json
import os
import sys

import numpy as np
from absl import flags

from lfads_tf2 import errors
from lfads_tf2.score import metrics as nlb
from lfads_tf2.score import output_files, rate_r2
from lfads_tf2.score.output_files import InputError
import utils
from lfads_tf2.data import checks
from lfads_tf2.model import observation

METRICS = ("co_bps", "fp_bps", "co_bpe", "fp_bpe", "psth_r2", "rate_r2")
# The bits-per-spike metrics (Poisson counts) and bits-per-entry ones (continuous data).
BITS = ("co_bps", "fp_bps", "co_bpe", "fp_bpe")

# Plain string flags (checked in `main`): every command's help shows one-word types.
flags.DEFINE_string("split", "",
                    "Split the output file holds, train, valid or test (default: the one in "
                    "its canonical name, else valid).")
flags.DEFINE_string("metrics", "",
                    "Comma-separated metrics to compute, from co_bps, fp_bps, co_bpe, fp_bpe, "
                    "psth_r2, rate_r2; each one named must be computable, else an error "
                    "(default: every metric the keys allow).")
flags.DEFINE_string("dist", "",
                    "What output_dist_params holds: poisson (rates), gaussian (means, then "
                    "variances), zig (q, shape, scale) or gamma (shape, scale). Default: the "
                    "model the file names (its attribute output_dist), else inferred from "
                    "its width.")
flags.DEFINE_boolean("affine", False,
                     "rate_r2 after each neuron's least-squares affine map from the "
                     "model's mean to the truth, fitted on the scored trials (for data in "
                     "other units than the truth, e.g. calcium traces against spike rates).")
flags.DEFINE_float("psth_sd_bins", 3.0,
                   "S.d. in bins of the Gaussian that smooths the spikes before they are "
                   "averaged per condition into the true PSTHs.")

DESCRIPTION = """\
lfads_score OUTPUT_FILE DATA_FILE [--split=valid] [--metrics=co_bps,...]

Scores LFADS rates as the Neural Latents Benchmark does. OUTPUT_FILE is a
posterior_sample_and_average or posterior_push_mean file, DATA_FILE the data file it
ran on. Computes whichever of these its keys allow:

  co_bps   bits per spike of the held-out neurons over the held-in bins
           (needs <split>_recon_data and rates for all its neurons)
  fp_bps   bits per spike of all neurons over the forward bins
           (needs <split>_recon_data with forward bins, rates over all of them)
  co_bpe,  the same in bits per entry for continuous data (gaussian, zig, gamma):
  fp_bpe   (LL(model) - LL(each neuron's constant ML fit)) / (entries * ln 2), with
           the run's observation model (docs/observation_models.md)
  psth_r2  R² of condition-averaged rates against the smoothed spikes averaged over all
           trials of each condition (needs condition_labels_<split>)
  rate_r2  R² against the true rates, mean over neurons (needs <split>_truth); with
           --affine after a per-neuron affine map

Prints them and writes OUTPUT_FILE.scores.json. Test outputs (..._test_posterior_...)
are scored against test_data and, when present, test_recon_data, condition_labels_test
and test_truth.

  lfads_score /tmp/lfads_run/model_runs_dataset_valid_posterior_sample_and_average \\
      /tmp/rnn_synth_data_v1.0/chaotic_rnn_nlb_2000train_dataset_N70_heldin50
"""
FLAG_GROUPS = [("Scoring", ["split", "metrics", "dist", "psth_sd_bins", "affine"])]


def _split_of(split, output_path):
    if split is None:
        try:
            return output_files.resolve_split(None, output_path)
        except InputError:
            return "valid"
    return output_files.resolve_split(split, output_path)


def _dist_and_width(requested, width, n_in, n_all, out_path, stored=None):
    """(dist, N'): the observation model whose output_dist_params are `width` wide for
    N' = N_in held-in, or N_all held-in and held-out, neurons (P*N' for its P
    parameters). `requested` (--dist) must fit; `stored`, the model the file names
    (its attribute output_dist), decides when several fit. A file that names none
    comes from a version with Poisson and Gaussian only (in_unnamed_files)."""
    if stored is not None and requested not in (None, stored):
        raise InputError("%s: --dist=%s but the file was written by an --output_dist=%s "
                         "model" % (out_path, requested, stored))
    unnamed = stored is None and requested is None
    requested = stored or requested
    options = {}
    for n in sorted({n_in, n_all}):
        for name, model in observation.MODELS.items():
            if model.in_unnamed_files or not unnamed:
                options.setdefault(len(model.reported_names) * n, []).append((name, n))
    fits = [o for o in options.get(width, []) if requested in (None, o[0])]
    if len(fits) == 1:
        return fits[0]
    if len(fits) > 1:
        described = ["%s %s of %d" % (name, _and(observation.MODELS[name].reported_names), n)
                     for name, n in fits]
        described[0] += " neurons"
        raise InputError("%s: output_dist_params has %d channels, which fits %s; pass "
                         "--dist" % (out_path, width, ("both " if len(fits) == 2 else "")
                                     + _and(described)))
    raise InputError("%s: output_dist_params has %d channels; expected %s for %d held-in "
                     "or %d held-in and held-out neurons"
                     % (out_path, width, "or ".join(
                         "%d (%s) " % (w, d) for w, opts in sorted(options.items())
                         for d, _ in opts if requested in (None, d)).strip(), n_in, n_all))


def _and(words):
    """'a', 'a and b', 'a, b and c'."""
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


# What score_files matched between the two files: the paths and split, the data file's
# arrays (data), the observation model (dist) and the sizes: E trials, T_in held-in
# bins and N_in held-in neurons of <split>_data, T_all bins and N_all neurons with the
# forward bins and held-out neurons (of <split>_recon_data, else T_in and N_in), and
# the output's E_out trials, T_out bins and N_out neurons.
_Matched = collections.namedtuple("_Matched", [
    "output_path", "data_path", "split", "data", "dist", "E", "T_in", "N_in", "T_all",
    "N_all", "E_out", "T_out", "N_out"])


def score_files(output_path, data_path, split=None, wanted=(), dist=None, psth_sd_bins=3.0,
                affine=False):
    """Scores one output file; returns the dict written as JSON. Raises InputError or
    errors.DataError (one line) for bad files and for metrics that cannot be computed.
    affine: rate R² after each neuron's least-squares affine map to the truth."""
    split = _split_of(split, output_path)
    params, stored = _read_output_params(output_path)
    m = _match(output_path, data_path, split, params, _read_scored_data(data_path, split),
               dist, stored)
    listed = wanted or default_metrics(m.dist)
    reasons = {metric: _why_not(m, metric) for metric in listed}
    for metric in wanted:
        if reasons[metric] is not None:
            raise InputError("%s cannot be computed: %s" % (metric, reasons[metric]))
    todo = [metric for metric in listed if reasons[metric] is None]
    if not todo:
        raise InputError("no metric can be computed: " + "; ".join(
            "%s: %s" % (metric, r) for metric, r in reasons.items()))
    model, means = _read_model(output_path, m)
    values, details = _compute(m, todo, model, params, means, psth_sd_bins, affine)
    return {"output_file": os.path.abspath(output_path),
            "data_file": os.path.abspath(data_path), "split": split, "trials": int(m.E_out),
            "output_dist": m.dist, "heldin_neurons": int(m.N_in),
            "heldout_neurons": int(m.N_all - m.N_in), "heldin_bins": int(m.T_in),
            "forward_bins": int(m.T_all - m.T_in), "metrics": values, "details": details,
            "not_computed": {metric: r for metric, r in reasons.items()
                             if metric not in values}}


def default_metrics(dist):
    """The metrics tried without --metrics: all, but bits per entry for count data
    (Poisson scores bits per spike)."""
    counts = observation.MODELS[dist].counts
    return tuple(m for m in METRICS if not (counts and m in ("co_bpe", "fp_bpe")))


def _read_output_params(output_path):
    """(output_dist_params [trials, time, channels], the --output_dist the file names or
    None) of an output file."""
    with output_files.open_h5(output_path, "output file") as hf:
        params = np.asarray(output_files.require(hf, "output_dist_params")[()])
        stored = output_files.stored_output_dist(hf)
    if params.ndim != 3:
        raise InputError("%s: output_dist_params has shape %s; expected [trials, time, "
                         "channels]" % (output_path, params.shape))
    if stored is not None and stored not in observation.MODELS:
        raise InputError("%s: attribute output_dist=%s is no known model (expected one of "
                         "%s)" % (output_path, stored, ", ".join(observation.NAMES)))
    return params, stored


def _read_model(output_path, m):
    """(the observation model with the file's constants, its mean [E_out, T_out, N_out]:
    output_dist_mean, or for files without it the mean of output_dist_params)."""
    with output_files.open_h5(output_path, "output file") as hf:
        return (output_files.model_of_file(hf, m.dist),
                output_files.mean_of_file(hf, m.dist))


def _read_scored_data(data_path, split):
    """The data file's arrays, with train_data, valid_data and <split>_data each
    [trials, time, neurons]."""
    if not os.path.exists(data_path):
        raise InputError("%s: data file not found" % data_path)
    data = utils.read_data(data_path)
    data_key = split + "_data"
    for key in ("train_data", "valid_data"):
        if key not in data:
            raise InputError("%s: missing key '%s'" % (data_path, key))
        if np.ndim(data[key]) != 3:
            raise InputError("%s: %s has shape %s; expected [trials, time, neurons]"
                             % (data_path, key, np.shape(data[key])))
    if data_key not in data:  # test_data is optional
        raise InputError("%s: missing key '%s'" % (data_path, data_key))
    if np.ndim(data[data_key]) != 3:
        raise InputError("%s: %s has shape %s; expected [trials, time, neurons]"
                         % (data_path, data_key, np.shape(data[data_key])))
    return data


def _match(output_path, data_path, split, params, data, dist, stored=None):
    """_Matched of the output's params [E_out, T_out, width] and the data file's arrays;
    the observation model is the file's (`stored`), else `dist`, else the one the width
    fits. Raises InputError when their trials, bins or neurons do not match."""
    data_key, recon_key = split + "_data", split + "_recon_data"
    E, T_in, N_in = np.shape(data[data_key])
    recon = data.get(recon_key)
    T_all, N_all = (T_in, N_in) if recon is None else np.shape(recon)[1:]

    E_out, T_out, width = params.shape
    if recon is None and not observation.names_for_width(width, N_in,
                                                         dist is None and stored is None):
        # a model with held-out neurons scored against a file without their spikes
        raise InputError("%s: missing key '%s' (%s: output_dist_params has %d channels, "
                         "%s has %d neurons)" % (data_path, recon_key, output_path, width,
                                                 data_key, N_in))
    dist, N_out = _dist_and_width(dist, width, N_in, N_all, output_path, stored)
    checks.validate_heldout_keys(data_path, data, observation.for_dist(dist), labels=True)
    if E_out > E:
        raise InputError("mismatched trial counts: %s has %d trials but %s: %s has %d "
                         "(wrong --split or data file?)" % (output_path, E_out, data_path,
                                                            data_key, E))
    if T_out not in (T_in, T_all):
        raise InputError("%s: output_dist_params has %d time bins; %s: %s has %d%s"
                         % (output_path, T_out, data_path, data_key, T_in,
                            "" if T_all == T_in else
                            " and %s %d (with forward bins)" % (recon_key, T_all)))
    return _Matched(output_path, data_path, split, data, dist, E, T_in, N_in, T_all, N_all,
                    E_out, T_out, N_out)


def _why_not(m, metric):
    """None if `metric` can be computed for the _Matched m, else why not (one line)."""
    data_key, recon_key = m.split + "_data", m.split + "_recon_data"
    need_recon = "%s: missing key '%s'" % (m.data_path, recon_key)
    counts = observation.MODELS[m.dist].counts
    if metric in ("co_bps", "fp_bps") and not counts:
        return "%s: bits per spike need poisson rates, not %s" % (m.output_path, m.dist)
    if metric in ("co_bpe", "fp_bpe") and counts:
        return ("%s: bits per entry are for continuous data; %s counts score bits per "
                "spike (%s)" % (m.output_path, m.dist, metric[:-1] + "s"))
    if metric in BITS:
        if m.data.get(recon_key) is None:
            return need_recon
        if m.N_out != m.N_all:
            return ("%s: output_dist_params has %d neurons; %s needs all %d of %s"
                    % (m.output_path, m.N_out, metric, m.N_all, recon_key))
    if metric in ("co_bps", "co_bpe") and m.N_all == m.N_in:
        return "%s: %s has no held-out neurons (%d, as %s)" % (m.data_path, recon_key,
                                                               m.N_all, data_key)
    if metric in ("fp_bps", "fp_bpe"):
        if m.T_all == m.T_in:
            return "%s: %s has no forward bins (%d, as %s)" % (m.data_path, recon_key,
                                                               m.T_all, data_key)
        if m.T_out != m.T_all:
            return ("%s: output_dist_params has %d time bins; %s needs all %d of "
                    "%s" % (m.output_path, m.T_out, metric, m.T_all, recon_key))
    if metric == "psth_r2" and "condition_labels_" + m.split not in m.data:
        return "%s: missing key 'condition_labels_%s'" % (m.data_path, m.split)
    if metric == "rate_r2":
        key = m.split + "_truth"
        if key not in m.data:
            return "%s: missing key '%s'" % (m.data_path, key)
        shape = np.shape(m.data[key])
        if len(shape) != 3 or shape[0] != m.E or shape[1] < m.T_out or shape[2] < m.N_out:
            return ("%s: %s has shape %s; rate_r2 needs [%d trials, >= %d bins, >= %d "
                    "neurons]" % (m.data_path, key, shape, m.E, m.T_out, m.N_out))
    return None


def _compute(m, todo, model, params, rates, psth_sd_bins, affine=False):
    """({metric: value}, details) of the metrics in todo, for the _Matched m, the
    observation model (with the file's constants), the output's params
    [E_out, T_out, P*N_out] and its rates (the model's mean) [E_out, T_out, N_out]."""
    data, split = m.data, m.split
    recon = data.get(split + "_recon_data")
    spikes = (np.asarray(data[split + "_data"])[:m.E_out] if recon is None
              else np.asarray(recon)[:m.E_out])
    values, details = {}, {}
    if "co_bps" in todo:
        values["co_bps"] = nlb.co_bps(rates, spikes, m.N_in, m.T_in)
    if "fp_bps" in todo:
        values["fp_bps"] = nlb.fp_bps(rates, spikes, m.T_in)
    if "co_bpe" in todo:
        values["co_bpe"] = nlb.co_bpe(model, params, spikes, m.N_in, m.T_in)
    if "fp_bpe" in todo:
        values["fp_bpe"] = nlb.fp_bpe(model, params, spikes, m.T_in)
    if "psth_r2" in todo:
        values["psth_r2"], labels = _psth_r2(m, rates, psth_sd_bins)
        details["psth_sd_bins"] = float(psth_sd_bins)
        details["psth_conditions"] = int(len(np.unique(labels)))
    if "rate_r2" in todo:
        truth = np.asarray(data[split + "_truth"])[:m.E_out, :m.T_out, :m.N_out]
        scalars = [None if data.get(k) is None else float(np.asarray(data[k]).reshape(()))
                   for k in ("conversion_factor", "max_firing_rate", "dt")]
        if affine:  # each neuron's least-squares affine map, fitted on these trials
            res = rate_r2.r2_affine(rates, truth)
            res.update(scale=None, convention="affine per neuron")
        else:
            res = rate_r2.r2_against_truth(rates, truth, *scalars, output_dist=m.dist)
        values["rate_r2"] = res["r2_mean_per_neuron"]
        details.update(rate_r2_pooled=res["r2_pooled"], truth_scale=res["scale"],
                       truth_convention=res["convention"])
    return values, details


def _psth_r2(m, rates, psth_sd_bins):
    """(PSTH R², the scored trials' condition labels [E_out]) of the rates
    [E_out, T_out, N_out] for the _Matched m.

    As NLB: the true PSTHs average all trials of a condition (both splits), over the
    held-in bins and the neurons the rates cover.
    """
    data = m.data
    spikes_key = "_recon_data" if m.N_out > m.N_in else "_data"
    pool = [(np.asarray(data[s + spikes_key])[:, :m.T_in, :m.N_out],
             np.asarray(data["condition_labels_" + s])) for s in ("train", "valid")
            if "condition_labels_" + s in data]
    conditions, psth = nlb.true_psths(np.concatenate([p[0] for p in pool]),
                                      np.concatenate([p[1] for p in pool]), psth_sd_bins)
    labels = np.asarray(data["condition_labels_" + m.split])[:m.E_out]
    return nlb.psth_r2(rates[:, :m.T_in], labels, psth, conditions), labels


def write_json(result, path):
    """Writes the result dict to `path` as JSON, atomically."""
    with utils.atomic_path(path) as tmp:
        with open(tmp, "x") as f:
            json.dump(result, f, indent=2, sort_keys=True)
            f.write("\n")


def main(argv):
    from lfads_tf2 import cli
    output_path, data_path = cli.positional_args(argv, ["OUTPUT_FILE", "DATA_FILE"],
                                                 "lfads_score")
    F = flags.FLAGS
    wanted = tuple(m.strip() for m in F.metrics.split(",") if m.strip())
    problem = None
    unknown = [m for m in wanted if m not in METRICS]
    if unknown:
        problem = "--metrics=%s: unknown metric %s (expected some of %s)" % (
            F.metrics, unknown[0], ", ".join(METRICS))
    elif F.split not in ("", "train", "valid", "test"):
        problem = "--split=%s: expected train, valid or test" % F.split
    elif F.dist not in ("",) + observation.NAMES:
        problem = "--dist=%s: expected one of %s" % (F.dist, ", ".join(observation.NAMES))
    if problem:
        raise cli.CommandError(problem)
    try:
        result = score_files(output_path, data_path, F.split or None, wanted, F.dist or None,
                             F.psth_sd_bins, F.affine)
    except (InputError, errors.DataError, ValueError) as e:
        print("error: %s" % (str(e).splitlines() or [""])[0], file=sys.stderr)
        return 2
    print("split %s, %d trials" % (result["split"], result["trials"]))
    for name, value in result["metrics"].items():
        print("%s %.4f" % (name, value))
    for name, reason in result["not_computed"].items():
        print("(%s not computed: %s)" % (name, reason))
    path = output_path + ".scores.json"
    write_json(result, path)
    print("wrote " + path)
    return 0


def console_main():
    """Entry point of the `lfads_score` console command."""
    from lfads_tf2 import cli
    cli.run(main, DESCRIPTION, FLAG_GROUPS, module=sys.modules[__name__])


if __name__ == "__main__":
    console_main()
