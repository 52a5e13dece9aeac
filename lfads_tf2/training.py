"""Building, checkpointing and training an LFADS model (spec §8-§9).

`build(hps, datasets)` makes the model with its optimizer, training state and
checkpoint; `restore(...)` loads a checkpoint chosen by --checkpoint_pb_load_name;
`train(hps, datasets)` is the epoch loop of the original: batches -> compiled train
step -> validation -> lowest-validation checkpoint -> learning-rate plateau rule.

Unlike the original, everything the loop decides on (epoch, learning rate, the
plateau window, the lowest validation cost, the random generator state and the seed
of the batch order) lives in the checkpoint, so a restarted run continues as an
uninterrupted one would (the original forgot this on restart, spec Q14).
"""
import collections
import json
import os

import numpy as np
import tensorflow as tf

import distributions
import lfads
from lfads_tf2 import checkpoint_layout, optimizer as optimizer_lib
import utils
from utils import LfadsError

CHECKPOINT_STATE = "checkpoint"
CHECKPOINT_STATE_LVE = "checkpoint_lve"


# Flags that fix the shapes of the variables: a checkpoint can only be restored
# with the same values.
ARCHITECTURE_KEYS = (
    "output_dist", "ext_input_dim", "inject_ext_input_to_gen", "ic_dim",
    "factors_dim", "ic_enc_dim", "gen_dim", "co_dim", "ci_enc_dim", "con_dim",
    "do_causal_controller", "do_feed_factors_to_controller",
    "feedback_factors_or_rates", "dataset_names", "dataset_dims")




# ------------------------------------------------------------------ model and state
class TrainState(tf.Module):
    """Everything besides weights and optimizer slots that a resumed run needs."""

    def __init__(self, hps, arch_json, base_seed):
        super().__init__(name=None)
        self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False,
                                       name="LFADS/global_step")
        self.learning_rate = tf.Variable(hps.learning_rate_init, dtype=tf.float32,
                                         trainable=False, name="LFADS/learning_rate")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        # Plateau rule history: last training totals (+inf after a decay), §8.4.
        self.train_costs = tf.Variable(np.zeros([0], np.float64), trainable=False,
                                       shape=tf.TensorShape([None]), name="train_costs")
        self.valid_count = tf.Variable(0, dtype=tf.int64, trainable=False,
                                       name="valid_count")
        self.lowest_valid_cost = tf.Variable(np.inf, dtype=tf.float64, trainable=False,
                                             name="lowest_valid_cost")
        self.base_seed = tf.Variable(base_seed, dtype=tf.int64, trainable=False,
                                     name="base_seed")
        self.arch_json = tf.Variable(arch_json, dtype=tf.string, trainable=False,
                                     name="arch_json")
        self.bad_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                     name="nonfinite_steps")


Bundle = collections.namedtuple(
    "Bundle", "model state optimizer rng checkpoint train_vars")


def architecture_json(hps):
    """The flags that fix variable shapes, as JSON (stored in every checkpoint)."""
    return json.dumps({k: hps[k] for k in ARCHITECTURE_KEYS}, sort_keys=True)


def datasets_info(datasets):
    """Per-dataset sizes and alignment arrays the model needs (no other data)."""
    info = {}
    for name, d in datasets.items():
        info[name] = {"data_dim": int(d["data_dim"]),
                      "alignment_matrix_cxf": d.get("alignment_matrix_cxf"),
                      "alignment_bias_c": d.get("alignment_bias_c")
                      if d.get("alignment_matrix_cxf") is not None else None}
    return info


def build(hps, info):
    """Creates model, training state, optimizer, random generator and checkpoint.

    info: per-dataset sizes and alignment arrays, see `datasets_info`.
    """
    seed = hps.get("seed")
    if seed is not None:
        tf.keras.utils.set_random_seed(seed)  # python, numpy and TF global seeds
        rng = tf.random.Generator.from_seed(seed)
        base_seed = seed
    else:
        # A fresh random seed rather than from_non_deterministic_state(), which
        # TensorFlow refuses once op determinism is on in the process.
        base_seed = int(np.random.SeedSequence().generate_state(1)[0])
        rng = tf.random.Generator.from_seed(base_seed)
    model = lfads.LFADS(hps, info, init_seed=seed)
    state = TrainState(hps, architecture_json(hps), base_seed)
    train_vars = model.trainable_variables_to_train()
    # Slots for every trainable variable, not only those this run updates, so a
    # checkpoint fits every --do_train_io_only / --do_train_encoder_only setting.
    optimizer = optimizer_lib.Adam(model.trainable_variables, state.learning_rate)
    checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, state=state,
                                     rng=rng)
    return Bundle(model, state, optimizer, rng, checkpoint, train_vars)


# ------------------------------------------------------------------ checkpoints
def _state_path(save_dir, state_name):
    return os.path.join(save_dir, state_name or CHECKPOINT_STATE)


def parse_checkpoint_state(save_dir, state_name):
    """(checkpoint prefixes named by a state file, newest last; problem or None).

    The problem is a short text when the file exists but is not a state file (empty,
    binary, a line that is not `key: value`, no model_checkpoint_path); the prefixes
    are then those that could be parsed, maybe none. A missing file gives ([], None).
    """
    path = _state_path(save_dir, state_name)
    if not os.path.exists(path):
        return [], None
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except UnicodeDecodeError:
        return [], "not a text file"
    except OSError as e:
        return [], e.strerror or str(e)
    paths = []
    latest = None
    problem = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        key, sep, value = line.partition(":")
        key = key.strip()
        if not sep or not key.replace("_", "").isalnum():
            problem = problem or "line %d is not 'key: value'" % number
            continue
        value = value.strip().strip('"')
        if key == "all_model_checkpoint_paths":
            paths.append(value)
        elif key == "model_checkpoint_path":
            latest = value
    if not text.strip():
        problem = "empty"
    elif not latest and problem is None:
        problem = "no model_checkpoint_path line"
    if latest:
        # the latest is last
        paths = [p for p in paths if p != latest] + [latest]
    return [p if os.path.isabs(p) else os.path.join(save_dir, p) for p in paths], problem


def read_checkpoint_state(save_dir, state_name):
    """Returns the list of checkpoint prefixes named by a state file, newest last.

    Lenient: what can be parsed of a damaged state file (see parse_checkpoint_state).
    """
    return parse_checkpoint_state(save_dir, state_name)[0]


def write_checkpoint_state(save_dir, state_name, paths):
    """Replaces a state file atomically: it names paths (newest last), relative to save_dir."""
    rel = [os.path.relpath(p, save_dir) for p in paths]
    lines = ['all_model_checkpoint_paths: "%s"' % r for r in rel]
    text = 'model_checkpoint_path: "%s"\n%s\n' % (rel[-1], "\n".join(lines))
    with utils.atomic_path(_state_path(save_dir, state_name)) as tmp:
        with open(tmp, "w") as f:
            f.write(text)


class CheckpointSaver:
    """Saves checkpoints `<save_dir>/<prefix>-<step>` listed in a TF state file.

    tf.train.CheckpointManager always names its state file `checkpoint`; LFADS
    keeps two (`checkpoint` and `checkpoint_lve`) in one folder, as the original.
    The data files are written first and the state file is replaced atomically
    afterwards, so a kill at any moment leaves the previous checkpoint loadable.
    """

    def __init__(self, checkpoint, save_dir, prefix, state_name, max_to_keep):
        self.checkpoint = checkpoint
        self.save_dir = save_dir
        self.prefix = prefix
        self.state_name = state_name
        self.max_to_keep = max_to_keep

    def save(self, step):
        path = os.path.join(self.save_dir, "%s-%d" % (self.prefix, step))
        self.checkpoint.write(path)
        paths = [p for p in read_checkpoint_state(self.save_dir, self.state_name)
                 if p != path] + [path]
        keep = paths[-self.max_to_keep:] if self.max_to_keep > 0 else paths
        write_checkpoint_state(self.save_dir, self.state_name, keep)
        for old in paths[:-len(keep)] if len(keep) < len(paths) else []:
            for fname in tf.io.gfile.glob(old + ".*"):
                tf.io.gfile.remove(fname)
        return path


class _Unusable(Exception):
    """Why a checkpoint cannot be restored into the model (one line, no path)."""

    def __init__(self, reason, architecture=False):
        super().__init__(reason)
        self.reason = reason
        self.architecture = architecture  # made with other architecture flags


def _first_line(e):
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def checkpoint_keys(checkpoint):
    """{checkpoint key: variable} of everything a tf.train.Checkpoint saves, or {}.

    Uses TensorFlow's own serialisation of the object graph (private API: when it
    is not there, the shape check is skipped and a misfit is still caught by
    Checkpoint.read and assert_existing_objects_matched).
    """
    try:
        from tensorflow.python.checkpoint import graph_view, save_util
        serialized = save_util.serialize_graph_view(
            graph_view.ObjectGraphView(checkpoint))[0]
        return {key: obj for obj, tensors in serialized.items()
                for key in tensors if hasattr(obj, "shape")}
    except Exception:  # noqa: BLE001 - an optional check
        return {}


def check_checkpoint(bundle, hps, path):
    """The tf.train.Checkpoint to read the checkpoint at prefix `path` with (see
    checkpoint_layout); raises _Unusable unless the checkpoint can be restored.

    A file cut short (full disk, interrupted copy), a missing index or data file, an
    index of another checkpoint or a tensor of the wrong shape make TensorFlow fail
    in many ways (IndexError, DataLossError, other OpErrors, ValueError), some only
    once the tensor is read, after other variables were already overwritten. So
    every tensor is read here first (cheap next to training) and compared with the
    model, before anything is restored.
    """
    if not os.path.exists(path + ".index"):
        raise _Unusable("index file missing" if _data_files(path)
                        else "no such checkpoint files")
    if not _data_files(path):
        raise _Unusable("data file missing")
    try:
        reader = tf.train.load_checkpoint(path)
        shapes = reader.get_variable_to_shape_map()
        dtypes = reader.get_variable_to_dtype_map()
    except Exception as e:  # noqa: BLE001 - whatever TensorFlow raises for a bad index
        raise _Unusable("index file unreadable: %s" % _first_line(e)) from None
    values = {}
    for key in sorted(shapes):
        try:
            values[key] = reader.get_tensor(key)
        except Exception as e:  # noqa: BLE001 - IndexError, DataLossError, ...
            raise _Unusable("data file truncated or damaged: %s (tensor %s)"
                            % (_first_line(e), key)) from None
    arch_key = "state/arch_json/.ATTRIBUTES/VARIABLE_VALUE"
    if arch_key in values:
        try:
            saved = json.loads(values[arch_key].decode("utf-8"))
            assert isinstance(saved, dict)
        except Exception:  # noqa: BLE001
            raise _Unusable("tensor %s is not the architecture record" % arch_key) \
                from None
        mine = json.loads(architecture_json(hps))
        for key in mine:
            if key in saved and saved[key] != mine[key]:
                flag = key if key not in ("dataset_names", "dataset_dims") \
                    else "data_filename_stem"
                raise _Unusable(
                    "checkpoint was trained with %s=%s but the flags give %s=%s "
                    "(pass the training flags, e.g. --%s=%s)"
                    % (key, json.dumps(saved[key]), key, json.dumps(mine[key]),
                       flag, saved[key] if flag == key else "..."), architecture=True)
    checkpoint = checkpoint_layout.checkpoint_to_read(bundle, reader)
    for key, var in sorted(checkpoint_keys(checkpoint).items()):
        if key not in shapes:
            raise _Unusable("no tensor %s, which the model has" % key)
        if not var.shape.is_compatible_with(shapes[key]) or \
                (hasattr(var, "dtype") and var.dtype.base_dtype != dtypes[key]):
            raise _Unusable("tensor %s is %s %s, the model's is %s %s"
                            % (key, dtypes[key].name, list(shapes[key]),
                               var.dtype.base_dtype.name, var.shape.as_list()))
    return checkpoint


def _check_and_read(bundle, hps, path):
    """check_checkpoint, then restores the checkpoint into the bundle.

    Raises _Unusable. Should the read still fail (it cannot once the check passed,
    unless TensorFlow's private API the shape check uses is gone), some variables may
    already hold its values: a fallback's full read of another checkpoint (all
    objects matched) overwrites them all.
    """
    checkpoint = check_checkpoint(bundle, hps, path)
    try:
        status = checkpoint.read(path)
        status.assert_existing_objects_matched()
    except (tf.errors.OpError, ValueError) as e:
        raise _Unusable(_first_line(e)) from None
    except AssertionError as e:
        raise _Unusable("does not fit the model built from the flags: %s"
                        % str(e).splitlines()[0][:300]) from None
    status.expect_partial()


def _files_prefix(hps, state_name):
    """Prefix of the checkpoint files a state file of training lists, or None."""
    if state_name == CHECKPOINT_STATE:
        return hps.checkpoint_name + ".ckpt"
    if state_name == CHECKPOINT_STATE_LVE:
        return hps.checkpoint_name + "_lve.ckpt"
    return None


def _data_files(path):
    """The <path>.data-* files (os.listdir: a folder name may hold glob characters)."""
    folder, base = os.path.split(path)
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return []
    return [n for n in names if n.startswith(base + ".data-")]


def checkpoints_in_folder(save_dir, prefix):
    """Checkpoint prefixes <save_dir>/<prefix>-<step> with any file left, oldest first."""
    if prefix is None or not os.path.isdir(save_dir):
        return []
    steps = set()
    for name in os.listdir(save_dir):
        if name.startswith(prefix + "-"):
            step = name[len(prefix) + 1:].split(".", 1)[0]
            if step.isdigit() and name[len(prefix) + 1 + len(step):].startswith("."):
                steps.add(int(step))
    return [os.path.join(save_dir, "%s-%d" % (prefix, s)) for s in sorted(steps)]


def checkpoint_path_arg(save_dir, name):
    """The checkpoint prefix that --checkpoint_pb_load_name names, or None.

    The flag names a state file ('checkpoint', 'checkpoint_lve') or, to pick one
    checkpoint by hand, a path prefix such as 'lfads_vae.ckpt-12' (relative to
    save_dir, or absolute).
    """
    path = name if os.path.isabs(name) else os.path.join(save_dir, name)
    tail = name.rsplit("-", 1)
    if os.path.isabs(name) or (len(tail) == 2 and tail[1].isdigit()) \
            or os.path.exists(path + ".index") or _data_files(path):
        return path
    return None


def restore(bundle, hps, save_dir, state_name, required, fallback=False):
    """Restores a checkpoint chosen by `state_name`; returns its path or None.

    state_name is --checkpoint_pb_load_name: a state file (the newest checkpoint it
    lists is restored) or one checkpoint's path prefix. A checkpoint made with other
    architecture flags is refused naming the first flag that differs (the original
    silently started from fresh weights); so is a damaged one (cut short, a file
    missing, a tensor of the wrong shape), with the reason.

    fallback (training): when the newest checkpoint of the state file is unreadable,
    restore the newest readable one it lists, print one note, and rewrite the state
    file to end there (the next save replaces the damaged files). A state file that
    is missing or garbage while checkpoint files are in the folder counts as listing
    those. When none is readable this is an error: training never starts afresh
    beside checkpoints it cannot read. Evaluation never falls back: whoever asks for
    checkpoint_lve gets that model or an error.
    """
    state_name = state_name or CHECKPOINT_STATE
    explicit = checkpoint_path_arg(save_dir, state_name)
    if explicit is not None:
        try:
            _check_and_read(bundle, hps, explicit)
        except _Unusable as e:
            raise LfadsError(_unusable_message(explicit, e)) from None
        return explicit

    state_path = _state_path(save_dir, state_name)
    paths, problem = parse_checkpoint_state(save_dir, state_name)
    in_folder = checkpoints_in_folder(save_dir, _files_prefix(hps, state_name))
    if not paths and problem is None and not (fallback and in_folder):
        if required:
            raise LfadsError("%s: no checkpoint (state file '%s' not found); train a "
                             "model first or check --lfads_save_dir and "
                             "--checkpoint_pb_load_name%s"
                             % (save_dir, state_name,
                                _pick_hint(in_folder, save_dir, "a checkpoint by name")))
        return None
    if problem is None and not paths:
        problem = "missing"
    if problem is not None:
        state_problem = ("%s: checkpoint state file missing" % state_path
                         if problem == "missing" else
                         "%s: checkpoint state file unreadable (%s)" % (state_path, problem))
        if not fallback:
            raise LfadsError(state_problem
                             + _pick_hint(in_folder, save_dir, "a checkpoint by name"))
        if not in_folder:
            raise LfadsError(state_problem + " and no checkpoint files beside it; to "
                             "start fresh, remove it or choose another --lfads_save_dir")
        # Guessing from the files beats starting over beside them.
        paths = in_folder

    skipped = []  # (path, _Unusable), newest first
    for i in range(len(paths) - 1, -1, -1):
        try:
            _check_and_read(bundle, hps, paths[i])
        except _Unusable as e:
            if not fallback:
                raise LfadsError(_unusable_message(paths[i], e)
                                 + _pick_hint(paths[:i], save_dir)) from None
            skipped.append((paths[i], e))
            continue
        if skipped or problem is not None:
            step = int(bundle.state.global_step.numpy())
            if skipped:
                first = _unusable_message(*skipped[0])
                if problem is not None:
                    first = state_problem + "; " + first
                if len(skipped) > 1:
                    first += " (also unreadable: %s)" % ", ".join(
                        os.path.basename(p) for p, _ in skipped[1:])
            else:
                first = state_problem
            print("note: %s; resuming from %s (step %d)" % (first, paths[i], step))
            # Cut the state back to this checkpoint, as a run killed right after
            # saving it would have left it.
            write_checkpoint_state(save_dir, state_name, paths[:i + 1])
        return paths[i]

    arch = [(p, e) for p, e in skipped if e.architecture]
    if arch:  # most likely the flags, not the files
        raise LfadsError(_unusable_message(*arch[0]))
    path, e = skipped[0]
    raise LfadsError("%s: no readable checkpoint (newest: %s: %s); to start fresh, move "
                     "the state file '%s' and the checkpoint files out of the folder, "
                     "or choose another --lfads_save_dir"
                     % (save_dir, os.path.basename(path), e.reason, state_name))


def _unusable_message(path, e):
    if e.architecture:
        return "%s: %s" % (path, e.reason)
    return "%s: checkpoint unreadable (%s)" % (path, e.reason)


def _pick_hint(candidates, save_dir, what="an older checkpoint"):
    """'; to use <what> pass e.g. --checkpoint_pb_load_name=<newest candidate>' or ''."""
    candidates = [p for p in candidates if os.path.exists(p + ".index")]
    if not candidates:
        return ""
    path = candidates[-1]
    if os.path.dirname(os.path.abspath(path)) == os.path.abspath(save_dir):
        path = os.path.basename(path)
    return "; to use %s pass e.g. --checkpoint_pb_load_name=%s" % (what, path)


def step_of_checkpoint(path):
    """The -<digits> suffix of a checkpoint path, as int (0 for None)."""
    if not path:
        return 0
    tail = path.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def write_hps_file(hps, save_dir, step):
    """hyperparameters-<step>.txt, JSON as the original (spec §2.3)."""
    utils.write_hps_json(os.path.join(save_dir, "hyperparameters-%d.txt" % step),
                         dict(hps))


# ------------------------------------------------------------------ compiled steps
# Parts a batch is split into (see _split_batch_costs); 2 measured fastest on 2 cores.
TRAIN_BATCH_PARTS = 2


def _split_batch_costs(model, dataset, data_bxtxd, ext_bxtxi, rng, state, mode, keep_prob,
                       n_parts):
    """Batch means of the costs, the batch run as n_parts independent parts.

    The parts share no ops (each draws from its own SeedStream), so TensorFlow runs
    them in parallel, one per core: the recurrences are sequential in time and the
    ops of one small GRU step cannot use two cores well, two halves of a batch can.
    """
    batch = tf.shape(data_bxtxd)[0]
    sizes = [(batch + i) // n_parts for i in range(n_parts)]

    def split(x):
        if x is None:
            return [None] * n_parts
        return [tf.ensure_shape(part, [None] + x.shape[1:]) for part in tf.split(x, sizes)]

    datas, exts = split(data_bxtxd), split(ext_bxtxi)
    sums = {}
    for data, ext, stream in zip(datas, exts, distributions.seed_streams(rng, n_parts)):
        out = model.forward(dataset, data, ext, stream, mode, keep_prob=keep_prob)
        costs = model.costs(out, state.global_step)
        for key in ("total", "recon", "kl"):
            sums[key] = sums.get(key, 0.0) + tf.reduce_sum(getattr(costs, key))
        n = tf.cast(tf.shape(data)[0], tf.float32)
        sums["corr"] = sums.get("corr", 0.0) + n * costs.corr
    means = {key: sums[key] / tf.cast(batch, tf.float32)
             for key in ("total", "recon", "kl", "corr")}
    means.update(l2=costs.l2, kl_weight=costs.kl_weight, l2_weight=costs.l2_weight)
    return means


def make_train_step(bundle, hps):
    """Compiled training step: forward, cost, clip, Adam, step+1.

    Called as step(dataset index, data[, ext]) (see `_compile`). A step whose cost
    or gradient norm is not finite is not applied (the original applied NaN
    updates); it is counted in state.bad_steps.
    """
    model, state, opt, rng = bundle.model, bundle.state, bundle.optimizer, bundle.rng
    train_vars = bundle.train_vars
    keep_prob = hps.keep_prob

    def train_step(dataset, data_bxtxd, ext_bxtxi=None):
        with tf.GradientTape() as tape:
            costs = _split_batch_costs(model, dataset, data_bxtxd, ext_bxtxi, rng, state,
                                       "train", keep_prob, TRAIN_BATCH_PARTS)
            total = costs["total"]
        grads = tape.gradient(total, train_vars)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, train_vars)]
        grads, norm = tf.clip_by_global_norm(grads, hps.max_grad_norm)
        ok = tf.math.is_finite(total) & tf.math.is_finite(norm)

        def apply():
            opt.apply(zip(grads, train_vars))
            state.global_step.assign_add(1)
            return tf.constant(True)

        def skip():
            state.bad_steps.assign_add(1)
            return tf.constant(False)

        applied = tf.cond(ok, apply, skip)
        return dict(costs, grad_norm=norm, applied=applied)

    return _compile(train_step, hps)


def make_eval_step(bundle, hps):
    """Compiled validation cost (posterior samples, no dropout), see `_compile`."""
    model, state, rng = bundle.model, bundle.state, bundle.rng

    def eval_step(dataset, data_bxtxd, ext_bxtxi=None):
        costs = _split_batch_costs(model, dataset, data_bxtxd, ext_bxtxi, rng, state,
                                   "posterior_sample", 1.0, TRAIN_BATCH_PARTS)
        return {key: costs[key] for key in ("total", "recon", "kl")}

    return _compile(eval_step, hps)


def _compile(step_fn, hps):
    """tf.function step(dataset index, data[, ext]) with a fixed input signature.

    One trace serves every dataset and every batch size: the index (int32 scalar,
    position in hps.dataset_names) selects the read-in and read-out inside the
    graph (lfads.LFADS._linear), and the data width is left open when the
    datasets differ in it. A step traced per dataset took seconds each, and
    TensorFlow, which counts traces by the Python function's code, warned about
    "retracing" when several sessions traced in a row.

    autograph=False: the model's loops are explicit tf.while_loops and its Python
    branches depend on hyperparameters only, so AutoGraph would only rewrite the
    source of every function it meets, which was 60 % of the time to trace a step.
    step_fn(dataset, data_bxtxd, ext_bxtxi=None): without external inputs the
    signature has no third entry and step_fn gets None.
    """
    T, I = hps.num_steps, hps.ext_input_dim
    widths = {hps.dataset_dims[n] for n in hps.dataset_names}
    D = widths.pop() if len(widths) == 1 else None
    signature = [tf.TensorSpec([], tf.int32), tf.TensorSpec([None, T, D], tf.float32)]
    if I > 0:
        signature.append(tf.TensorSpec([None, T, I], tf.float32))
    return tf.function(step_fn, autograph=False, input_signature=signature)


def call_step(step, hps, name, data, ext):
    """Runs a compiled step (see `_compile`) on dataset `name`'s data (and ext)."""
    index = hps.dataset_names.index(name)
    return step(index, data) if ext is None else step(index, data, ext)


# ------------------------------------------------------------------ data handling
def split_arrays(datasets, hps, split, names=None):
    """{name: (data float32 [E,T,D], ext float32 [E,T,I] or None)} for a split.

    names: the datasets to take (default: all of hps.dataset_names); datasets
    without this split are left out.
    """
    out = {}
    for name in hps.dataset_names if names is None else names:
        d = datasets[name]
        data = d.get(split + "_data")
        if data is None:
            continue
        ext = d.get(split + "_ext_input") if hps.ext_input_dim > 0 else None
        out[name] = (np.asarray(data, np.float32),
                     None if ext is None else np.asarray(ext, np.float32))
    return out


def epoch_batches(split, batch_size, rs):
    """Shuffled (name, trial indices) batches of one epoch (spec §8.1).

    Each dataset's trials are shuffled and, when their number is not a multiple of
    the batch size, filled up with distinct randomly chosen repeats; the batches of
    all datasets are then interleaved in random order.
    """
    batches = []
    for name in sorted(split):
        n = split[name][0].shape[0]
        idx = np.arange(n)
        rem = n % batch_size
        if rem:
            extra = rs.choice(n, batch_size - rem, replace=batch_size - rem > n)
            idx = np.concatenate([idx, extra])
        idx = rs.permutation(idx).reshape(-1, batch_size)
        batches += [(name, row) for row in idx]
    order = rs.permutation(len(batches))
    return [batches[i] for i in order]


def jitter_spikes(counts_bxtxd, width, rs):
    """Moves every spike by a random shift in [-width, width] bins (spec §8.6).

    Shifts reflect at the edges, so each (trial, neuron) keeps its total count.
    Differences from the original, kept on purpose: the shift range is symmetric
    (the original's randint(-w, w) never shifted by +w, Q12) and only the batch is
    jittered, not the whole split before every batch (same distribution, far less
    work).
    """
    counts = np.asarray(counts_bxtxd).astype(np.int64)
    B, T, D = counts.shape
    b, t, d = np.nonzero(counts)
    reps = counts[b, t, d]
    b, t, d = np.repeat(b, reps), np.repeat(t, reps), np.repeat(d, reps)
    t_new = t + rs.randint(-width, width + 1, size=t.shape)
    t_new = np.where(t_new < 0, -t_new, t_new)
    t_new = np.where(t_new > T - 1, 2 * (T - 1) - t_new, t_new)
    t_new = np.clip(t_new, 0, T - 1)  # a shift larger than T could still escape
    out = np.zeros_like(counts)
    np.add.at(out, (b, t_new, d), 1)
    return out.astype(np.float32)


# ------------------------------------------------------------------ loop helpers
def ramp_value(step, start, increase):
    return float(min(max(step - start, 0) / float(increase), 1.0))


def plateau_rule(train_costs, current, n_to_compare):
    """The learning-rate rule of §8.4. Returns (decay?, new history).

    Decay when more than n costs are recorded and the current total is greater than
    the max of the last n; a decay records +inf so the next n epochs cannot decay.
    """
    history = list(train_costs)
    if len(history) > n_to_compare and current > max(history[-n_to_compare:]):
        return True, history + [np.inf]
    return False, history + [current]


def csv_line(i, step, tr, va, l2, kl_w, l2_w, nonfinite=0):
    """One fitlog line with the original's token sequence (spec §8.5).

    Epochs with skipped non-finite steps get two more tokens at the end,
    `nonfinite,<count>`; other lines are exactly the original's.
    """
    extra = ", nonfinite,%d" % nonfinite if nonfinite else ""
    if va is not None:
        return ("epoch,%d, step,%d, total,%.2f,%.2f,       recon,%.2f,%.2f, "
                "kl,%.2f,%.2f, l2,%.5f,       klweight,%.2f, l2weight,%.2f%s\n"
                % (i, step, tr["total"], va["total"], tr["recon"], va["recon"],
                   tr["kl"], va["kl"], l2, kl_w, l2_w, extra))
    return ("epoch,%d, step,%d, total,%.2f,       recon,%.2f, kl,%.2f, "
            "l2,%.5f, klweight,%.2f, l2weight,%.2f%s\n"
            % (i, step, tr["total"], tr["recon"], tr["kl"], l2, kl_w, l2_w, extra))


def stdout_line(i, step, tr, va, l2, kl_w, l2_w):
    if va is not None:
        return ("Epoch:%d, step:%d (TRAIN, VALID): total: %.2f, %.2f\trecon: %.2f, %.2f,"
                "\tkl: %.2f, %.2f,\tl2: %.5f,\tkl weight: %.2f,\tl2 weight: %.2f"
                % (i, step, tr["total"], va["total"], tr["recon"], va["recon"],
                   tr["kl"], va["kl"], l2, kl_w, l2_w))
    return ("Epoch:%d, step:%d TRAIN: total: %.2f\trecon: %.2f\tkl: %.2f\tl2: %.5f\t"
            "kl weight: %.2f\tl2 weight: %.2f"
            % (i, step, tr["total"], tr["recon"], tr["kl"], l2, kl_w, l2_w))


def truncate_fitlog(csv_path, epochs_done):
    """Drops fitlog lines of epochs after the restored checkpoint.

    A run killed after logging an epoch but before checkpointing it repeats that
    epoch when restarted; without this its line would appear twice.
    """
    if not os.path.exists(csv_path):
        return
    lines = open(csv_path).read().splitlines(True)
    keep = []
    for line in lines:
        fields = [f.strip() for f in line.split(",")]
        if len(fields) > 1 and fields[0] == "epoch" and fields[1].isdigit() \
                and int(fields[1]) >= epochs_done:
            continue
        keep.append(line)
    if len(keep) != len(lines):
        with utils.atomic_path(csv_path) as tmp:
            with open(tmp, "w") as f:
                f.writelines(keep)


def run_validation(eval_step, hps, valid, batch_size):
    """Mean validation total/recon/kl over all trials (batches of batch_size)."""
    sums = collections.defaultdict(float)
    n_total = 0
    for name in sorted(valid):
        data, ext = valid[name]
        for start in range(0, data.shape[0], batch_size):
            sl = slice(start, start + batch_size)
            n = data[sl].shape[0]
            res = call_step(eval_step, hps, name, data[sl],
                            None if ext is None else ext[sl])
            for k, v in res.items():
                sums[k] += float(v) * n
            n_total += n
    return {k: v / n_total for k, v in sums.items()}


def print_variables(bundle):
    total = 0
    print("Model variables trained:")
    for v in bundle.train_vars:
        print("  %s %s" % (v.name, v.shape.as_list()))
        total += int(np.prod(v.shape))
    print("Total model parameters: %d" % total)


# ------------------------------------------------------------------ the loop
class SaveDirLock:
    """A lock file `<lfads_save_dir>/lfads.lock` holding the training process id.

    A second training run on the same folder stops with a one-line error naming the
    running one; a lock left by a process that no longer exists is taken over.
    """

    NAME = "lfads.lock"

    def __init__(self, save_dir):
        self.path = os.path.join(save_dir, self.NAME)
        self.held = False

    @staticmethod
    def _alive(pid):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def acquire(self):
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(open(self.path).read().split()[0])
                except (OSError, ValueError, IndexError):
                    pid = None
                if pid is not None and pid != os.getpid() and self._alive(pid):
                    raise LfadsError("%s: another training run (process %d) is using this "
                                     "--lfads_save_dir; stop it or choose another folder"
                                     % (self.path, pid)) from None
                print("note: taking over the stale lock %s (process %s is gone)"
                      % (self.path, pid))
                try:
                    os.remove(self.path)
                except FileNotFoundError:
                    pass
                continue
            with os.fdopen(fd, "w") as f:
                f.write("%d\n" % os.getpid())
            self.held = True
            return self
        raise LfadsError("%s: cannot take the lock file" % self.path)

    def release(self):
        if self.held:
            try:
                os.remove(self.path)
            except FileNotFoundError:
                pass
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()


class _NonFiniteTraining(Exception):
    """Too many consecutive non-finite steps: the loop restores the last checkpoint."""


def _train_epoch(hps, state, train_split, train_step, rs):
    """One pass over the training batches. Returns (epoch means, last step's values).

    Skipped (non-finite) steps are left out of the means; more than
    --max_consecutive_nonfinite_steps of them in a row raise _NonFiniteTraining.
    """
    jitter = hps.output_dist == "poisson" and hps.temporal_spike_jitter_width > 0
    sums = collections.defaultdict(float)
    n_batches = n_bad = consecutive_bad = 0
    last = None
    for name, idx in epoch_batches(train_split, hps.batch_size, rs):
        data, ext = train_split[name]
        batch = data[idx]
        if jitter:
            batch = jitter_spikes(batch, hps.temporal_spike_jitter_width, rs)
        res = call_step(train_step, hps, name, batch, None if ext is None else ext[idx])
        res = {k: v.numpy() for k, v in res.items()}
        if not res["applied"]:
            n_bad += 1
            consecutive_bad += 1
            if consecutive_bad >= hps.max_consecutive_nonfinite_steps:
                raise _NonFiniteTraining()
            continue
        consecutive_bad = 0
        for k in ("total", "recon", "kl", "grad_norm"):
            sums[k] += float(res[k])
        n_batches += 1
        last = res
    if n_batches == 0:
        raise _NonFiniteTraining()
    means = {k: v / n_batches for k, v in sums.items()}
    means["nonfinite_steps"] = n_bad
    return means, last


def _write_summaries(writer, hps, model, state, step, tr, va, last):
    with writer.as_default(step=step):
        tf.summary.scalar("LFADS/Total_cost__train_", tr["total"])
        tf.summary.scalar("LFADS/Reconstruction_cost__train_", tr["recon"])
        tf.summary.scalar("LFADS/KL_cost__train_", tr["kl"])
        tf.summary.scalar("LFADS/L2_cost", float(last["l2"]))
        if va is not None:
            tf.summary.scalar("LFADS/Total_cost__valid_", va["total"])
            tf.summary.scalar("LFADS/Reconstruction_cost__valid_", va["recon"])
            tf.summary.scalar("LFADS/KL_cost__valid_", va["kl"])
        tf.summary.scalar("LFADS/KL_weight", float(last["kl_weight"]))
        tf.summary.scalar("LFADS/L2_weight", float(last["l2_weight"]))
        tf.summary.scalar("LFADS/Learning_rate", float(state.learning_rate.numpy()))
        tf.summary.scalar("LFADS/Gradient_global_norm", tr["grad_norm"])
        tf.summary.scalar("LFADS/Corr_cost", hps.co_mean_corr_scale * float(last["corr"]))
        tf.summary.scalar("LFADS/Nonfinite_steps_skipped", tr["nonfinite_steps"])
        if hps.co_dim > 0:
            taus = np.exp(model.co_prior.logatau.numpy()).ravel()
            pvars = np.exp(model.co_prior.logpvar().numpy()).ravel()
            for c in range(hps.co_dim):
                tf.summary.scalar("LFADS/AR_Autocorrelation_taus_%d" % c, taus[c])
                tf.summary.scalar("LFADS/AR_Variances_%d" % c, pvars[c])


def _recover_from_nonfinite(bundle, hps, save_dir, recoveries):
    """Restores the last regular checkpoint and lowers its learning rate."""
    if recoveries > hps.max_nonfinite_restores:
        raise LfadsError("training keeps producing non-finite costs or gradients after %d "
                         "restores of the last checkpoint with a lower learning rate; lower "
                         "--learning_rate_init or --max_grad_norm, or check the data"
                         % hps.max_nonfinite_restores)
    path = restore(bundle, hps, save_dir, CHECKPOINT_STATE, required=False)
    if path is None:
        raise LfadsError("the first %d training steps had non-finite costs or gradients "
                         "and there is no checkpoint to go back to; lower "
                         "--learning_rate_init or check the data"
                         % hps.max_consecutive_nonfinite_steps)
    lr = bundle.state.learning_rate
    lr.assign(lr * hps.learning_rate_decay_factor)
    print("%d consecutive non-finite steps: restored %s and lowered the learning rate to %g."
          % (hps.max_consecutive_nonfinite_steps, path, float(lr.numpy())))


def train(hps, datasets):
    """--kind=train: the original's epoch loop with resumable state (spec §8)."""
    save_dir = hps.lfads_save_dir
    try:
        os.makedirs(save_dir, exist_ok=True)
    except OSError as e:
        raise LfadsError("%s: --lfads_save_dir cannot be created (%s)"
                         % (save_dir, e.strerror)) from None
    if not os.access(save_dir, os.W_OK):
        raise LfadsError("%s: --lfads_save_dir is not writable" % save_dir)
    with SaveDirLock(save_dir):
        return _train_locked(hps, datasets, save_dir)


def _train_locked(hps, datasets, save_dir):
    if hps.get("seed") is not None:
        # Same seed, same machine, same numbers (also across a kill and resume).
        tf.config.experimental.enable_op_determinism()
    print("Building graph...")
    bundle = build(hps, datasets_info(datasets))
    model, state = bundle.model, bundle.state
    # A damaged newest checkpoint: resume from the newest readable one (with a note).
    restored = restore(bundle, hps, save_dir, hps.checkpoint_pb_load_name, required=False,
                       fallback=True)
    if restored:
        print("Restored from %s (epoch %d, step %d)."
              % (restored, int(state.epoch.numpy()), int(state.global_step.numpy())))
        if hps.do_reset_learning_rate:
            state.learning_rate.assign(hps.learning_rate_init)
            print("Learning rate reset to %g." % hps.learning_rate_init)
    print_variables(bundle)
    write_hps_file(hps, save_dir, step_of_checkpoint(restored))

    saver = CheckpointSaver(bundle.checkpoint, save_dir, hps.checkpoint_name + ".ckpt",
                            CHECKPOINT_STATE, hps.max_ckpt_to_keep)
    # The original used max_ckpt_to_keep here by mistake (spec Q7).
    saver_lve = CheckpointSaver(bundle.checkpoint, save_dir,
                                hps.checkpoint_name + "_lve.ckpt",
                                CHECKPOINT_STATE_LVE, hps.max_ckpt_to_keep_lve)

    train_split = split_arrays(datasets, hps, "train")
    valid_split = split_arrays(datasets, hps, "valid")
    train_step = make_train_step(bundle, hps)
    eval_step = make_eval_step(bundle, hps)

    writer = tf.summary.create_file_writer(os.path.join(save_dir, "lfads_log"))
    csv_path = os.path.join(save_dir, hps.csv_log + ".csv") if hps.csv_log else None
    if csv_path:
        truncate_fitlog(csv_path, int(state.epoch.numpy()))
    plotter = None
    if hps.get("plot_every_n_epochs", 0) > 0:
        from lfads_tf2 import evaluation
        plotter = evaluation.ExamplePlotter(bundle, hps, datasets)

    l2_scales_zero = hps.l2_gen_scale == 0 and hps.l2_con_scale == 0
    recoveries = 0
    while True:
        epoch = int(state.epoch.numpy())
        if hps.get("max_epochs") is not None and epoch >= hps.max_epochs:
            print("Stopping after %d epochs (--max_epochs)." % epoch)
            break
        # The batch order of epoch i depends only on (seed, i): a resumed run
        # replays exactly the batches an uninterrupted one would.
        rs = np.random.RandomState([int(state.base_seed.numpy()) % (2 ** 32), epoch])
        try:
            tr, last = _train_epoch(hps, state, train_split, train_step, rs)
        except _NonFiniteTraining:
            recoveries += 1
            _recover_from_nonfinite(bundle, hps, save_dir, recoveries)
            continue
        kl_w, l2_w, l2 = float(last["kl_weight"]), float(last["l2_weight"]), float(last["l2"])
        step = int(state.global_step.numpy())

        va = None
        if valid_split:
            va = run_validation(eval_step, hps, valid_split, hps.batch_size)
            state.valid_count.assign_add(1)
            if (kl_w >= 1.0 and (l2_w >= 1.0 or l2_scales_zero)
                    and int(state.valid_count.numpy()) > 1
                    and va["total"] < float(state.lowest_valid_cost.numpy())):
                state.lowest_valid_cost.assign(va["total"])
                saver_lve.save(step)

        n_bad = tr["nonfinite_steps"]
        print(stdout_line(epoch, step, tr, va, l2, kl_w, l2_w)
              + ("" if not n_bad else "\tskipped non-finite steps: %d" % n_bad))
        if csv_path:
            with open(csv_path, "a") as f:
                f.write(csv_line(epoch, step, tr, va, l2, kl_w, l2_w, n_bad))
        _write_summaries(writer, hps, model, state, step, tr, va, last)
        if plotter is not None and epoch % hps.plot_every_n_epochs == 0:
            with writer.as_default(step=step):
                plotter.write_summary(rs)
        writer.flush()

        decay, history = plateau_rule(state.train_costs.numpy(), tr["total"],
                                      hps.learning_rate_n_to_compare)
        # Only the last n entries are ever read: keep the checkpoint small.
        state.train_costs.assign(np.asarray(history[-(hps.learning_rate_n_to_compare + 1):],
                                            np.float64))
        if decay:
            state.learning_rate.assign(state.learning_rate * hps.learning_rate_decay_factor)
            print("Decreasing learning rate to %f." % float(state.learning_rate.numpy()))
        state.epoch.assign_add(1)
        stop = float(state.learning_rate.numpy()) < hps.learning_rate_stop
        if (epoch + 1) % hps.checkpoint_every_n_epochs == 0 or stop:
            saver.save(step)
        if stop:
            print("Stopping optimization based on learning rate criteria.")
            break
    # A final regular checkpoint (the original kept up to 9 epochs only in memory, Q15).
    paths = read_checkpoint_state(save_dir, CHECKPOINT_STATE)
    step = int(state.global_step.numpy())
    if not paths or step_of_checkpoint(paths[-1]) != step:
        saver.save(step)
    writer.close()
    return bundle
