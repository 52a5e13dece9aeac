"""Data I/O and small helpers for LFADS.

This module owns the file formats: HDF5 data files in, HDF5 result files out, and
the JSON hyperparameter file. Every write goes to a temporary file in the target
folder first and is then moved into place with `os.replace`, so a crash never
leaves a half-written file under its final name.

Loading is split in two: `read_datasets` finds and reads the files (spec §3.2),
`validate_datasets` checks them against the flags and raises `DataError` with a
one-line message "<file>: <key>: <problem>" for the first problem found.
`load_datasets` does both.

A data dict maps h5 key -> numpy array. `read_datasets` adds three in-memory keys:
`data_dim` (D), `num_steps` (T) and `PATH_KEY` ("_path", the source file, used in
error messages). `write_data` never writes `PATH_KEY`.
"""
import contextlib
import json
import os
import re
import secrets

import h5py
import numpy as np

# In-memory key holding the source file of a data dict (for error messages).
PATH_KEY = "_path"
# Keys that exist only in memory; writers skip them.
_IN_MEMORY_KEYS = frozenset([PATH_KEY])

OUTPUT_DISTS = ("poisson", "gaussian")
# Poisson data are fed to the model as int32, Gaussian data and external inputs as float32.
_INT32_MAX = np.iinfo(np.int32).max
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class DataError(ValueError):
    """A problem with user input, reported as one line: '<file>: <key>: <problem>'."""


class LfadsError(RuntimeError):
    """A problem reported to the user as one line (checkpoints, save folder)."""


def _one_line(text):
    """Collapses line breaks so that every message stays on one line."""
    return re.sub(r"\s*[\r\n]+\s*", " ", str(text)).strip()


def _error(path, key, problem):
    """Returns a DataError with the message '<path>: <key>: <problem>'."""
    return DataError(_one_line("%s: %s: %s" % (path, key, problem)))


def _note(path, key, text):
    return _one_line("%s: %s: %s" % (path, key, text))


# ------------------------------------------------------------------------------------------
# Atomic writing


def _fsync_path(path):
    """Flushes a closed file to disk, so that the rename below never exposes stale data."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(fname):
    """Yields a temporary path next to `fname`; moves it to `fname` on success.

    The temporary name starts with '.', so `read_datasets` never picks it up. On any
    exception the temporary file is removed and `fname` is left untouched. Unlike
    `tempfile.mkstemp` the file is created by the writer itself, so it gets the
    usual umask permissions instead of 0600.
    """
    fname = os.fspath(fname)
    folder = os.path.dirname(os.path.abspath(fname))
    os.makedirs(folder, exist_ok=True)
    tmp_path = os.path.join(
            folder, ".%s.%s.tmp" % (os.path.basename(fname), secrets.token_hex(6)))
    try:
        yield tmp_path
        _fsync_path(tmp_path)
        os.replace(tmp_path, fname)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp_path)
        raise


def _json_default(obj):
    """Makes numpy values JSON serialisable."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, bytes):
        return obj.decode("utf-8", errors="replace")
    raise TypeError("%r is not JSON serialisable" % type(obj).__name__)


def write_data(data_fname, data_dict, use_json=False, compression=None):
    """Writes `data_dict` to `data_fname` as HDF5 (or JSON), atomically.

    Keys containing '/' are written with '/' replaced by '_' (as the original).
    Scalars and empty arrays are never compressed (h5py cannot chunk them).
    Unicode strings are stored as UTF-8 bytes (HDF5 has no fixed-length unicode), so
    they read back as `bytes`. In-memory keys such as `PATH_KEY` are skipped.
    """
    items = [(k, v) for k, v in data_dict.items() if k not in _IN_MEMORY_KEYS]
    with atomic_path(data_fname) as tmp_path:
        if use_json:
            with open(tmp_path, "x") as f:
                json.dump(dict(items), f, default=_json_default)
            return
        with h5py.File(tmp_path, "w-") as hf:
            for key, value in items:
                value = np.asarray(value)
                dtype = None
                if value.dtype.kind == "U":
                    value = np.char.encode(value, "utf-8")
                elif value.dtype.kind == "O":
                    # Only arrays of strings can be stored as variable-length data.
                    dtype = h5py.string_dtype()
                comp = compression if value.ndim > 0 and value.size > 0 else None
                hf.create_dataset(key.replace("/", "_"), data=value, dtype=dtype,
                                  compression=comp)


def read_data(data_fname):
    """Reads every top-level HDF5 dataset of `data_fname` into a dict of numpy arrays.

    Scalars become 0-d arrays; groups are skipped. Unreadable, non-HDF5 or truncated
    files raise DataError.
    """
    try:
        hf = h5py.File(data_fname, "r")
    except OSError as e:
        raise _error(data_fname, "(file)", "not a readable HDF5 file (%s)"
                     % str(e).splitlines()[0]) from None
    data_dict = {}
    with hf:
        for key in hf.keys():
            try:
                item = hf[key]
                if not isinstance(item, h5py.Dataset):
                    continue
                data_dict[key] = np.asarray(item[()])
            except (OSError, RuntimeError, TypeError, ValueError, KeyError) as e:
                raise _error(data_fname, key, "cannot be read, the file may be truncated "
                             "or damaged (%s)" % (str(e).splitlines() or [""])[0]) from None
    return data_dict


def write_datasets(data_path, data_fname_stem, dataset_dict, compression=None):
    """Writes one file per dataset at <data_path>/<data_fname_stem>_<name>."""
    for name, data_dict in dataset_dict.items():
        write_data(os.path.join(data_path, data_fname_stem + "_" + name), data_dict,
                   compression=compression)


# ------------------------------------------------------------------------------------------
# Reading datasets (spec §3.2)


def read_datasets(data_path, data_fname_stem):
    """Reads every file in `data_path` whose name starts with `data_fname_stem`.

    Returns {dataset name: data dict}, sorted by name (the original used arbitrary dict
    order, Q27). The name is the file name minus the stem and one separator character,
    or the whole file name if that leaves nothing. Directories and hidden files (names
    starting with '.', e.g. our own temporary files) are skipped. Plain prefix matching
    is kept from the original, so stem 'a' also matches 'a_b_c' (spec §3.2 pitfall):
    the caller should print the loaded names.

    Each data dict also gets `PATH_KEY` and, when `train_data` is 3-d,
    `data_dim` = D and `num_steps` = T. Content is checked by `validate_datasets`.
    """
    data_path = os.fspath(data_path)
    if not data_fname_stem:
        raise _error(data_path, "--data_filename_stem",
                     "is empty; it would match every file in the folder")
    if not os.path.exists(data_path):
        raise _error(data_path, "--data_dir", "folder does not exist")
    if not os.path.isdir(data_path):
        raise _error(data_path, "--data_dir", "is not a folder")
    try:
        entries = sorted(os.listdir(data_path))
    except OSError as e:
        raise _error(data_path, "--data_dir", "cannot list folder (%s)" % e) from None

    by_name = {}
    for fname in entries:
        full = os.path.join(data_path, fname)
        if fname.startswith(".") or not fname.startswith(data_fname_stem):
            continue
        if not os.path.isfile(full):
            continue
        name = fname[len(data_fname_stem) + 1:] or fname
        if name in by_name:
            # e.g. stem 'd' with files 'd_x' and 'd-x', or 'd_d' and 'd'.
            raise _error(full, "(file name)",
                         "dataset name '%s' is also derived from %s; rename one file or "
                         "use a longer --data_filename_stem" % (name, by_name[name]))
        by_name[name] = full
    if not by_name:
        raise _error(data_path, "--data_filename_stem=%s" % data_fname_stem,
                     "no file in this folder starts with '%s' (check --data_dir and "
                     "--data_filename_stem)" % data_fname_stem)

    datasets = {}
    for name in sorted(by_name):
        data_dict = read_data(by_name[name])
        data_dict[PATH_KEY] = by_name[name]
        _add_derived_keys(data_dict)
        datasets[name] = data_dict
    return datasets


def _add_derived_keys(data_dict):
    """Sets data_dim = D and num_steps = T from train_data [E, T, D], if it is 3-d."""
    train = data_dict.get("train_data")
    if train is not None and np.ndim(train) == 3:
        data_dict["data_dim"] = int(np.shape(train)[2])
        data_dict["num_steps"] = int(np.shape(train)[1])


# ------------------------------------------------------------------------------------------
# Validation


def _bad_values(mask):
    """Describes a boolean mask of bad entries: count and first index."""
    count = int(np.count_nonzero(mask))
    first = np.unravel_index(int(np.argmax(mask)), mask.shape)
    return "%d value(s), first at index %s" % (count, tuple(int(i) for i in first))


def _check_finite(path, key, x):
    """NaN/inf and float32 overflow checks for float arrays (everything is fed as 32-bit)."""
    if x.dtype.kind != "f":
        return
    bad = ~np.isfinite(x)
    if bad.any():
        raise _error(path, key, "NaN or inf in %s" % _bad_values(bad))
    if x.dtype.itemsize > 4 and x.size:
        big = np.abs(x) > _FLOAT32_MAX
        if big.any():
            raise _error(path, key, "magnitude exceeds float32 range in %s"
                         % _bad_values(big))


def _check_split(path, key, x, output_dist, notes):
    """Checks one data array [E, T, D] for shape, dtype and values; appends notes."""
    if x.ndim != 3:
        raise _error(path, key, "has %d dims with shape %s; expected 3 dims "
                     "[trials, time, channels]" % (x.ndim, x.shape))
    for size, what in zip(x.shape, ("trials", "time bins", "channels")):
        if size == 0:
            raise _error(path, key, "has 0 %s (shape %s)" % (what, x.shape))
    kind = x.dtype.kind
    if kind not in "iuf":
        need = "integer counts" if output_dist == "poisson" else "real values"
        raise _error(path, key, "dtype %s is not allowed for --output_dist=%s (need %s)"
                     % (x.dtype, output_dist, need))
    _check_finite(path, key, x)
    if output_dist == "poisson":
        if kind == "f":
            frac = x != np.floor(x)
            if frac.any():
                raise _error(path, key, "non-integer counts for --output_dist=poisson "
                             "(dtype %s, %s)" % (x.dtype, _bad_values(frac)))
            notes.append(_note(path, key, "%s data with whole-number values are treated as "
                               "counts for --output_dist=poisson" % x.dtype))
        if kind in "if":
            neg = x < 0
            if neg.any():
                raise _error(path, key, "negative counts in %s" % _bad_values(neg))
        # Counts are fed as int32.
        if x.max() > _INT32_MAX:
            raise _error(path, key, "counts exceed the int32 range (max %s)" % x.max())
    elif kind in "iu":
        notes.append(_note(path, key, "integer data are treated as real values for "
                           "--output_dist=gaussian"))


def _check_ext_input(path, key, x, expected_shape):
    """External inputs [E, T, I]: numeric, finite, exactly `expected_shape`."""
    if x.dtype.kind not in "biuf":
        raise _error(path, key, "dtype %s is not numeric" % x.dtype)
    if x.shape != expected_shape:
        raise _error(path, key, "expected shape %s = [trials, time, --ext_input_dim], got %s"
                     % (expected_shape, x.shape))
    _check_finite(path, key, x)


def _check_alignment(path, data_dict, data_dim, factors_dim, notes):
    """alignment_matrix_cxf [D, F] and alignment_bias_c [D] (read-in/read-out init)."""
    mat = data_dict.get("alignment_matrix_cxf")
    bias = data_dict.get("alignment_bias_c")
    if mat is not None:
        key = "alignment_matrix_cxf"
        mat = np.asarray(mat)
        if mat.dtype.kind not in "iuf":
            raise _error(path, key, "dtype %s is not real-valued" % mat.dtype)
        if factors_dim is not None:
            ok = mat.shape == (data_dim, factors_dim)
            expected = "(%d, %d) = (D, --factors_dim)" % (data_dim, factors_dim)
        else:
            ok = mat.ndim == 2 and mat.shape[0] == data_dim
            expected = "(%d, F)" % data_dim
        if not ok:
            raise _error(path, key, "expected shape %s, got %s" % (expected, mat.shape))
        _check_finite(path, key, mat)
    if bias is not None:
        key = "alignment_bias_c"
        bias = np.asarray(bias)
        if bias.dtype.kind not in "iuf":
            raise _error(path, key, "dtype %s is not real-valued" % bias.dtype)
        if bias.shape != (data_dim,):
            raise _error(path, key, "expected shape (%d,) = (D,), got %s"
                         % (data_dim, bias.shape))
        _check_finite(path, key, bias)
        if mat is None:
            # The original's read-in bias init needs the matrix (spec §3.1); see also Q6.
            notes.append(_note(path, key, "ignored because alignment_matrix_cxf is absent"))


def _first_difference(a, b):
    """Index (tuple) of the first element where arrays a and b (same shape) differ."""
    return tuple(int(i) for i in np.argwhere(a != b)[0])


def _check_recon(path, split, data_dict, output_dist, notes):
    """<split>_recon_data [E, T + T_fp, N_in + N_out]: its first T bins and N_in neurons
    are <split>_data. Returns its shape, or None when absent."""
    key = split + "_recon_data"
    if data_dict.get(key) is None:
        return None
    recon = np.asarray(data_dict[key])
    _check_split(path, key, recon, output_dist, notes)
    data = np.asarray(data_dict[split + "_data"])
    E, T, N = data.shape
    if recon.shape[0] != E:
        raise _error(path, key, "has %d trials but %s_data has %d"
                     % (recon.shape[0], split, E))
    if recon.shape[1] < T or recon.shape[2] < N:
        raise _error(path, key, "shape %s is smaller than %s_data %s; expected [trials, "
                     "time bins + forward bins, held-in + held-out neurons]"
                     % (recon.shape, split, data.shape))
    if not np.array_equal(recon[:, :T, :N], data):
        raise _error(path, key, "its first %d bins and %d neurons differ from %s_data "
                     "(first at index %s); held-in neurons come first, forward bins last"
                     % (T, N, split, _first_difference(recon[:, :T, :N], data)))
    return recon.shape


def heldout_extent(data_dict):
    """(N, T_fp) of a data dict: the neurons the model predicts (held-in plus held-out)
    and the forward bins past T, from the shape of `train_recon_data`; (D, 0) without it."""
    data = np.shape(data_dict["train_data"])
    recon = data_dict.get("train_recon_data")
    if recon is None or len(np.shape(recon)) != 3:
        return int(data[2]), 0
    return int(np.shape(recon)[2]), int(np.shape(recon)[1] - data[1])


def _check_labels(path, split, data_dict):
    """condition_labels_<split> [E]: one label (integer or string) per trial."""
    key = "condition_labels_" + split
    if data_dict.get(key) is None:
        return
    labels = np.asarray(data_dict[key])
    E = np.shape(data_dict[split + "_data"])[0]
    if labels.shape != (E,):
        raise _error(path, key, "expected shape (%d,) = [trials of %s_data], got %s"
                     % (E, split, labels.shape))
    if labels.dtype.kind not in "iuSUOf":
        raise _error(path, key, "dtype %s is not an integer or string label" % labels.dtype)
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise _error(path, key, "NaN or inf in %s" % _bad_values(~np.isfinite(labels)))


def validate_heldout_keys(path, data_dict, output_dist, notes=None, labels=False):
    """Checks the optional keys of held-out neurons, forward bins and conditions.

    `<split>_recon_data` [E, T + T_fp, N_in + N_out] (both splits or neither, with the
    same extent; Poisson: non-negative integers), the optional `test_recon_data` of the
    same extent (scoring only) and, with `labels`, `condition_labels_<split>` [E] (only
    scoring uses them; training ignores them; test only with test_data).
    Needs `<split>_data` of both splits. Raises DataError; returns the notes list.
    """
    notes = [] if notes is None else notes
    shapes = {split: _check_recon(path, split, data_dict, output_dist, notes)
              for split in ("train", "valid")}
    present = [split for split, shape in shapes.items() if shape is not None]
    if len(present) == 1:
        other = "valid" if present[0] == "train" else "train"
        raise _error(path, other + "_recon_data", "missing, but %s_recon_data is present "
                     "(both splits need it)" % present[0])
    if present and shapes["train"][1:] != shapes["valid"][1:]:
        raise _error(path, "valid_recon_data", "shape %s does not match train_recon_data %s "
                     "in time bins and neurons" % (shapes["valid"], shapes["train"]))
    # test_recon_data: optional, for scoring test outputs only (never trained on)
    if data_dict.get("test_recon_data") is not None:
        if data_dict.get("test_data") is None:
            raise _error(path, "test_recon_data", "present, but test_data is missing")
        if np.ndim(data_dict["test_data"]) != 3:
            raise _error(path, "test_data", "has shape %s; expected 3 dims [trials, time, "
                         "channels]" % (np.shape(data_dict["test_data"]),))
        shape = _check_recon(path, "test", data_dict, output_dist, notes)
        if not present:
            raise _error(path, "test_recon_data", "present, but train_recon_data is missing "
                         "(test outputs have the extent the model was trained on)")
        if shape[1:] != shapes["train"][1:]:
            raise _error(path, "test_recon_data", "shape %s does not match train_recon_data "
                         "%s in time bins and neurons" % (shape, shapes["train"]))
    if labels:
        for split in ("train", "valid", "test"):
            if split == "test" and data_dict.get("test_data") is None:
                continue
            _check_labels(path, split, data_dict)
    return notes


def _check_test_data(path, data_dict, train, output_dist, ext_input_dim, notes):
    """test_data [E_test, T, D]: held-in neurons over the T bins of train_data; only
    posterior sampling reads it (with test_ext_input [E_test, T, I] when I > 0)."""
    test = data_dict.get("test_data")
    if test is None:
        return
    test = np.asarray(test)
    _check_split(path, "test_data", test, output_dist, notes)
    if test.shape[1:] != train.shape[1:]:
        raise _error(path, "test_data", "shape %s does not match train_data %s in time bins "
                     "and channels (expected [trials, %d, %d], the held-in neurons over the "
                     "bins the model reads)" % (test.shape, train.shape, train.shape[1],
                                                train.shape[2]))
    key = "test_ext_input"
    ext = data_dict.get(key)
    if ext_input_dim > 0:
        expected = (test.shape[0], train.shape[1], ext_input_dim)
        if ext is None:
            raise _error(path, key, "missing; required with test_data by --ext_input_dim=%d "
                         "(expected shape %s)" % (ext_input_dim, expected))
        _check_ext_input(path, key, np.asarray(ext), expected)
    elif ext is not None:
        notes.append(_note(path, key, "ignored because --ext_input_dim=0"))


def validate_datasets(datasets, output_dist, ext_input_dim=0, factors_dim=None,
                      batch_size=None, kind="train"):
    """Checks loaded datasets against the flags; returns one-line notes to print.

    Raises DataError '<file>: <key>: <problem>' for the first problem found. All datasets
    are checked (the original only checked the dtype of the first one, Q22). Both splits
    are required (Q13). With kind == 'train' each split needs at least `batch_size` trials
    (our batching pads a split up to a multiple of the batch). Missing `data_dim` /
    `num_steps` keys are filled in.
    """
    if output_dist not in OUTPUT_DISTS:
        raise DataError("--output_dist=%s: (flag): unknown output distribution (expected "
                        "one of %s)" % (output_dist, ", ".join(OUTPUT_DISTS)))
    if not datasets:
        raise DataError("(datasets): (none): no datasets to validate")
    notes = []
    first_path, first_steps, first_fp = None, None, None
    for name, data_dict in datasets.items():
        path = data_dict.get(PATH_KEY, "<dataset %s>" % name)
        for key in ("train_data", "valid_data"):
            if data_dict.get(key) is None:
                why = "" if key == "train_data" else " (LFADS needs a validation split)"
                raise _error(path, key, "missing required key%s" % why)
        train = np.asarray(data_dict["train_data"])
        valid = np.asarray(data_dict["valid_data"])
        _check_split(path, "train_data", train, output_dist, notes)
        _check_split(path, "valid_data", valid, output_dist, notes)
        num_trials = {"train": train.shape[0], "valid": valid.shape[0]}
        num_steps, data_dim = train.shape[1], train.shape[2]
        if valid.shape[1:] != train.shape[1:]:
            raise _error(path, "valid_data", "shape %s does not match train_data %s in "
                         "time bins and channels" % (valid.shape, train.shape))
        if first_steps is None:
            first_path, first_steps = path, num_steps
        elif num_steps != first_steps:
            raise _error(path, "train_data", "T=%d time bins, but %s has T=%d; all datasets "
                         "must share the number of time bins" % (num_steps, first_path,
                                                                 first_steps))

        for split in ("train", "valid"):
            key = split + "_ext_input"
            ext = data_dict.get(key)
            if ext_input_dim > 0:
                expected = (num_trials[split], num_steps, ext_input_dim)
                if ext is None:
                    raise _error(path, key, "missing; required by --ext_input_dim=%d "
                                 "(expected shape %s)" % (ext_input_dim, expected))
                _check_ext_input(path, key, np.asarray(ext), expected)
            elif ext is not None:
                notes.append(_note(path, key, "ignored because --ext_input_dim=0"))

        _check_alignment(path, data_dict, data_dim, factors_dim, notes)
        _check_test_data(path, data_dict, train, output_dist, ext_input_dim, notes)
        validate_heldout_keys(path, data_dict, output_dist, notes)
        # One generator length for all sessions (one trace serves every dataset): the
        # held-out neurons may differ per session, the forward bins may not.
        fp_bins = heldout_extent(data_dict)[1]
        if first_fp is None:
            first_fp = (path, fp_bins)
        elif fp_bins != first_fp[1]:
            raise _error(path, "train_recon_data", "%d forward bins, but %s has %d; all "
                         "datasets must share the number of forward bins (a dataset "
                         "without recon_data has 0)" % (fp_bins, first_fp[0], first_fp[1]))

        if batch_size is not None and kind == "train":
            for split, count in num_trials.items():
                if count < batch_size:
                    raise _error(path, split + "_data", "has %d trials, fewer than "
                                 "--batch_size=%d" % (count, batch_size))
        data_dict.setdefault("data_dim", int(data_dim))
        data_dict.setdefault("num_steps", int(num_steps))
    return notes


def load_datasets(data_dir, data_filename_stem, output_dist, ext_input_dim=0,
                  factors_dim=None, batch_size=None, kind="train"):
    """read_datasets + validate_datasets. Returns (datasets, notes).

    The first note lists the loaded dataset names, so that an unintended stem-prefix
    match (Q27) is visible.
    """
    datasets = read_datasets(data_dir, data_filename_stem)
    notes = ["%s: --data_filename_stem=%s: loaded %d dataset(s): %s"
             % (data_dir, data_filename_stem, len(datasets), ", ".join(datasets))]
    notes += validate_datasets(datasets, output_dist, ext_input_dim=ext_input_dim,
                               factors_dim=factors_dim, batch_size=batch_size, kind=kind)
    return datasets, notes


# ------------------------------------------------------------------------------------------
# Hyperparameter file (spec §2.3)


def write_hps_json(fname, hps_dict):
    """Writes the hps dict as JSON, atomically; top-level booleans become "true"/"false".

    This mirrors the original's file. Nested booleans stay JSON booleans. numpy
    scalars and arrays are converted to plain Python values.
    """
    hps = dict(hps_dict)
    out = {}
    for key, value in hps.items():
        if isinstance(value, (bool, np.bool_)):
            value = "true" if value else "false"
        out[key] = value
    with atomic_path(fname) as tmp_path:
        with open(tmp_path, "x") as f:
            json.dump(out, f, default=_json_default, indent=2, sort_keys=True)
            f.write("\n")


def read_hps_json(fname):
    """Reads a hps JSON file (never eval); top-level "true"/"false" become booleans."""
    try:
        with open(fname) as f:
            hps = json.load(f)
    except OSError as e:
        raise _error(fname, "(file)", "cannot be read (%s)" % e.strerror) from None
    except json.JSONDecodeError as e:
        raise _error(fname, "(file)", "not valid JSON (%s)" % e) from None
    if not isinstance(hps, dict):
        raise _error(fname, "(file)", "expected a JSON object, got %s" % type(hps).__name__)
    bools = {"true": True, "false": False}
    return {k: bools.get(v, v) if isinstance(v, str) else v for k, v in hps.items()}


# ------------------------------------------------------------------------------------------
# Quiet TensorFlow start-up


def _import_tensorflow_without_keras():
    """`import tensorflow`, without the import of Keras that TensorFlow does on loading.

    TensorFlow imports Keras 3 eagerly when it loads (to register Keras's optimizers
    for SavedModels), and Keras imports scikit-learn and SciPy: 40 % of the import,
    5 of 12 seconds on a busy 2-core machine. LFADS uses no Keras. With
    TF_USE_LEGACY_KERAS set, TensorFlow tries the legacy tf_keras package instead and
    passes quietly when it is not installed. The variable is set for the import only
    (not for child processes); `tf.keras` still loads Keras 3 on first use, as
    TensorFlow reads the variable again then. Nothing changes when tf_keras is
    installed (it would be loaded instead), when the variable is set already or when
    Keras is loaded already.
    """
    import importlib.util
    import sys
    skip = ("TF_USE_LEGACY_KERAS" not in os.environ and "keras" not in sys.modules
            and importlib.util.find_spec("tf_keras") is None)
    if skip:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    try:
        import tensorflow as tf
    finally:
        if skip:
            del os.environ["TF_USE_LEGACY_KERAS"]
    return tf


def quiet_tensorflow_import():
    """Imports TensorFlow with its C++ start-up chatter silenced; returns the module.

    TensorFlow prints CUDA probing, oneDNN and CPU-feature notes straight to file
    descriptor 2 while it loads (before its own log level applies), which buries the
    program's one-line messages. stderr is pointed at /dev/null for the import and
    the first device query only; Python exceptions are unaffected (they are printed
    after the descriptor is restored).
    """
    import sys
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return sys.modules["tensorflow"]
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        tf = _import_tensorflow_without_keras()
        tf.config.list_physical_devices("GPU")
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
    return tf
