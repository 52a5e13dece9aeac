#!/usr/bin/env python
"""R² of LFADS posterior-averaged rates against the ground truth of synthetic data.

Usage (from the repo root):
  python scripts/compare_to_truth.py --output_file=F --data_file=D [--split=valid]
      [--output_dist=poisson|gaussian|zig|gamma] [--smoothing_sd_bins=N] [--truth_scale=S]
      [--per_bin]

F is a `posterior_sample_and_average` or `posterior_push_mean` file, D the dataset file
it was run on, which must hold `<split>_truth`. The split defaults to the one in F's
canonical name (`..._<split>_posterior_...`). Rates are mapped to the truth's units with
the conversion-factor convention detected from D (see
`lfads_tf2.evaluate.figures.truth_scale`). Prints `key value` lines, e.g. `r2_pooled 0.9312`;
--per_bin adds one line per time bin with its R² and its share of the error
(`r2_bin 0 0.2012 error_share 0.0710`), which shows where in the trial the error lies.

The scores are those of lfads_tf2.score.rate_r2, the file checks those of lfads_tf2.score.output_files.
"""
import argparse
import sys

import numpy as np

from lfads_tf2.evaluate import figures
from lfads_tf2.model import observation
from lfads_tf2.score.output_files import (InputError, check_shapes, mean_of_file, open_h5,
                                          read_scalar, require, resolve_output_dist,
                                          resolve_split, stored_output_dist)
from lfads_tf2.score.rate_r2 import r2_against_truth, r2_per_bin, smoothed_spikes_r2


def _parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--output_file", required=True,
                   help="posterior_sample_and_average or posterior_push_mean h5 file")
    p.add_argument("--data_file", required=True, help="the dataset h5 file (with truth)")
    p.add_argument("--split", choices=("train", "valid", "test"), default=None,
                   help="default: taken from the output file's name")
    p.add_argument("--output_dist", choices=observation.NAMES, default=None,
                   help="default: inferred from the width of output_dist_params")
    p.add_argument("--smoothing_sd_bins", type=float, default=None,
                   help="also print the R² of spikes smoothed with this Gaussian s.d.")
    p.add_argument("--truth_scale", type=float, default=None,
                   help="override the rates -> truth multiplier instead of detecting it")
    p.add_argument("--per_bin", action="store_true",
                   help="also print each time bin's R² and share of the error")
    return p.parse_args(argv)


def run(args):
    """Computes and prints the scores; raises InputError on bad input."""
    split = resolve_split(args.split, args.output_file)
    with open_h5(args.output_file, "output file") as out_h5, \
            open_h5(args.data_file, "data file") as data_h5:
        params = require(out_h5, "output_dist_params")
        truth_ds = require(data_h5, "%s_truth" % split)
        check_shapes(args.output_file, params.shape, args.data_file, truth_ds.name[1:],
                     truth_ds.shape)
        n_trials, _, n_chan = params.shape[0], params.shape[1], truth_ds.shape[2]
        output_dist = resolve_output_dist(args.output_dist, params.shape[2], n_chan,
                                          args.output_file, stored_output_dist(out_h5))
        # The observation model's mean: the rates, the Gaussian means, ...
        rates = mean_of_file(out_h5, output_dist)
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
                                      figures.describe_convention(res["convention"],
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
    except InputError as e:
        print("error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
