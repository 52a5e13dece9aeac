#!/usr/bin/env python
"""PNG figures of chosen trials of an LFADS output file, one PNG per trial.

Usage (from the repo root):
  python scripts/plot_lfads_outputs.py --output_file=F --data_file=D --out_dir=DIR
      [--split=train|valid|test] [--trials=0,1,2] [--output_dist=poisson|gaussian|zig|gamma]
      [--dpi=100] [--max_traces=10]

F is a `posterior_sample_and_average` or `posterior_push_mean` file:
`output_dist_params` [E, T, D] rates, or [E, T, 2D] Gaussian means then variances (the
distribution is inferred from that width unless --output_dist is given), `factors`,
optional `controller_outputs`. D is the dataset file: `<split>_data`, and when present
`<split>_truth`, `<split>_ext_input`, the true input (`input_<split>_truth` of the chaotic
generator or `<split>_inputs_u` of ITB) and `conversion_factor` (ITB convention detected,
see `lfads_tf2.evaluate.figures.truth_scale`). The split defaults to the one in F's
canonical file name. Outputs of a model with held-out neurons and forward bins are drawn
over `<split>_recon_data` (all neurons and bins); inputs that stop at T are padded with
zeros, truth with gaps.

Each trial k is written to DIR/<basename of F>_trial<k>.png (one column per figure, so
any number of trials stays readable); the paths written are printed, one per line.
Bad input gives a one-line error on stderr and exit status 2.
"""
import argparse
import os
import sys

import numpy as np

from lfads_tf2.evaluate import figures
from lfads_tf2.model import observation
from lfads_tf2.score.output_files import (InputError, check_shapes, mean_of_file,
                                          open_h5, require, resolve_output_dist,
                                          resolve_split, stored_output_dist,
                                          truth_scale_from_file)


def _parse_trials(text):
    """'0,1,5' -> [0, 1, 5] (order kept, duplicates dropped)."""
    try:
        trials = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise InputError("--trials must be comma-separated integers, got '%s'" % text) from None
    if not trials or min(trials) < 0:
        raise InputError("--trials must list non-negative trial indices, got '%s'" % text)
    return list(dict.fromkeys(trials))


def _parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output_file", required=True,
                   help="posterior_sample_and_average or posterior_push_mean h5 file")
    p.add_argument("--data_file", required=True, help="the dataset h5 file")
    p.add_argument("--split", choices=("train", "valid", "test"), default=None,
                   help="default: taken from the output file's name")
    p.add_argument("--trials", default="0", help="comma-separated trial indices")
    p.add_argument("--out_dir", required=True, help="folder for the PNG files")
    p.add_argument("--output_dist", choices=observation.NAMES, default=None,
                   help="default: inferred from the width of output_dist_params")
    p.add_argument("--dpi", type=float, default=100)
    p.add_argument("--max_traces", type=int, default=10,
                   help="neurons / factors drawn as traces")
    return p.parse_args(argv)


def _optional_trial(hf, keys, k):
    """Trial k of the first of `keys` present in hf, as a float array; else None."""
    for key in keys:
        if key in hf:
            return np.asarray(hf[key][k], dtype=np.float64)
    return None


def _padded_inputs(x, n_time):
    """Inputs [T] or [T, I] (or None) padded with zeros to n_time bins (forward bins)."""
    if x is None:
        return None
    return figures.pad_to(x, n_time, x.shape[1] if x.ndim > 1 else 1, 0.0)


def run(args):
    """Writes the PNGs and returns their paths; raises InputError on bad input."""
    split = resolve_split(args.split, args.output_file)
    trials = _parse_trials(args.trials)
    written = []
    with open_h5(args.output_file, "output file") as out_h5, \
            open_h5(args.data_file, "data file") as data_h5:
        params = require(out_h5, "output_dist_params")
        factors = require(out_h5, "factors")
        data = require(data_h5, "%s_data" % split)
        recon = data_h5.get("%s_recon_data" % split)
        wide = recon is not None and params.shape[1] == recon.shape[1] \
            and params.shape[2] % recon.shape[2] == 0
        if wide:  # a model with held-out neurons and forward bins: all of them
            data = recon
        check_shapes(args.output_file, params.shape, args.data_file, data.name[1:],
                     data.shape)
        n_trials, n_chan = params.shape[0], data.shape[2]
        output_dist = resolve_output_dist(args.output_dist, params.shape[2], n_chan,
                                          args.output_file, stored_output_dist(out_h5))
        obs = observation.for_dist(output_dist)
        means = mean_of_file(out_h5, output_dist)
        bad = [k for k in trials if k >= n_trials]
        if bad:
            raise InputError("%s: trial %d out of range, the file has %d %s trials"
                           % (args.output_file, bad[0], n_trials, split))
        truth_key = "%s_truth" % split
        scale, convention = truth_scale_from_file(data_h5, output_dist)
        if truth_key in data_h5 and convention != "none":
            # stderr: stdout carries only the written paths, for other tools to read.
            print("note: %s" % figures.describe_convention(convention, scale),
                  file=sys.stderr)
        stem = os.path.basename(os.path.normpath(args.output_file))
        for k in trials:
            p_k = np.asarray(params[k], dtype=np.float64)
            n_time = p_k.shape[0]
            ext_k = _optional_trial(data_h5, ["%s_ext_input" % split], k)
            truth_k = _optional_trial(data_h5, [truth_key], k)
            example = {
                "label": "%s trial %d" % (split, k),
                "data_txd": np.asarray(data[k]),
                "rates_txd": means[k],
                "vars_txd": obs.split_reported(p_k).get("variances"),
                "truth_txd": None if truth_k is None
                else figures.pad_to(truth_k, n_time, n_chan, np.nan),
                "factors_txf": np.asarray(factors[k], dtype=np.float64),
                "controller_outputs_txu": _optional_trial(out_h5, ["controller_outputs"], k),
                "ext_input_txi": _padded_inputs(ext_k, n_time),
                "input_truth_txi": _padded_inputs(_optional_trial(
                    data_h5, ["input_%s_truth" % split, "%s_inputs_u" % split], k), n_time),
            }
            fig = figures.plot_examples([example], output_dist=output_dist,
                                           conversion_factor=scale, title=stem,
                                           max_traces=args.max_traces, dpi=args.dpi)
            path = os.path.join(args.out_dir, "%s_trial%d.png" % (stem, k))
            figures.save_figure(fig, path)
            print(path)
            written.append(path)
    return written


def main(argv=None):
    args = _parse_args(argv)
    try:
        run(args)
    except InputError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:     # e.g. an unwritable --out_dir
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
