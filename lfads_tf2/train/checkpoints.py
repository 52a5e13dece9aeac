"""Checkpoints of an LFADS model: saving and reading back.

A checkpoint holds what lfads_tf2.train.build makes (model, optimizer, training state);
`restore(...)` loads a checkpoint chosen by --checkpoint_pb_load_name after checking
that every tensor is readable and fits the model; `CheckpointSaver` writes them with
TF state files (`checkpoint`, `checkpoint_lve`) as the original; `SaveDirLock` keeps
a second training run out of the save folder.

Unlike the original, everything the loop decides on (epoch, learning rate, the
plateau window, the lowest validation cost, the random generator state and the seed
of the batch order) lives in the checkpoint (`TrainState`), so a restarted run
continues as an uninterrupted one would (the original forgot this on restart).
"""
import json
import os

import tensorflow as tf

import utils
from lfads_tf2.errors import LfadsError
from lfads_tf2.train import build, checkpoint_layout, hparams

CHECKPOINT_STATE = "checkpoint"
CHECKPOINT_STATE_LVE = "checkpoint_lve"


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
        mine = json.loads(build.architecture_json(hps))
        for key in mine:
            if key in saved and saved[key] != mine[key]:
                flag = key if key not in hparams.DATA_KEYS else "data_filename_stem"
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

    paths, state_problem = _listed_checkpoints(hps, save_dir, state_name, required,
                                               fallback)
    if not paths:
        return None
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
        if skipped or state_problem is not None:
            _note_fallback(bundle, save_dir, state_name, paths[:i + 1], skipped,
                           state_problem)
        return paths[i]
    raise _no_readable_checkpoint(save_dir, state_name, skipped)


def _listed_checkpoints(hps, save_dir, state_name, required, fallback):
    """(checkpoint prefixes to try, oldest first; what is wrong with the state file,
    one line, or None) for `restore`.

    The prefixes are those the state file lists or, when it is missing or unreadable
    and fallback, those in the folder. ([], None) when there is no checkpoint and none
    is required. Raises LfadsError when one is required, and when the state file is
    missing or unreadable and there is nothing to fall back to (or no fallback).
    """
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
        return [], None
    if problem is None and not paths:
        problem = "missing"
    if problem is None:
        return paths, None
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
    return in_folder, state_problem


def _note_fallback(bundle, save_dir, state_name, paths, skipped, state_problem):
    """After `restore` fell back to paths[-1]: prints one note saying why (skipped:
    the newer (path, _Unusable), newest first; state_problem: the state file's, or
    None) and cuts the state file back to `paths`, as a run killed right after saving
    paths[-1] would have left it."""
    step = int(bundle.state.global_step.numpy())
    if skipped:
        first = _unusable_message(*skipped[0])
        if state_problem is not None:
            first = state_problem + "; " + first
        if len(skipped) > 1:
            first += " (also unreadable: %s)" % ", ".join(
                os.path.basename(p) for p, _ in skipped[1:])
    else:
        first = state_problem
    print("note: %s; resuming from %s (step %d)" % (first, paths[-1], step))
    write_checkpoint_state(save_dir, state_name, paths)


def _no_readable_checkpoint(save_dir, state_name, skipped):
    """The LfadsError of `restore` when no checkpoint listed is readable (skipped:
    (path, _Unusable), newest first): the first made with other architecture flags,
    most likely the flags' fault, else the newest."""
    arch = [(p, e) for p, e in skipped if e.architecture]
    if arch:
        return LfadsError(_unusable_message(*arch[0]))
    path, e = skipped[0]
    return LfadsError("%s: no readable checkpoint (newest: %s: %s); to start fresh, move "
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
    """hyperparameters-<step>.txt, JSON as the original."""
    utils.write_hps_json(os.path.join(save_dir, "hyperparameters-%d.txt" % step),
                         dict(hps))



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

