"""The original's file formats, read and written: HDF5 data and result files, and the
JSON hyperparameter file.

Every write goes to a temporary file in the target folder first and is then moved into
place with `os.replace`, so a crash never leaves a half-written file under its final
name. `read_datasets` finds and reads the data files of a stem, as the original's
utils.read_datasets did; lfads_tf2.data.checks then checks them against the flags.

A data dict maps h5 key -> numpy array. `read_datasets` adds three in-memory keys:
`data_dim` (D), `num_steps` (T) and `PATH_KEY` ("_path", the source file, used in
error messages). `write_data` never writes `PATH_KEY`.
"""
import contextlib
import json
import os
import secrets

import h5py
import numpy as np

from lfads_tf2.errors import data_error

# In-memory key holding the source file of a data dict (for error messages).
PATH_KEY = "_path"
# Keys that exist only in memory; writers skip them.
_IN_MEMORY_KEYS = frozenset([PATH_KEY])


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
        raise data_error(data_fname, "(file)", "not a readable HDF5 file (%s)"
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
                raise data_error(data_fname, key, "cannot be read, the file may be truncated "
                             "or damaged (%s)" % (str(e).splitlines() or [""])[0]) from None
    return data_dict


def write_datasets(data_path, data_fname_stem, dataset_dict, compression=None):
    """Writes one file per dataset at <data_path>/<data_fname_stem>_<name>."""
    for name, data_dict in dataset_dict.items():
        write_data(os.path.join(data_path, data_fname_stem + "_" + name), data_dict,
                   compression=compression)


# ------------------------------------------------------------------------------------------
# Reading datasets


def read_datasets(data_path, data_fname_stem):
    """Reads every file in `data_path` whose name starts with `data_fname_stem`.

    Returns {dataset name: data dict}, sorted by name (the original's dict order was
    arbitrary, so the order of its read-ins could change between runs). The name is the file name minus the stem and one separator character,
    or the whole file name if that leaves nothing. Directories and hidden files (names
    starting with '.', e.g. our own temporary files) are skipped. Plain prefix matching
    is kept from the original, so stem 'a' also matches 'a_b_c' as a second dataset:
    the caller should print the loaded names.

    Each data dict also gets `PATH_KEY` and, when `train_data` is 3-d,
    `data_dim` = D and `num_steps` = T. Content is checked by `validate_datasets`.
    """
    data_path = os.fspath(data_path)
    if not data_fname_stem:
        raise data_error(data_path, "--data_filename_stem",
                     "is empty; it would match every file in the folder")
    if not os.path.exists(data_path):
        raise data_error(data_path, "--data_dir", "folder does not exist")
    if not os.path.isdir(data_path):
        raise data_error(data_path, "--data_dir", "is not a folder")
    try:
        entries = sorted(os.listdir(data_path))
    except OSError as e:
        raise data_error(data_path, "--data_dir", "cannot list folder (%s)" % e) from None

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
            raise data_error(full, "(file name)",
                         "dataset name '%s' is also derived from %s; rename one file or "
                         "use a longer --data_filename_stem" % (name, by_name[name]))
        by_name[name] = full
    if not by_name:
        raise data_error(data_path, "--data_filename_stem=%s" % data_fname_stem,
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
# Hyperparameter file (the original's hyperparameters-<step>.txt, as JSON)


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
        raise data_error(fname, "(file)", "cannot be read (%s)" % e.strerror) from None
    except json.JSONDecodeError as e:
        raise data_error(fname, "(file)", "not valid JSON (%s)" % e) from None
    if not isinstance(hps, dict):
        raise data_error(fname, "(file)", "expected a JSON object, got %s" % type(hps).__name__)
    bools = {"true": True, "false": False}
    return {k: bools.get(v, v) if isinstance(v, str) else v for k, v in hps.items()}
