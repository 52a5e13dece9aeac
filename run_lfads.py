"""The `run_lfads` command: the original's command line, and the dispatch on --kind.

    flags (lfads_tf2.train.flags) -> hps (lfads_tf2.train.hparams, checked)
      -> data files read and checked (utils, lfads_tf2.data.checks)
      -> TensorFlow's runtime (lfads_tf2.train.runtime)
      -> --kind=train: the training loop (lfads_tf2.train.loop)
         any other kind: the evaluation kinds (lfads_tf2.evaluate.kinds)

Every flag of the original run_lfads.py keeps its name, default and meaning. Bad flags
and bad data are reported as one line before TensorFlow is imported; the help text and
the flag errors come from lfads_tf2/cli.py.
"""
import os
import signal
import sys
import traceback

# TensorFlow's C++ log lines (CUDA probing, oneDNN notes) are not for users; real
# problems reach Python as exceptions. See lfads_tf2.train.runtime.quiet_tensorflow_import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from lfads_tf2 import cli, errors  # noqa: E402
from lfads_tf2.data import checks  # noqa: E402
from lfads_tf2.model import observation  # noqa: E402
from lfads_tf2.train import flags as run_flags, hparams, runtime  # noqa: E402

FLAGS = run_flags.FLAGS


def train_kind(hps, datasets):
    """--kind=train. The example figure is evaluation's (posterior samples); the loop
    only calls it, so the training loop does not import evaluation."""
    from lfads_tf2.evaluate import kinds
    from lfads_tf2.train import loop
    return loop.train(hps, datasets, make_plotter=kinds.ExamplePlotter)


def evaluation_kind(hps, datasets):
    """Every other kind: lfads_tf2.evaluate.kinds looks hps.kind up in its table."""
    from lfads_tf2.evaluate import kinds
    return kinds.run_kind(hps, datasets)


def run(hps, allow_gpu_growth=False, intra_op_threads=-1, inter_op_threads=0):
    """Loads the data and runs hps.kind. Raises DataError/UsageError on bad input."""
    hparams.validate_hps(hps)
    batch_for_check = hps.batch_size if hps.kind == "train" else None
    datasets, notes = checks.load_datasets(
        hps.data_dir, hps.data_filename_stem, observation.for_dist(hps.output_dist),
        ext_input_dim=hps.ext_input_dim, factors_dim=hps.factors_dim,
        batch_size=batch_for_check, kind=hps.kind, nan_is_missing=hps.nan_is_missing)
    for note in notes:
        print("note: " + note)
    hparams.add_derived_hps(hps, datasets)
    runtime.quiet_tensorflow_import()  # only now: bad flags and data fail fast
    if intra_op_threads < 0:
        intra_op_threads = 1 if hps.kind == "train" else 0
    runtime.configure_threads(intra_op_threads, inter_op_threads)
    device = runtime.select_device(hps.device, allow_gpu_growth)
    import tensorflow as tf
    with tf.device(device):
        return (train_kind if hps.kind == "train" else evaluation_kind)(hps, datasets)


_stop_signum = None  # set once SIGTERM or SIGINT has arrived


def _exit_on_stop_signal(signum, frame):
    """SIGTERM (`kill`, a job scheduler's time limit) and SIGINT (Ctrl-C) exit with
    128 + signum and a one-line note instead of a traceback. Python's clean-up runs,
    so a half-written output's temporary file is removed and the save-folder lock
    released (checkpoints are written atomically regardless)."""
    del frame
    global _stop_signum
    _stop_signum = signum
    print("Stopped by signal %d." % signum, file=sys.stderr)
    sys.exit(128 + signum)


def main(argv):
    del argv
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_on_stop_signal)
    debug = FLAGS.debug or os.environ.get("LFADS_DEBUG", "") not in ("", "0")
    hps = hparams.build_hps()
    try:
        run(hps, allow_gpu_growth=FLAGS.allow_gpu_growth,
            intra_op_threads=FLAGS.intra_op_threads,
            inter_op_threads=FLAGS.inter_op_threads)
    except Exception as e:  # one line for users; the traceback only with --debug
        if _stop_signum is not None:
            # The SystemExit of _exit_on_stop_signal can come out of TensorFlow as another
            # exception when it lands mid-way in TF code (seen: "Exiting device scope
            # without proper scope nesting" from the checkpoint writer). Clean-up has
            # run all the same on the way out: exit as the signal asked.
            sys.exit(128 + _stop_signum)
        known = errors.ONE_LINE_ERRORS
        if debug or not isinstance(e, known):
            traceback.print_exc()
            if not isinstance(e, known):
                sys.exit(1)
        print("error: %s" % str(e).splitlines()[0] if str(e) else repr(e),
              file=sys.stderr)
        sys.exit(2)


def run_command(argv=None):
    """Runs the command line: help and flag errors as lfads_tf2.cli, then main."""
    cli.run(main, run_flags.DESCRIPTION, run_flags.FLAG_GROUPS, module=run_flags, argv=argv)


def console_main():
    """Entry point of the `run_lfads` console command."""
    run_command()


if __name__ == "__main__":
    run_command()
