"""The flags that lfads_from_nwb and lfads_from_arrays share, and their common main.

Both commands import this module, so each flag is defined once per process. `--seed`
is also a flag of run_lfads; where both are loaded in one process (tests) the two
definitions are one flag, an integer whose unset value means 0 here.
"""

from absl import flags

from lfads_tf2 import cli
from lfads_tf2.data import recording

FLAGS = flags.FLAGS

flags.DEFINE_float("bin_ms", 10.0, "Bin size in ms of the counts written (for counts "
                   "input: the bin size of the counts).")
flags.DEFINE_string("align_field", "", "Trials column of the event to align to, e.g. "
                    "move_onset_time; each trial becomes the window --window_ms around it. "
                    "Empty: chop the continuous recording (--chop_bins).")
flags.DEFINE_string("window_ms", "", "START,STOP of the window in ms relative to the align "
                    "time, e.g. -250,450; its length must be a multiple of --bin_ms.")
flags.DEFINE_integer("chop_bins", 0, "Without --align_field: length in bins of the segments "
                     "the continuous recording is cut into.")
flags.DEFINE_integer("overlap_bins", 0, "Bins shared by consecutive segments; lfads_merge "
                     "blends them linearly when putting the model's outputs together.")
flags.DEFINE_float("valid_fraction", 0.2, "Fraction of trials (or segments) in the "
                   "validation split.")
if "seed" not in FLAGS:
    flags.DEFINE_integer("seed", 0, "Seed of the train/valid split; the same seed gives the "
                         "same split.", allow_override=True)
flags.DEFINE_string("condition_field", "", "Trials column holding condition labels, written "
                    "as condition_labels_train/condition_labels_valid (lfads_align needs them).")
flags.DEFINE_string("heldout_units", "", "Comma-separated unit ids held out of the model's "
                    "input: written only to train_recon_data/valid_recon_data, after the "
                    "held-in units.")
flags.DEFINE_integer("fp_bins", 0, "Bins after each trial or segment added to "
                     "train_recon_data/valid_recon_data for forward prediction.")

SHARED_GROUPS = [
    ("Binning and trials", ["bin_ms", "align_field", "window_ms", "condition_field"]),
    ("Continuous recordings", ["chop_bins", "overlap_bins"]),
    ("Train/valid split", ["valid_fraction", "seed"]),
    ("Held-out units and forward prediction", ["heldout_units", "fp_bins"]),
]


def options_from_flags(units="all"):
    """recording.Options from the parsed flags."""
    return recording.Options(
        bin_ms=FLAGS.bin_ms, align_field=FLAGS.align_field,
        window_ms=recording.parse_window_ms(FLAGS.window_ms) if FLAGS.window_ms else (),
        chop_bins=FLAGS.chop_bins, overlap_bins=FLAGS.overlap_bins,
        valid_fraction=FLAGS.valid_fraction,
        seed=0 if FLAGS.seed is None else FLAGS.seed,
        condition_field=FLAGS.condition_field, units=units,
        heldout_units=recording.parse_unit_list(FLAGS.heldout_units), fp_bins=FLAGS.fp_bins)


def convert_main(argv, command, read, units="all"):
    """main of a converter: `command IN OUT`, read(IN) -> Recording, write OUT.

    Returns the exit status 0; bad input raises cli.CommandError or errors.DataError
    (one line, status 2: see cli.run).
    """
    src, out = cli.positional_args(argv, ["the input file", "OUT_H5"], command)
    opts = options_from_flags(units)
    recording.write(out, recording.to_lfads(read(src), opts))
    return 0
