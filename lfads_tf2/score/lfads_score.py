"""The `lfads_score` command: NLB-style scores of a posterior output file.

Reads `output_dist_params` of a posterior_sample_and_average / posterior_push_mean file
and the data file it ran on, computes every metric of lfads_tf2.score.metrics that the keys
allow (or those --metrics names), prints them and writes `<output>.scores.json`.
"""
import json
import os
import sys

import numpy as np
from absl import flags

from lfads_tf2.score import metrics as nlb
from lfads_tf2.score import output_files, rate_r2
from lfads_tf2.score.output_files import InputError
import utils

METRICS = ("co_bps", "fp_bps", "psth_r2", "rate_r2")

# Plain string flags (checked in `main`): every command's help shows one-word types.
flags.DEFINE_string("split", "",
                    "Split the output file holds, train, valid or test (default: the one in "
                    "its canonical name, else valid).")
flags.DEFINE_string("metrics", "",
                    "Comma-separated metrics to compute, from co_bps, fp_bps, psth_r2, "
                    "rate_r2; each one named must be computable, else an error (default: "
                    "every metric the keys allow).")
flags.DEFINE_string("dist", "",
                    "What output_dist_params holds: poisson (rates) or gaussian (means, then "
                    "variances). Default: inferred from its width.")
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
  psth_r2  R² of condition-averaged rates against the smoothed spikes averaged over all
           trials of each condition (needs condition_labels_<split>)
  rate_r2  R² against the true rates, mean over neurons (needs <split>_truth)

Prints them and writes OUTPUT_FILE.scores.json. Test outputs (..._test_posterior_...)
are scored against test_data and, when present, test_recon_data, condition_labels_test
and test_truth.

  lfads_score /tmp/lfads_run/model_runs_dataset_valid_posterior_sample_and_average \\
      /tmp/rnn_synth_data_v1.0/chaotic_rnn_nlb_2000train_dataset_N70_heldin50
"""
FLAG_GROUPS = [("Scoring", ["split", "metrics", "dist", "psth_sd_bins"])]


def _split_of(split, output_path):
    if split is None:
        try:
            return output_files.resolve_split(None, output_path)
        except InputError:
            return "valid"
    return output_files.resolve_split(split, output_path)


def _dist_and_width(requested, width, n_in, n_all, out_path):
    """(dist, N'): Poisson when width is N_in or N_in + N_out, Gaussian when twice that."""
    options = {}
    for n in sorted({n_in, n_all}):
        options.setdefault(n, []).append(("poisson", n))
        options.setdefault(2 * n, []).append(("gaussian", n))
    fits = [o for o in options.get(width, []) if requested in (None, o[0])]
    if len(fits) == 1:
        return fits[0]
    if len(fits) > 1:
        raise InputError("%s: output_dist_params has %d channels, which fits both poisson "
                         "rates of %d neurons and gaussian means and variances of %d; pass "
                         "--dist" % (out_path, width, fits[0][1], fits[1][1]))
    raise InputError("%s: output_dist_params has %d channels; expected %s for %d held-in "
                     "or %d held-in and held-out neurons"
                     % (out_path, width, "or ".join(
                         "%d (%s) " % (w, d) for w, opts in sorted(options.items())
                         for d, _ in opts if requested in (None, d)).strip(), n_in, n_all))


def score_files(output_path, data_path, split=None, wanted=(), dist=None, psth_sd_bins=3.0):
    """Scores one output file; returns the dict written as JSON. Raises InputError or
    utils.DataError (one line) for bad files and for metrics that cannot be computed."""
    split = _split_of(split, output_path)
    with output_files.open_h5(output_path, "output file") as hf:
        params = np.asarray(output_files.require(hf, "output_dist_params")[()])
    if params.ndim != 3:
        raise InputError("%s: output_dist_params has shape %s; expected [trials, time, "
                         "channels]" % (output_path, params.shape))
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
    held_in = np.asarray(data[data_key])
    E, T_in, N_in = held_in.shape
    recon_key = split + "_recon_data"
    recon = data.get(recon_key)
    T_all, N_all = (T_in, N_in) if recon is None else np.shape(recon)[1:]

    E_out, T_out, width = params.shape
    if recon is None and width not in (N_in, 2 * N_in):
        # a model with held-out neurons scored against a file without their spikes
        raise InputError("%s: missing key '%s' (%s: output_dist_params has %d channels, "
                         "%s has %d neurons)" % (data_path, recon_key, output_path, width,
                                                 data_key, N_in))
    dist, N_out = _dist_and_width(dist, width, N_in, N_all, output_path)
    utils.validate_heldout_keys(data_path, data, dist, labels=True)
    if E_out > E:
        raise InputError("mismatched trial counts: %s has %d trials but %s: %s has %d "
                         "(wrong --split or data file?)" % (output_path, E_out, data_path,
                                                            data_key, E))
    if T_out not in (T_in, T_all):
        raise InputError("%s: output_dist_params has %d time bins; %s: %s has %d%s"
                         % (output_path, T_out, data_path, data_key, T_in,
                            "" if T_all == T_in else
                            " and %s %d (with forward bins)" % (recon_key, T_all)))
    rates = params[:, :, :N_out]
    spikes = held_in[:E_out] if recon is None else np.asarray(recon)[:E_out]

    def why_not(metric):
        """None if `metric` can be computed, else why not (one line)."""
        need_recon = "%s: missing key '%s'" % (data_path, recon_key)
        if metric in ("co_bps", "fp_bps"):
            if dist != "poisson":
                return "%s: bits per spike need poisson rates, not %s" % (output_path, dist)
            if recon is None:
                return need_recon
            if N_out != N_all:
                return ("%s: output_dist_params has %d neurons; %s needs all %d of %s"
                        % (output_path, N_out, metric, N_all, recon_key))
        if metric == "co_bps" and N_all == N_in:
            return "%s: %s has no held-out neurons (%d, as %s)" % (data_path, recon_key,
                                                                   N_all, data_key)
        if metric == "fp_bps":
            if T_all == T_in:
                return "%s: %s has no forward bins (%d, as %s)" % (data_path, recon_key,
                                                                   T_all, data_key)
            if T_out != T_all:
                return ("%s: output_dist_params has %d time bins; fp_bps needs all %d of "
                        "%s" % (output_path, T_out, T_all, recon_key))
        if metric == "psth_r2" and "condition_labels_" + split not in data:
            return "%s: missing key 'condition_labels_%s'" % (data_path, split)
        if metric == "rate_r2":
            key = split + "_truth"
            if key not in data:
                return "%s: missing key '%s'" % (data_path, key)
            shape = np.shape(data[key])
            if len(shape) != 3 or shape[0] != E or shape[1] < T_out or shape[2] < N_out:
                return ("%s: %s has shape %s; rate_r2 needs [%d trials, >= %d bins, >= %d "
                        "neurons]" % (data_path, key, shape, E, T_out, N_out))
        return None

    reasons = {m: why_not(m) for m in METRICS}
    for metric in wanted:
        if reasons[metric] is not None:
            raise InputError("%s cannot be computed: %s" % (metric, reasons[metric]))
    todo = [m for m in (wanted or METRICS) if reasons[m] is None]
    if not todo:
        raise InputError("no metric can be computed: " + "; ".join(
            "%s: %s" % (m, r) for m, r in reasons.items()))

    values, details = {}, {}
    if "co_bps" in todo:
        values["co_bps"] = nlb.co_bps(rates, spikes, N_in, T_in)
    if "fp_bps" in todo:
        values["fp_bps"] = nlb.fp_bps(rates, spikes, T_in)
    if "psth_r2" in todo:
        # As NLB: the true PSTHs average all trials of a condition (both splits), over
        # the held-in bins and the neurons the rates cover.
        spikes_key = "_recon_data" if N_out > N_in else "_data"
        pool = [(np.asarray(data[s + spikes_key])[:, :T_in, :N_out],
                 np.asarray(data["condition_labels_" + s])) for s in ("train", "valid")
                if "condition_labels_" + s in data]
        conditions, psth = nlb.true_psths(np.concatenate([p[0] for p in pool]),
                                          np.concatenate([p[1] for p in pool]), psth_sd_bins)
        labels = np.asarray(data["condition_labels_" + split])[:E_out]
        values["psth_r2"] = nlb.psth_r2(rates[:, :T_in], labels, psth, conditions)
        details["psth_sd_bins"] = float(psth_sd_bins)
        details["psth_conditions"] = int(len(np.unique(labels)))
    if "rate_r2" in todo:
        truth = np.asarray(data[split + "_truth"])[:E_out, :T_out, :N_out]
        scalars = [None if data.get(k) is None else float(np.asarray(data[k]).reshape(()))
                   for k in ("conversion_factor", "max_firing_rate", "dt")]
        res = rate_r2.r2_against_truth(rates, truth, *scalars, output_dist=dist)
        values["rate_r2"] = res["r2_mean_per_neuron"]
        details.update(rate_r2_pooled=res["r2_pooled"], truth_scale=res["scale"],
                       truth_convention=res["convention"])
    return {"output_file": os.path.abspath(output_path),
            "data_file": os.path.abspath(data_path), "split": split, "trials": int(E_out),
            "output_dist": dist, "heldin_neurons": int(N_in),
            "heldout_neurons": int(N_all - N_in), "heldin_bins": int(T_in),
            "forward_bins": int(T_all - T_in), "metrics": values, "details": details,
            "not_computed": {m: r for m, r in reasons.items()
                             if m not in values and m in (wanted or METRICS)}}


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
    elif F.dist not in ("", "poisson", "gaussian"):
        problem = "--dist=%s: expected poisson or gaussian" % F.dist
    if problem:
        raise cli.CommandError(problem)
    try:
        result = score_files(output_path, data_path, F.split or None, wanted, F.dist or None,
                             F.psth_sd_bins)
    except (InputError, utils.DataError, ValueError) as e:
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
