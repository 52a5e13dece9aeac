"""Imports a model trained with the original (TF1) LFADS into a save folder of ours.

SRC is either an original `lfads_save_dir` (its `checkpoint` state file,
`lfads_vae.ckpt-N.*` and `hyperparameters-N.txt`), read with TensorFlow's own
checkpoint reader (no TF1 code, no graph), or an original `model_params` h5 file
(then --hps names its hyperparameters file). OUT becomes an `lfads_save_dir` of this
project: a checkpoint listed in the state file `checkpoint` and a hyperparameters
file, ready for every --kind of run_lfads with the flags the original was trained with.

Every variable of the original maps to exactly one of ours by its TF1 name (our
variables carry the original's names; the table is `expected_names` below). A name
left unmatched on either side, or a shape that does not fit, is a one-line error.
The step count, learning rate and Adam slots carry over when present, so
`--kind=train` on OUT continues where the original stopped.
"""
import glob
import os
import re
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
from absl import flags  # noqa: E402

from lfads_tf2 import errors
from lfads_tf2 import cli  # noqa: E402
import utils  # noqa: E402
from lfads_tf2.train import hparams
from lfads_tf2.errors import ImportProblem

flags.DEFINE_string("hps", None, "The original's hyperparameters-N.txt. Needed when SRC is a "
                    "model_params file; default: the one of SRC's checkpoint step, else the newest "
                    "in SRC.")

DESCRIPTION = """\
lfads_import_original SRC OUT [--hps=FILE]

Imports a model trained by the original (TF1) LFADS. SRC is the original's
lfads_save_dir (its checkpoint and hyperparameters-N.txt) or its model_params file
(with --hps). OUT becomes a save folder of this project: run_lfads --lfads_save_dir=OUT
with the flags the original was trained with runs every --kind, and --kind=train
continues the original's training (step, learning rate and Adam state carry over).

  lfads_import_original /path/to/original/lfads_save_dir /path/to/new_save_dir
"""
FLAG_GROUPS = [("Source", ["hps"])]


# Bias variables that some versions of the original created for layers built
# without a bias (never used by the model, always zero): accepted and ignored.
# Matched against names with '/' replaced by '_'.
_UNUSED_BIAS = re.compile(r".*_(x_2_ru|x_2_c|gen_2_fac)_b(_Adam(_1)?)?$")


def _hps_defaults():
    """Our hyperparameters at their defaults (for keys older files lack)."""
    return hparams.hps_from_argv([])


def load_hps(path):
    """The original's hyperparameters JSON as our hps (unknown keys are dropped)."""
    saved = utils.read_hps_json(path)
    hps = _hps_defaults()
    for key, value in saved.items():
        if key in hps or key in ("dataset_names", "dataset_dims", "num_steps",
                                 "ndatasets", "kind"):
            hps[key] = value
    for key in ("dataset_names", "dataset_dims", "num_steps"):
        if key not in saved:
            raise ImportProblem("%s: %s: missing; cannot size the model" % (path, key))
    hps["dataset_names"] = sorted(hps["dataset_names"])
    hps["num_steps_for_gen_ic"] = min(int(hps["num_steps_for_gen_ic"]),
                                      int(hps["num_steps"]))
    return hps


def read_source(src, hps_path=None):
    """Returns (values {TF1 name: array}, hps, step, description of src)."""
    if not os.path.exists(src):
        raise ImportProblem("%s: no such folder or file" % src)
    import tensorflow as tf
    if os.path.isdir(src):
        from lfads_tf2.train import checkpoints
        paths = checkpoints.read_checkpoint_state(src, "checkpoint")
        if not paths:
            raise ImportProblem("%s: checkpoint: no checkpoint state file in this folder"
                               % src)
        ckpt = paths[-1]
        try:
            reader = tf.train.load_checkpoint(ckpt)
        except Exception as e:  # noqa: BLE001  (any reader failure is a bad source)
            raise ImportProblem("%s: checkpoint cannot be read (%s)"
                               % (ckpt, str(e).splitlines()[0])) from None
        values = {name: reader.get_tensor(name)
                  for name in reader.get_variable_to_shape_map()
                  if name != "_CHECKPOINTABLE_OBJECT_GRAPH"}
        step = checkpoints.step_of_checkpoint(ckpt)
        if hps_path is None:
            candidates = [os.path.join(src, "hyperparameters-%d.txt" % step)]
            candidates += sorted(glob.glob(os.path.join(src, "hyperparameters-*.txt")),
                                 key=lambda p: int(re.findall(r"-(\d+)\.txt$", p)[0])
                                 if re.findall(r"-(\d+)\.txt$", p) else -1,
                                 reverse=True)
            hps_path = next((c for c in candidates if os.path.exists(c)), None)
            if hps_path is None:
                raise ImportProblem("%s: hyperparameters-*.txt: not found; pass --hps"
                                   % src)
        return values, load_hps(hps_path), step, ckpt
    if hps_path is None:
        raise ImportProblem("%s: (file): a model_params file needs --hps=<hyperparameters "
                           "file>" % src)
    try:
        hf = h5py.File(src, "r")
    except OSError as e:
        raise ImportProblem("%s: (file): not a readable HDF5 file (%s)"
                           % (src, str(e).splitlines()[0])) from None
    values = {}
    with hf:
        for key in hf:
            name = key[:-2] if key.endswith(":0") else key
            # model_params keys are TF1 names with '/' -> '_'; recovered by matching
            # against our names in `match`, so keep the flat key here.
            values[name] = hf[key][()]
    step = int(values.get("LFADS_global_step", 0))
    return values, load_hps(hps_path), step, src


def build_target(hps, values):
    """Our bundle for hps; read-ins exist iff the source has them."""
    from lfads_tf2.train import build
    info = {}
    for name in hps["dataset_names"]:
        D = int(hps["dataset_dims"][name])
        has_readin = any(k.replace("/", "_").startswith("LFADS_x_2_infac_%s_" % name)
                         for k in values)
        info[name] = {"data_dim": D,
                      "alignment_matrix_cxf": np.zeros((D, hps["factors_dim"]), np.float32)
                      if has_readin else None,
                      "alignment_bias_c": None}
    hps["seed"] = 0  # deterministic construction; weights are overwritten anyway
    bundle = build.bundle(hps, info)
    hps["seed"] = None
    return bundle


def expected_names(bundle):
    """{TF1 name: our variable} for every variable of the original's graph."""
    from lfads_tf2.train import build
    names = {}
    for v in build.original_variables(bundle):
        names[v.name[:-2]] = v
    return names


def match(values, bundle, src):
    """Assigns the source values to our variables; returns (n assigned, notes)."""
    ours = expected_names(bundle)
    flat = {k.replace("/", "_"): k for k in values}
    notes = []
    used = set()
    for name, var in sorted(ours.items()):
        key = name if name in values else flat.get(name.replace("/", "_"))
        if key is None:
            if "/Adam" in name or name.endswith("_power"):
                continue  # optimizer state absent (e.g. model_params without slots)
            raise ImportProblem("%s: %s: variable of our model has no counterpart in the "
                               "original (check the flags in the hyperparameters file)"
                               % (src, name))
        value = np.asarray(values[key])
        if tuple(value.shape) != tuple(var.shape):
            raise ImportProblem("%s: %s: shape %s in the original, %s in our model"
                               % (src, name, list(value.shape), var.shape.as_list()))
        var.assign(value.astype(var.dtype.as_numpy_dtype))
        used.add(key)
    for key in sorted(set(values) - used):
        if _UNUSED_BIAS.match(key.replace("/", "_")):
            notes.append("ignored unused zero bias %s" % key)
            continue
        raise ImportProblem("%s: %s: variable of the original has no counterpart in our "
                           "model" % (src, key))
    return len(used), notes


def import_model(src, out, hps_path=None):
    """Does the import; returns the path of the checkpoint written."""
    values, hps, step, desc = read_source(src, hps_path)
    # after read_source: a bad SRC is reported without importing TensorFlow
    from lfads_tf2.train import build, checkpoints
    bundle = build_target(hps, values)
    n, notes = match(values, bundle, desc)
    for note in notes:
        print("note: " + note)
    bundle.state.arch_json.assign(build.architecture_json(hps))
    os.makedirs(out, exist_ok=True)
    hps["lfads_save_dir"] = out
    hps["kind"] = "train"
    step = int(bundle.state.global_step.numpy())
    saver = checkpoints.CheckpointSaver(bundle.checkpoint, out,
                                        hps["checkpoint_name"] + ".ckpt",
                                        checkpoints.CHECKPOINT_STATE, hps["max_ckpt_to_keep"])
    path = saver.save(step)
    checkpoints.write_hps_file(hps, out, step)
    print("Imported %d variables from %s into %s (step %d)." % (n, desc, path, step))
    return path


def main(argv):
    """SRC and OUT from the command line (after absl removed the flags)."""
    src, out = cli.positional_args(argv, ["SRC", "OUT"], "lfads_import_original")
    import_model(src, out, flags.FLAGS.hps)
    return 0


def console_main():
    """Entry point of the `lfads_import_original` console command."""
    cli.run(main, DESCRIPTION, FLAG_GROUPS, module=sys.modules[__name__],
            errors=(ImportProblem, errors.DataError))


if __name__ == "__main__":
    console_main()
