"""The checks every data file passes before any work is done.

`validate_datasets(datasets, observation, ...)` checks the data dicts that
utils.read_datasets returns against the flags: shapes, dtypes, finite values, the values
the observation model (lfads_tf2.model.observation) can fit, external inputs, alignment
matrices, held-out neurons and forward bins (`<split>_recon_data`) and test data. The
first problem raises a DataError '<file>: <key>: <problem>'; harmless surprises come
back as one-line notes for the caller to print. `load_datasets` reads and checks.
The observation model is passed in by the caller, so this layer does not depend on the
model's.
"""
import numpy as np

import utils
from lfads_tf2 import errors
from lfads_tf2.errors import bad_values, data_error, note

PATH_KEY = utils.PATH_KEY
_FLOAT32_MAX = float(np.finfo(np.float32).max)
# --nan_is_missing: the smallest fraction of observed (not NaN) entries a data array may
# have; below it there is next to nothing to learn from, and more likely a wrong file.
MIN_OBSERVED_FRACTION = 0.01


def _check_finite(path, key, x, nan_is_missing=False):
    """NaN/inf and float32 overflow checks for float arrays (everything is fed as 32-bit).
    nan_is_missing: NaN marks a missing entry (--nan_is_missing); inf stays an error."""
    if x.dtype.kind != "f":
        return
    if nan_is_missing:
        bad = np.isinf(x)
        if bad.any():
            raise data_error(path, key, "inf in %s (with --nan_is_missing, NaN marks a "
                             "missing entry; inf is not allowed)" % bad_values(bad))
    else:
        bad = ~np.isfinite(x)
        if bad.any():
            raise data_error(path, key, "NaN or inf in %s" % bad_values(bad))
    if x.dtype.itemsize > 4 and x.size:
        big = np.abs(x) > _FLOAT32_MAX
        if big.any():
            raise data_error(path, key, "magnitude exceeds float32 range in %s"
                         % bad_values(big))


def _check_split(path, key, x, observation, notes, nan_is_missing=False):
    """Checks one data array [E, T, D] for shape, dtype and values; appends notes.
    The values are the observation model's to check (counts for Poisson, ...); with
    nan_is_missing (--nan_is_missing) its observed ones, at least MIN_OBSERVED_FRACTION
    of them."""
    if x.ndim != 3:
        raise data_error(path, key, "has %d dims with shape %s; expected 3 dims "
                         "[trials, time, channels]" % (x.ndim, x.shape))
    for size, what in zip(x.shape, ("trials", "time bins", "channels")):
        if size == 0:
            raise data_error(path, key, "has 0 %s (shape %s)" % (what, x.shape))
    if x.dtype.kind not in "iuf":
        raise data_error(path, key, "dtype %s is not allowed for --output_dist=%s (need %s)"
                         % (x.dtype, observation.name, observation.values))
    _check_finite(path, key, x, nan_is_missing)
    if not nan_is_missing:
        notes.extend(observation.check_values(path, key, x))
        return
    missing = np.isnan(x) if x.dtype.kind == "f" else np.zeros(x.shape, bool)
    observed = 1.0 - float(np.mean(missing))
    if observed < MIN_OBSERVED_FRACTION:
        raise data_error(path, key, "only %.3g %% of the entries are observed (not NaN); "
                         "--nan_is_missing needs at least %g %%"
                         % (100 * observed, 100 * MIN_OBSERVED_FRACTION))
    # The model checks observed values only: a missing entry takes the value of an
    # observed one (valid if they all are), so that the positions it reports are x's.
    values = np.where(missing, x[~missing].flat[0], x) if missing.any() else x
    try:
        notes.extend(observation.check_values(path, key, values))
    except errors.DataError as e:
        if x.dtype.kind == "f":
            raise
        # a user who marked missing entries with a number (e.g. -1) in integer data
        raise errors.DataError("%s; integer arrays cannot hold NaN: with --nan_is_missing, "
                               "store %s as float with NaN at the missing entries"
                               % (e, key)) from None


def _check_ext_input(path, key, x, expected_shape):
    """External inputs [E, T, I]: numeric, finite, exactly `expected_shape`."""
    if x.dtype.kind not in "biuf":
        raise data_error(path, key, "dtype %s is not numeric" % x.dtype)
    if x.shape != expected_shape:
        raise data_error(path, key, "expected shape %s = [trials, time, --ext_input_dim], got %s"
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
            raise data_error(path, key, "dtype %s is not real-valued" % mat.dtype)
        if factors_dim is not None:
            ok = mat.shape == (data_dim, factors_dim)
            expected = "(%d, %d) = (D, --factors_dim)" % (data_dim, factors_dim)
        else:
            ok = mat.ndim == 2 and mat.shape[0] == data_dim
            expected = "(%d, F)" % data_dim
        if not ok:
            raise data_error(path, key, "expected shape %s, got %s" % (expected, mat.shape))
        _check_finite(path, key, mat)
    if bias is not None:
        key = "alignment_bias_c"
        bias = np.asarray(bias)
        if bias.dtype.kind not in "iuf":
            raise data_error(path, key, "dtype %s is not real-valued" % bias.dtype)
        if bias.shape != (data_dim,):
            raise data_error(path, key, "expected shape (%d,) = (D,), got %s"
                         % (data_dim, bias.shape))
        _check_finite(path, key, bias)
        if mat is None:
            # The original initialises the read-in bias from the bias only together
            # with the matrix (its read-in is built from both).
            notes.append(note(path, key, "ignored because alignment_matrix_cxf is absent"))


def _first_difference(a, b):
    """Index (tuple) of the first element where arrays a and b (same shape) differ
    (NaN equals NaN)."""
    differ = a != b
    if a.dtype.kind == "f" and b.dtype.kind == "f":
        differ &= ~(np.isnan(a) & np.isnan(b))
    return tuple(int(i) for i in np.argwhere(differ)[0])


def _check_recon(path, split, data_dict, observation, notes, nan_is_missing=False):
    """<split>_recon_data [E, T + T_fp, N_in + N_out]: its first T bins and N_in neurons
    are <split>_data (NaN where it has NaN, with nan_is_missing). Returns its shape, or
    None when absent."""
    key = split + "_recon_data"
    if data_dict.get(key) is None:
        return None
    recon = np.asarray(data_dict[key])
    _check_split(path, key, recon, observation, notes, nan_is_missing)
    data = np.asarray(data_dict[split + "_data"])
    E, T, N = data.shape
    if recon.shape[0] != E:
        raise data_error(path, key, "has %d trials but %s_data has %d"
                     % (recon.shape[0], split, E))
    if recon.shape[1] < T or recon.shape[2] < N:
        raise data_error(path, key, "shape %s is smaller than %s_data %s; expected [trials, "
                     "time bins + forward bins, held-in + held-out neurons]"
                     % (recon.shape, split, data.shape))
    if not np.array_equal(recon[:, :T, :N], data,
                          equal_nan=nan_is_missing and recon.dtype.kind == data.dtype.kind == "f"):
        raise data_error(path, key, "its first %d bins and %d neurons differ from %s_data "
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
        raise data_error(path, key, "expected shape (%d,) = [trials of %s_data], got %s"
                     % (E, split, labels.shape))
    if labels.dtype.kind not in "iuSUOf":
        raise data_error(path, key, "dtype %s is not an integer or string label" % labels.dtype)
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise data_error(path, key, "NaN or inf in %s" % bad_values(~np.isfinite(labels)))


def validate_heldout_keys(path, data_dict, observation, notes=None, labels=False,
                          nan_is_missing=False):
    """Checks the optional keys of held-out neurons, forward bins and conditions.

    `<split>_recon_data` [E, T + T_fp, N_in + N_out] (both splits or neither, with the
    same extent; Poisson: non-negative integers), the optional `test_recon_data` of the
    same extent (scoring only) and, with `labels`, `condition_labels_<split>` [E] (only
    scoring uses them; training ignores them; test only with test_data).
    Needs `<split>_data` of both splits. nan_is_missing: NaN marks missing entries
    (--nan_is_missing). Raises DataError; returns the notes list.
    """
    notes = [] if notes is None else notes
    shapes = {split: _check_recon(path, split, data_dict, observation, notes,
                                  nan_is_missing)
              for split in ("train", "valid")}
    present = [split for split, shape in shapes.items() if shape is not None]
    if len(present) == 1:
        other = "valid" if present[0] == "train" else "train"
        raise data_error(path, other + "_recon_data", "missing, but %s_recon_data is present "
                     "(both splits need it)" % present[0])
    if present and shapes["train"][1:] != shapes["valid"][1:]:
        raise data_error(path, "valid_recon_data", "shape %s does not match train_recon_data %s "
                     "in time bins and neurons" % (shapes["valid"], shapes["train"]))
    # test_recon_data: optional, for scoring test outputs only (never trained on)
    if data_dict.get("test_recon_data") is not None:
        if data_dict.get("test_data") is None:
            raise data_error(path, "test_recon_data", "present, but test_data is missing")
        if np.ndim(data_dict["test_data"]) != 3:
            raise data_error(path, "test_data", "has shape %s; expected 3 dims [trials, time, "
                         "channels]" % (np.shape(data_dict["test_data"]),))
        shape = _check_recon(path, "test", data_dict, observation, notes, nan_is_missing)
        if not present:
            raise data_error(path, "test_recon_data", "present, but train_recon_data is missing "
                         "(test outputs have the extent the model was trained on)")
        if shape[1:] != shapes["train"][1:]:
            raise data_error(path, "test_recon_data", "shape %s does not match train_recon_data "
                         "%s in time bins and neurons" % (shape, shapes["train"]))
    if labels:
        for split in ("train", "valid", "test"):
            if split == "test" and data_dict.get("test_data") is None:
                continue
            _check_labels(path, split, data_dict)
    return notes


def _check_test_data(path, data_dict, train, observation, ext_input_dim, notes,
                     nan_is_missing=False):
    """test_data [E_test, T, D]: held-in neurons over the T bins of train_data; only
    posterior sampling reads it (with test_ext_input [E_test, T, I] when I > 0)."""
    test = data_dict.get("test_data")
    if test is None:
        return
    test = np.asarray(test)
    _check_split(path, "test_data", test, observation, notes, nan_is_missing)
    if test.shape[1:] != train.shape[1:]:
        raise data_error(path, "test_data", "shape %s does not match train_data %s in time bins "
                     "and channels (expected [trials, %d, %d], the held-in neurons over the "
                     "bins the model reads)" % (test.shape, train.shape, train.shape[1],
                                                train.shape[2]))
    key = "test_ext_input"
    ext = data_dict.get(key)
    if ext_input_dim > 0:
        expected = (test.shape[0], train.shape[1], ext_input_dim)
        if ext is None:
            raise data_error(path, key, "missing; required with test_data by --ext_input_dim=%d "
                         "(expected shape %s)" % (ext_input_dim, expected))
        _check_ext_input(path, key, np.asarray(ext), expected)
    elif ext is not None:
        notes.append(note(path, key, "ignored because --ext_input_dim=0"))


def validate_datasets(datasets, observation, ext_input_dim=0, factors_dim=None,
                      batch_size=None, kind="train", nan_is_missing=False):
    """Checks loaded datasets against the flags; returns one-line notes to print.

    Raises DataError '<file>: <key>: <problem>' for the first problem found. All datasets
    are checked (the original only checked the dtype of the first one). Both splits
    are required (the original's training loop reads both). With kind == 'train' each split needs at least `batch_size` trials
    (our batching pads a split up to a multiple of the batch). Missing `data_dim` /
    `num_steps` keys are filled in. nan_is_missing (--nan_is_missing): NaN in the data
    arrays (not in external inputs) marks missing entries.
    """
    if not datasets:
        raise errors.DataError("(datasets): (none): no datasets to validate")
    notes = []
    first_path, first_steps, first_fp = None, None, None
    for name, data_dict in datasets.items():
        path = data_dict.get(PATH_KEY, "<dataset %s>" % name)
        for key in ("train_data", "valid_data"):
            if data_dict.get(key) is None:
                why = "" if key == "train_data" else " (LFADS needs a validation split)"
                raise data_error(path, key, "missing required key%s" % why)
        train = np.asarray(data_dict["train_data"])
        valid = np.asarray(data_dict["valid_data"])
        _check_split(path, "train_data", train, observation, notes, nan_is_missing)
        _check_split(path, "valid_data", valid, observation, notes, nan_is_missing)
        num_trials = {"train": train.shape[0], "valid": valid.shape[0]}
        num_steps, data_dim = train.shape[1], train.shape[2]
        if valid.shape[1:] != train.shape[1:]:
            raise data_error(path, "valid_data", "shape %s does not match train_data %s in "
                         "time bins and channels" % (valid.shape, train.shape))
        if first_steps is None:
            first_path, first_steps = path, num_steps
        elif num_steps != first_steps:
            raise data_error(path, "train_data", "T=%d time bins, but %s has T=%d; all datasets "
                         "must share the number of time bins" % (num_steps, first_path,
                                                                 first_steps))

        for split in ("train", "valid"):
            key = split + "_ext_input"
            ext = data_dict.get(key)
            if ext_input_dim > 0:
                expected = (num_trials[split], num_steps, ext_input_dim)
                if ext is None:
                    raise data_error(path, key, "missing; required by --ext_input_dim=%d "
                                 "(expected shape %s)" % (ext_input_dim, expected))
                _check_ext_input(path, key, np.asarray(ext), expected)
            elif ext is not None:
                notes.append(note(path, key, "ignored because --ext_input_dim=0"))

        _check_alignment(path, data_dict, data_dim, factors_dim, notes)
        _check_test_data(path, data_dict, train, observation, ext_input_dim, notes,
                         nan_is_missing)
        validate_heldout_keys(path, data_dict, observation, notes,
                              nan_is_missing=nan_is_missing)
        # One generator length for all sessions (one trace serves every dataset): the
        # held-out neurons may differ per session, the forward bins may not.
        fp_bins = heldout_extent(data_dict)[1]
        if first_fp is None:
            first_fp = (path, fp_bins)
        elif fp_bins != first_fp[1]:
            raise data_error(path, "train_recon_data", "%d forward bins, but %s has %d; all "
                         "datasets must share the number of forward bins (a dataset "
                         "without recon_data has 0)" % (fp_bins, first_fp[0], first_fp[1]))

        if batch_size is not None and kind == "train":
            for split, count in num_trials.items():
                if count < batch_size:
                    raise data_error(path, split + "_data", "has %d trials, fewer than "
                                 "--batch_size=%d" % (count, batch_size))
        data_dict.setdefault("data_dim", int(data_dim))
        data_dict.setdefault("num_steps", int(num_steps))
    return notes


def load_datasets(data_dir, data_filename_stem, observation, ext_input_dim=0,
                  factors_dim=None, batch_size=None, kind="train", nan_is_missing=False):
    """read_datasets + validate_datasets. Returns (datasets, notes).

    The first note lists the loaded dataset names, so that an unintended stem-prefix
    match is visible.
    """
    datasets = utils.read_datasets(data_dir, data_filename_stem)
    notes = ["%s: --data_filename_stem=%s: loaded %d dataset(s): %s"
             % (data_dir, data_filename_stem, len(datasets), ", ".join(datasets))]
    notes += validate_datasets(datasets, observation, ext_input_dim=ext_input_dim,
                               factors_dim=factors_dim, batch_size=batch_size, kind=kind,
                               nan_is_missing=nan_is_missing)
    return datasets, notes


