"""The `lfads_ensemble` command: several seeds of one model, trained side by side, and
their posterior rates averaged.

    flags (run_lfads's + --members, --parallel) -> checks (flags, data, member folders)
      -> --kind=train: members trained as run_lfads processes (members.py)
      -> posterior kinds: the kind run on every member, then the members' outputs
         averaged into <lfads_save_dir>/ensemble/ (average.py)
      -> prior_sample, write_model_params: run on every member (nothing to average)

Every check runs before the first member starts, without TensorFlow, save for the
architecture check of member folders that hold an unfinished run or are to be evaluated
(the keys come from lfads_tf2.train.build, which imports it).
"""
import json
import os
import signal
import sys
import time

from absl import flags

from lfads_tf2 import cli, errors
from lfads_tf2.data import checks
from lfads_tf2.ensemble import average, members as ensemble_members
from lfads_tf2.errors import LfadsError, UsageError
from lfads_tf2.model import observation
from lfads_tf2.train import flags as run_flags, hparams
import utils

FLAGS = flags.FLAGS

flags.DEFINE_integer("members", 4,
                     "Number of members: member k trains with --seed + k in "
                     "<lfads_save_dir>/member_<k>. At least 2.")
flags.DEFINE_integer("parallel", 0,
                     "Members that run at once, each a run_lfads process with the thread "
                     "settings of a lone run (0: one per core, os.cpu_count()).")

ENSEMBLE_GROUPS = [("Ensemble", ["members", "parallel"])]
# run_lfads's flags after the command's own: every member starts from them.
FLAG_GROUPS = ENSEMBLE_GROUPS + [("run_lfads: " + title, names)
                                 for title, names in run_flags.FLAG_GROUPS]

DESCRIPTION = """\
lfads_ensemble: an ensemble of LFADS models, trained from --members seeds side by side,
whose posterior rates are averaged.

Takes run_lfads's flags and --members, --parallel. Member k is the run

  run_lfads --kind=<kind> <the flags> --seed=<seed + k> \\
      --lfads_save_dir=<lfads_save_dir>/member_<k>

as a process of its own, --parallel at a time; its output goes to member_<k>/log.txt and
its flags to member_<k>/run_lfads.flags (run_lfads --flagfile=... --kind=... runs any
kind on one member).

Kinds (--kind):
  train                         trains every member; the same command started again
                                skips finished members and resumes the others
  posterior_sample_and_average  the kind on every member, then <lfads_save_dir>/ensemble/
  posterior_push_mean           holds its output files (the same names) with the members'
                                mean of output_dist_params (and output_dist_mean); keys
                                of a member's own latent space (factors, ...) are left out
  prior_sample                  the kind on every member, in its own folder (nothing is
  write_model_params            averaged)

A failing member does not stop the others; the command then exits with status 1 and the
member's last error line.

  lfads_ensemble --kind=train --members=4 --seed=1 --data_dir=/tmp/rnn_synth_data_v1.0/ \\
      --data_filename_stem=chaotic_rnn_inputs_g2p5 --lfads_save_dir=/tmp/lfads_ensemble
  lfads_ensemble --kind=posterior_sample_and_average --members=4 --seed=1 <same flags>
"""


class Plan(dict):
    """Everything an ensemble run needs, checked before any member starts (prepare)."""

    __getattr__ = dict.__getitem__


def _settings():
    return {name: FLAGS[name].value for _, names in ENSEMBLE_GROUPS for name in names}


def newest_hps_file(folder):
    """The path of the newest hyperparameters-<step>.txt of a save folder, or None."""
    steps = {}
    for name in os.listdir(folder) if os.path.isdir(folder) else ():
        middle = name[len("hyperparameters-"):-len(".txt")]
        if name.startswith("hyperparameters-") and name.endswith(".txt") \
                and middle.isdigit():
            steps[int(middle)] = name
    return os.path.join(folder, steps[max(steps)]) if steps else None


def check_architecture(member, hps):
    """Raises LfadsError when the member's folder holds a run (its newest hyperparameter
    file) of another architecture than hps (with the data-derived keys)."""
    path = newest_hps_file(member.save_dir)
    if path is None:
        return
    saved = utils.read_hps_json(path)
    # as the file holds them (tuples as lists, dict keys as strings)
    mine = json.loads(json.dumps({k: hps.get(k) for k in hparams.ARCHITECTURE_KEYS}))
    # hyperparameter files from before held-out neurons have the data's widths
    saved.setdefault("dataset_recon_dims", saved.get("dataset_dims"))
    for key in hparams.ARCHITECTURE_KEYS:
        if key in saved and saved[key] != mine[key]:
            flag = "data_filename_stem" if key in hparams.DATA_KEYS else key
            raise LfadsError(
                "%s: member %d was trained with %s=%s but the flags give %s=%s (pass the "
                "flags it was trained with, e.g. --%s, or choose another --lfads_save_dir)"
                % (path, member.index, key, _shown(saved[key]), key, _shown(mine[key]),
                   flag))


def _shown(value):
    return json.dumps(value, sort_keys=True)


def check_trained(member, hps):
    """Raises LfadsError unless the member's folder holds a trained model (the state
    file --checkpoint_pb_load_name names, for the evaluation kinds)."""
    state = hps.checkpoint_pb_load_name or "checkpoint"
    if not os.path.isdir(member.save_dir):
        raise LfadsError("%s: member %d missing (--kind=%s needs every member trained; "
                         "train them first with --kind=train)"
                         % (member.save_dir, member.index, hps.kind))
    tail = state.rsplit("-", 1)
    if len(tail) == 2 and tail[1].isdigit():  # one checkpoint by its path prefix
        if not os.path.exists(os.path.join(member.save_dir, state + ".index")):
            raise LfadsError("%s: member %d has no checkpoint %s"
                             % (member.save_dir, member.index, state))
    elif not os.path.exists(os.path.join(member.save_dir, state)):
        raise LfadsError("%s: member %d has no checkpoint (no state file '%s'); train it "
                         "first with --kind=train" % (member.save_dir, member.index, state))


def prepare(base_hps, settings):
    """Checks the ensemble's settings, run_lfads's flags, the data and the member
    folders; nothing is started. Returns a Plan; raises UsageError, DataError or
    LfadsError (all one line).

    base_hps: hparams.build_hps() of the command line. settings: {members, parallel}.
    """
    if settings["members"] < 2:
        raise UsageError("--members=%d: an ensemble needs at least 2 members"
                         % settings["members"])
    if settings["parallel"] < 0:
        raise UsageError("--parallel=%d: must not be negative (0: one member per core)"
                         % settings["parallel"])
    hps = hparams.HParams(base_hps)
    hparams.validate_hps(hps)
    if os.path.isabs(hps.checkpoint_pb_load_name):
        raise UsageError("--checkpoint_pb_load_name=%s: names one checkpoint, and each "
                         "member has its own; give a state file (checkpoint, "
                         "checkpoint_lve) or a prefix relative to the member folders"
                         % hps.checkpoint_pb_load_name)
    train = hps.kind == "train"
    datasets, notes = checks.load_datasets(
        hps.data_dir, hps.data_filename_stem, observation.for_dist(hps.output_dist),
        ext_input_dim=hps.ext_input_dim, factors_dim=hps.factors_dim,
        batch_size=hps.batch_size if train else None, kind=hps.kind,
        nan_is_missing=hps.nan_is_missing)
    for note in notes:
        print("note: " + note)
    derived = hparams.add_derived_hps(hparams.HParams(hps), datasets)
    root = os.path.abspath(hps.lfads_save_dir)
    members = ensemble_members.make_members(hps, settings["members"], root)
    if not train:
        for member in members:
            check_trained(member, hps)
    for member in members:
        # A finished member with the same flags is skipped: nothing to check (and
        # starting the same command again stays quick, without TensorFlow).
        if not (train and ensemble_members.is_finished(member)):
            check_architecture(member, derived)
    splits = {name: [s for s in ("train", "valid", "test") if s + "_data" in d]
              for name, d in datasets.items()}
    outputs = average.output_names(hps, splits, hps.kind) \
        if hps.kind in average.AVERAGED_KINDS else []
    return Plan(hps=hps, kind=hps.kind, root=root, members=members, outputs=outputs,
                parallel=settings["parallel"] or os.cpu_count() or 1)


def run(plan, process_flags=(), python=None, out=print):
    """Runs the plan's members (and averages their outputs). Returns the exit status:
    0, or 1 when a member failed (the error printed)."""
    start = time.time()
    runner = ensemble_members.Runner(min(plan.parallel, len(plan.members)), python, out)

    def stop(signum, frame):
        del frame
        print("Stopped by signal %d: stopping the members." % signum, file=sys.stderr)
        runner.stop(signum)

    previous = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        if plan.kind == "train":
            for member in plan.members:
                ensemble_members.write_flagfile(member)
        results = runner.run(plan.members, plan.kind, process_flags,
                             skip_finished=plan.kind == "train")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if runner.stopping is not None:
        return 128 + runner.stopping
    failed = [r for r in results if r.status not in (0, None)]
    if failed:
        print("error: %d of %d members failed; member %d (status %d): %s"
              % (len(failed), len(results), failed[0].member.index, failed[0].status,
                 failed[0].error), file=sys.stderr)
        return 1
    out("%d members: %s in %.1f min" % (len(results), plan.kind, (time.time() - start) / 60))
    if plan.outputs:
        for path in average.write_ensemble_outputs(
                [m.save_dir for m in plan.members], plan.root, plan.outputs):
            out("Wrote %s" % path)
    return 0


def main(argv):
    if len(argv) > 1:
        raise errors.CommandError("unexpected argument %r (lfads_ensemble takes flags only)"
                                  % argv[1])
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    plan = prepare(hparams.build_hps(), _settings())
    return run(plan, ensemble_members.process_flags(FLAGS))


def console_main():
    """Entry point of the `lfads_ensemble` console command."""
    cli.run(main, DESCRIPTION, FLAG_GROUPS, module=sys.modules[__name__],
            errors=errors.ONE_LINE_ERRORS)


if __name__ == "__main__":
    console_main()
