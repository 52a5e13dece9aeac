"""`lfads_merge DATA_H5 OUT_H5 --train_output=F --valid_output=F`: segments back to one record.

DATA_H5 is a data file of chopped segments (lfads_from_nwb or lfads_from_arrays with
--chop_bins): it holds where each segment starts (`segment_start_bins`), their overlap
and the record's length, and train_inds/valid_inds give the segment of every row of
the train and valid output files (run_lfads --kind=posterior_sample_and_average or
posterior_push_mean). Every output key [segments, T', ...] with T' >= T (e.g.
output_dist_params, factors, gen_states, controller_outputs) becomes [record bins, ...]
in OUT_H5; overlaps are blended linearly (binning.merge).
"""
import sys

import numpy as np
from absl import flags

from lfads_tf2 import errors
import utils
from lfads_tf2.data import binning
from lfads_tf2 import cli

flags.DEFINE_string("train_output", "", "Output file of the train split, e.g. "
                    "model_runs_<dataset>_train_posterior_sample_and_average.")
flags.DEFINE_string("valid_output", "", "Output file of the valid split.")

DESCRIPTION = """\
lfads_merge DATA_H5 OUT_H5 --train_output=FILE --valid_output=FILE

Puts the model's outputs on chopped segments back into one continuous record,
blending overlapping segments linearly. DATA_H5 is the data file the segments came
from. With one split only, the bins no segment of it covers are NaN.

  lfads_merge data/rec_day1 rates_day1.h5 \\
      --train_output=save/model_runs_day1_train_posterior_sample_and_average \\
      --valid_output=save/model_runs_day1_valid_posterior_sample_and_average
"""
FLAG_GROUPS = [("Outputs to merge", ["train_output", "valid_output"])]

SEGMENT_KEYS = ("segment_start_bins", "overlap_bins", "recording_bins")


def _fail(path, key, problem):
    return errors.DataError("%s: %s: %s" % (path, key, problem))


def merge_outputs(data_path, outputs):
    """{key: [record bins, ...]} from {split: output file path} and the data file."""
    data = utils.read_data(data_path)
    for key in SEGMENT_KEYS:
        if key not in data:
            raise _fail(data_path, key, "missing: not a file of chopped segments (make it "
                        "with --chop_bins)")
    starts = np.asarray(data["segment_start_bins"])
    total, overlap = int(data["recording_bins"]), int(data["overlap_bins"])
    chop_bins = int(np.shape(data["train_data"])[1])
    parts = {}  # key -> ([segment numbers], [segments])
    for split, path in outputs.items():
        inds = np.asarray(data[split + "_inds"])
        out = utils.read_data(path)
        usable = {k: v for k, v in out.items()
                  if np.ndim(v) >= 2 and v.shape[0] == len(inds) and v.shape[1] >= chop_bins}
        if not usable:
            raise _fail(path, "(file)", "no key has %d rows (the %s segments of %s) of at "
                        "least %d bins" % (len(inds), split, data_path, chop_bins))
        for key, value in usable.items():
            # Forward-prediction bins past the segment have no place in the record.
            parts.setdefault(key, ([], []))
            parts[key][0].append(inds)
            parts[key][1].append(np.asarray(value)[:, :chop_bins])
    merged = {}
    for key, (inds, segs) in parts.items():
        inds = np.concatenate(inds)
        merged[key] = binning.merge(np.concatenate(segs), starts[inds], total, overlap)
    for key in ("bin_ms", "dt", "recording_start_s"):
        if key in data:
            merged[key] = data[key]
    return merged


def main(argv):
    data_path, out_path = cli.positional_args(argv, ["DATA_H5", "OUT_H5"], "lfads_merge")
    outputs = {split: path for split, path in (("train", flags.FLAGS.train_output),
                                               ("valid", flags.FLAGS.valid_output)) if path}
    if not outputs:
        raise cli.CommandError("give --train_output and/or --valid_output")
    merged = merge_outputs(data_path, outputs)
    utils.write_data(out_path, merged)
    shapes = ", ".join("%s %s" % (k, list(v.shape)) for k, v in sorted(merged.items())
                       if np.ndim(v) >= 2)
    print("Wrote %s: %s" % (out_path, shapes))
    return 0


def console_main():
    """Entry point of the `lfads_merge` console command."""
    cli.run(main, DESCRIPTION, FLAG_GROUPS, module=sys.modules[__name__],
            errors=(errors.DataError,))


if __name__ == "__main__":
    console_main()
