"""Tests of the data-loading half of utils.py: h5 I/O, read/validate datasets, hps JSON."""
import json
import os
import tempfile

import h5py
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import utils
from lfads_tf2.data import checks
from lfads_tf2.model import observation
from lfads_tf2 import errors
from lfads_tf2.errors import DataError
STEM = "stem"


def good_dict(e_train=8, e_valid=6, t=5, d=3, dtype=np.int32, seed=0):
    """A valid Poisson data dict: train [8, 5, 3], valid [6, 5, 3]."""
    rng = np.random.RandomState(seed)
    return {
        "train_data": rng.poisson(1.0, (e_train, t, d)).astype(dtype),
        "valid_data": rng.poisson(1.0, (e_valid, t, d)).astype(dtype),
    }


def write_one(folder, name, data_dict):
    """Writes <folder>/<STEM>_<name>, returns its path."""
    path = os.path.join(str(folder), STEM + "_" + name)
    utils.write_data(path, data_dict)
    return path


def assert_one_line_error(excinfo, *fragments):
    msg = str(excinfo.value)
    assert "\n" not in msg and "\r" not in msg, msg
    for frag in fragments:
        assert frag in msg, (frag, msg)


# ------------------------------------------------------------------------------------------
# write_data / read_data


def test_round_trip_keys_dtypes_and_slash(tmp_path):
    data = {
        "train_data": np.arange(24, dtype=np.int64).reshape(2, 3, 4),
        "valid_data": np.ones((1, 3, 4), np.float32),
        "u8": np.array([1, 2], np.uint8),
        "flags": np.array([True, False]),
        "conversion_factor": 3.5,
        "n": 7,
        "group/key": np.zeros(2),
        "label": "abc",
    }
    fname = tmp_path / "sub" / "f"  # the parent folder is created
    utils.write_data(str(fname), data)
    back = utils.read_data(str(fname))
    assert set(back) == {"train_data", "valid_data", "u8", "flags", "conversion_factor",
                         "n", "group_key", "label"}
    np.testing.assert_array_equal(back["train_data"], data["train_data"])
    assert back["train_data"].dtype == np.int64
    assert back["valid_data"].dtype == np.float32
    assert back["u8"].dtype == np.uint8
    assert back["flags"].dtype == np.bool_
    assert back["conversion_factor"].shape == () and back["conversion_factor"] == 3.5
    assert back["n"].shape == () and back["n"] == 7
    assert back["label"] == b"abc"


def test_gzip_applies_to_arrays_not_scalars(tmp_path):
    fname = str(tmp_path / "f")
    utils.write_data(fname, {"a": np.zeros((4, 5)), "s": 1.0, "empty": np.zeros((0, 3))},
                     compression="gzip")
    with h5py.File(fname, "r") as hf:
        assert hf["a"].compression == "gzip"
        assert hf["s"].compression is None
        assert hf["empty"].compression is None


def test_path_key_is_not_written(tmp_path):
    fname = str(tmp_path / "f")
    utils.write_data(fname, {"a": np.zeros(2), utils.PATH_KEY: "/some/where"})
    assert set(utils.read_data(fname)) == {"a"}


def test_atomic_write_leaves_no_temp_file(tmp_path):
    utils.write_data(str(tmp_path / "f"), {"a": np.zeros(3)})
    utils.write_data(str(tmp_path / "j"), {"a": np.zeros(3)}, use_json=True)
    assert sorted(os.listdir(tmp_path)) == ["f", "j"]
    assert json.load(open(tmp_path / "j")) == {"a": [0.0, 0.0, 0.0]}


class _Boom:
    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("boom")


def test_exception_mid_write_leaves_no_file(tmp_path):
    fname = str(tmp_path / "f")
    with pytest.raises(RuntimeError, match="boom"):
        utils.write_data(fname, {"a": np.zeros(3), "b": _Boom()})
    assert os.listdir(tmp_path) == []
    # An existing file under the final name survives a failed rewrite untouched.
    utils.write_data(fname, {"old": np.ones(2)})
    with pytest.raises(RuntimeError):
        utils.write_data(fname, {"a": np.zeros(3), "b": _Boom()})
    assert os.listdir(tmp_path) == ["f"]
    assert set(utils.read_data(fname)) == {"old"}


def test_read_data_not_hdf5_and_truncated(tmp_path):
    bad = tmp_path / "stem_text"
    bad.write_text("hello\n")
    with pytest.raises(DataError) as ei:
        utils.read_data(str(bad))
    assert_one_line_error(ei, "stem_text", "(file)", "not a readable HDF5 file")

    full = str(tmp_path / "stem_full")
    utils.write_data(full, good_dict(e_train=200))
    raw = open(full, "rb").read()
    for cut in (100, len(raw) // 2, len(raw) - 10):
        trunc = tmp_path / ("stem_cut%d" % cut)
        trunc.write_bytes(raw[:cut])
        with pytest.raises(DataError) as ei:
            utils.read_data(str(trunc))
        assert_one_line_error(ei, "stem_cut%d" % cut)


# ------------------------------------------------------------------------------------------
# read_datasets: matching and naming


def test_stem_matching_naming_and_order(tmp_path):
    for name in ("zeta", "alpha", "mid.h5"):
        write_one(tmp_path, name, good_dict())
    utils.write_data(str(tmp_path / STEM), good_dict())          # name would be empty
    utils.write_data(str(tmp_path / "other_x"), good_dict())     # no prefix match
    utils.write_data(str(tmp_path / ".stem_hidden"), good_dict())  # hidden: skipped
    os.mkdir(tmp_path / "stem_dir")                                # directory: skipped
    datasets = utils.read_datasets(str(tmp_path), STEM)
    assert list(datasets) == ["alpha", "mid.h5", "stem", "zeta"]
    d = datasets["alpha"]
    assert d[utils.PATH_KEY] == os.path.join(str(tmp_path), "stem_alpha")
    assert d["data_dim"] == 3 and d["num_steps"] == 5
    assert isinstance(d["data_dim"], int)


def test_stem_prefix_pitfall(tmp_path):
    # As the original's read_datasets: a stem that prefixes another data set's stem also
    # loads that data set.
    utils.write_data(str(tmp_path / "chaotic_rnn_no_inputs_dataset_N50"), good_dict())
    utils.write_data(str(tmp_path / "chaotic_rnn_no_inputs_gaussian_dataset_N50"),
                     good_dict(dtype=np.float64))
    datasets = utils.read_datasets(str(tmp_path), "chaotic_rnn_no_inputs")
    assert list(datasets) == ["dataset_N50", "gaussian_dataset_N50"]
    # The load note lists both, so the user can see the unintended match.
    _, notes = checks.load_datasets(str(tmp_path), "chaotic_rnn_no_inputs", observation.for_dist("poisson"))
    assert "dataset_N50, gaussian_dataset_N50" in notes[0]
    # The separator is any single character, not only '_'.
    other = tmp_path / "o"
    utils.write_data(str(other / "mydata-day1"), good_dict())
    assert list(utils.read_datasets(str(other), "mydata")) == ["day1"]


def test_duplicate_dataset_name(tmp_path):
    utils.write_data(str(tmp_path / "stem_x"), good_dict())
    utils.write_data(str(tmp_path / "stem-x"), good_dict())
    with pytest.raises(DataError) as ei:
        utils.read_datasets(str(tmp_path), STEM)
    assert_one_line_error(ei, "stem_x", "stem-x", "'x'")


def test_read_datasets_folder_errors(tmp_path):
    with pytest.raises(DataError) as ei:
        utils.read_datasets(str(tmp_path / "nope"), STEM)
    assert_one_line_error(ei, "nope", "--data_dir", "does not exist")

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(DataError) as ei:
        utils.read_datasets(str(afile), STEM)
    assert_one_line_error(ei, "afile", "--data_dir", "not a folder")

    write_one(tmp_path, "a", good_dict())
    with pytest.raises(DataError) as ei:
        utils.read_datasets(str(tmp_path), "missing_stem")
    assert_one_line_error(ei, str(tmp_path), "missing_stem", "--data_dir",
                          "--data_filename_stem")

    with pytest.raises(DataError) as ei:
        utils.read_datasets(str(tmp_path), "")
    assert_one_line_error(ei, "--data_filename_stem", "empty")


def test_read_datasets_bad_file(tmp_path):
    write_one(tmp_path, "a", good_dict())
    (tmp_path / "stem_b.txt").write_text("not hdf5")
    with pytest.raises(DataError) as ei:
        utils.read_datasets(str(tmp_path), STEM)
    assert_one_line_error(ei, "stem_b.txt", "(file)", "HDF5")


# ------------------------------------------------------------------------------------------
# validate_datasets: errors


def _drop(*keys):
    def mutate(d):
        for k in keys:
            d.pop(k)
    return mutate


def _set(key, value):
    def mutate(d):
        d[key] = value(d) if callable(value) else value
    return mutate


def _poke(key, value, index=(0, 1, 2), dtype=None):
    def mutate(d):
        x = d[key].astype(dtype or d[key].dtype)
        x[index] = value
        d[key] = x
    return mutate


EXT = {"ext_input_dim": 2}
ERROR_CASES = [
    # (id, mutation, output_dist, extra validate kwargs, key in message, message fragment)
    ("no_train", _drop("train_data"), "poisson", {}, "train_data", "missing"),
    ("no_valid", _drop("valid_data"), "poisson", {}, "valid_data", "missing"),
    ("2d", _set("train_data", np.zeros((8, 5), np.int32)), "poisson", {}, "train_data",
     "expected 3 dims"),
    ("4d", _set("valid_data", np.zeros((6, 5, 3, 1), np.int32)), "poisson", {}, "valid_data",
     "expected 3 dims"),
    ("0trials", _set("train_data", np.zeros((0, 5, 3), np.int32)), "poisson", {},
     "train_data", "0 trials"),
    ("0time", _set("valid_data", np.zeros((6, 0, 3), np.int32)), "poisson", {}, "valid_data",
     "0 time bins"),
    ("0chan", _set("train_data", np.zeros((8, 5, 0), np.int32)), "poisson", {}, "train_data",
     "0 channels"),
    ("frac", _poke("train_data", 0.5, dtype=np.float32), "poisson", {}, "train_data",
     "non-integer counts for --output_dist=poisson"),
    ("bool_p", _set("train_data", lambda d: d["train_data"] > 0), "poisson", {}, "train_data",
     "dtype bool"),
    ("complex_p", _set("valid_data", lambda d: d["valid_data"] + 0j), "poisson", {},
     "valid_data", "dtype complex"),
    ("bytes_p", _set("train_data", lambda d: d["train_data"].astype("S2")), "poisson", {},
     "train_data", "dtype |S2"),
    ("neg_int", _poke("valid_data", -1), "poisson", {}, "valid_data", "negative counts"),
    ("neg_float", _poke("train_data", -2.0, dtype=np.float64), "poisson", {}, "train_data",
     "negative counts"),
    ("huge_count", _poke("train_data", 2 ** 40, dtype=np.int64), "poisson", {}, "train_data",
     "int32"),
    ("bool_g", _set("train_data", lambda d: d["train_data"] > 0), "gaussian", {}, "train_data",
     "dtype bool"),
    ("complex_g", _set("train_data", lambda d: d["train_data"] + 0j), "gaussian", {},
     "train_data", "dtype complex"),
    ("nan_g", _poke("train_data", np.nan, dtype=np.float32), "gaussian", {}, "train_data",
     "first at index (0, 1, 2)"),
    ("inf_p", _poke("valid_data", np.inf, dtype=np.float64), "poisson", {}, "valid_data",
     "NaN or inf in 1 value(s)"),
    ("f32_overflow", _poke("train_data", 1e300, dtype=np.float64), "gaussian", {},
     "train_data", "float32"),
    ("valid_T", _set("valid_data", np.zeros((6, 4, 3), np.int32)), "poisson", {}, "valid_data",
     "time bins and channels"),
    ("valid_D", _set("valid_data", np.zeros((6, 5, 2), np.int32)), "poisson", {}, "valid_data",
     "time bins and channels"),
    ("no_ext", lambda d: None, "poisson", EXT, "train_ext_input",
     "expected shape (8, 5, 2)"),
    ("no_valid_ext", _set("train_ext_input", np.zeros((8, 5, 2))), "poisson", EXT,
     "valid_ext_input", "--ext_input_dim=2"),
    ("ext_shape", lambda d: d.update(train_ext_input=np.zeros((8, 5, 2)),
                                     valid_ext_input=np.zeros((6, 5, 3))),
     "poisson", EXT, "valid_ext_input", "expected shape (6, 5, 2)"),
    ("ext_nan", lambda d: d.update(train_ext_input=np.full((8, 5, 2), np.nan),
                                   valid_ext_input=np.zeros((6, 5, 2))),
     "poisson", EXT, "train_ext_input", "80 value(s)"),
    ("ext_complex", lambda d: d.update(train_ext_input=np.zeros((8, 5, 2), complex),
                                       valid_ext_input=np.zeros((6, 5, 2))),
     "poisson", EXT, "train_ext_input", "not numeric"),
    ("align_shape", _set("alignment_matrix_cxf", np.zeros((3, 4))), "poisson",
     {"factors_dim": 2}, "alignment_matrix_cxf", "expected shape (3, 2)"),
    ("align_rows", _set("alignment_matrix_cxf", np.zeros((4, 2))), "poisson", {},
     "alignment_matrix_cxf", "expected shape (3, F)"),
    ("align_nan", _set("alignment_matrix_cxf", np.array([[np.nan, 0]] * 3)), "poisson",
     {"factors_dim": 2}, "alignment_matrix_cxf", "NaN or inf"),
    ("bias_shape", lambda d: d.update(alignment_matrix_cxf=np.zeros((3, 2)),
                                      alignment_bias_c=np.zeros(4)),
     "poisson", {}, "alignment_bias_c", "expected shape (3,)"),
    ("bias_inf", lambda d: d.update(alignment_matrix_cxf=np.zeros((3, 2)),
                                    alignment_bias_c=np.array([0, np.inf, 0])),
     "poisson", {}, "alignment_bias_c", "NaN or inf"),
    ("batch_train", lambda d: None, "poisson", {"batch_size": 7}, "valid_data",
     "has 6 trials, fewer than --batch_size=7"),
    ("batch_both", lambda d: None, "poisson", {"batch_size": 64}, "train_data",
     "has 8 trials, fewer than --batch_size=64"),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_validate_errors_are_one_line_with_file_and_key(tmp_path, case):
    _, mutate, output_dist, kwargs, key, fragment = case
    data = good_dict()
    mutate(data)
    path = write_one(tmp_path, "sess", data)
    datasets = utils.read_datasets(str(tmp_path), STEM)
    with pytest.raises(DataError) as ei:
        checks.validate_datasets(datasets, observation.for_dist(output_dist), **kwargs)
    assert_one_line_error(ei, path + ": " + key + ": ", fragment)


def test_validate_T_differs_across_files(tmp_path):
    p1 = write_one(tmp_path, "a", good_dict(t=5))
    p2 = write_one(tmp_path, "b", good_dict(t=7))
    with pytest.raises(DataError) as ei:
        checks.load_datasets(str(tmp_path), STEM, observation.for_dist("poisson"))
    assert_one_line_error(ei, p1, p2, "train_data", "T=7", "T=5")


def test_validate_unknown_output_dist():
    with pytest.raises(errors.UsageError) as ei:
        observation.for_dist("bernoulli")
    assert_one_line_error(ei, "--output_dist=bernoulli", "expected one of poisson, gaussian")


def test_validate_in_memory_dicts_use_dataset_name():
    with pytest.raises(DataError) as ei:
        checks.validate_datasets({"sess": {"train_data": np.zeros((2, 3, 4))}}, observation.for_dist("gaussian"))
    assert_one_line_error(ei, "<dataset sess>: valid_data: missing")


# ------------------------------------------------------------------------------------------
# validate_datasets: accepted inputs and notes


def test_notes_gaussian_on_int_and_poisson_on_whole_floats(tmp_path):
    write_one(tmp_path, "a", good_dict(dtype=np.int16))
    _, notes = checks.load_datasets(str(tmp_path), STEM, observation.for_dist("gaussian"))
    assert any("train_data: integer data are treated as real values for "
               "--output_dist=gaussian" in n for n in notes)

    other = tmp_path / "f"
    write_one(other, "a", good_dict(dtype=np.float32))
    datasets, notes = checks.load_datasets(str(other), STEM, observation.for_dist("poisson"))
    assert any("stem_a: valid_data:" in n and "treated as counts" in n for n in notes)
    assert all("\n" not in n for n in notes)
    assert datasets["a"]["data_dim"] == 3


def test_accepts_full_valid_file_and_ignores_extras(tmp_path):
    data = good_dict()
    data.update(train_ext_input=np.zeros((8, 5, 2), np.float32),
                valid_ext_input=np.zeros((6, 5, 2), np.float32),
                alignment_matrix_cxf=np.ones((3, 4)), alignment_bias_c=np.zeros(3),
                train_truth=np.zeros((8, 5, 3)), conversion_factor=3.3,
                condition_labels_train=np.array([b"a", b"b"], dtype=object))
    write_one(tmp_path, "a", data)
    _, notes = checks.load_datasets(str(tmp_path), STEM, observation.for_dist("poisson"), ext_input_dim=2,
                                   factors_dim=4, batch_size=6)
    assert len(notes) == 1  # only the 'loaded' note
    # ext input present but ext_input_dim=0: fine, with a note.
    _, notes = checks.load_datasets(str(tmp_path), STEM, observation.for_dist("poisson"))
    assert any("train_ext_input: ignored" in n for n in notes)


def test_bias_without_matrix_is_a_note(tmp_path):
    data = good_dict()
    data["alignment_bias_c"] = np.zeros(3)
    write_one(tmp_path, "a", data)
    _, notes = checks.load_datasets(str(tmp_path), STEM, observation.for_dist("poisson"))
    assert any("alignment_bias_c: ignored because alignment_matrix_cxf is absent" in n
               for n in notes)


def test_batch_size_only_checked_for_train(tmp_path):
    write_one(tmp_path, "a", good_dict())
    for kind in ("posterior_sample_and_average", "posterior_push_mean", "prior_sample"):
        checks.load_datasets(str(tmp_path), STEM, observation.for_dist("poisson"), batch_size=100, kind=kind)
    # E == B is enough: our batching pads, it does not need E > B.
    checks.load_datasets(str(tmp_path), STEM, observation.for_dist("poisson"), batch_size=6)


def test_loaded_datasets_can_be_written_back(tmp_path):
    write_one(tmp_path, "a", good_dict())
    datasets, _ = checks.load_datasets(str(tmp_path), STEM, observation.for_dist("poisson"))
    out = tmp_path / "out"
    utils.write_datasets(str(out), STEM, datasets)
    back = utils.read_datasets(str(out), STEM)
    assert list(back) == ["a"]
    np.testing.assert_array_equal(back["a"]["train_data"], datasets["a"]["train_data"])


# ------------------------------------------------------------------------------------------
# Property test: any input loads or raises a one-line DataError


DTYPES = ["int8", "int32", "int64", "uint8", "float32", "float64", "bool", "complex64"]
KEYS = ["train_data", "valid_data", "train_ext_input", "valid_ext_input",
        "alignment_matrix_cxf", "alignment_bias_c"]


def _random_array(rng, dtype, shape, inject):
    """Small counts in `shape`, cast to `dtype`, optionally with NaN/negative/fraction."""
    x = rng.poisson(1.0, shape).astype(np.float64)
    if x.size and inject == "nan":
        x.flat[rng.randint(x.size)] = np.nan
    elif x.size and inject == "neg":
        x.flat[rng.randint(x.size)] = -3
    elif x.size and inject == "frac":
        x.flat[rng.randint(x.size)] = 0.25
    with np.errstate(invalid="ignore"):
        return x.astype(dtype)


@st.composite
def dataset_files(draw):
    """A list of data dicts (or raw bytes for a garbage file), plus validation flags.

    Mostly well-formed, so that both outcomes (loads / DataError) are common: each key
    is present, correctly shaped and clean with high probability, and one of several
    corruptions is drawn otherwise.
    """
    # True with probability ~1/8. Not i == 0: hypothesis favours the lower bound.
    rare = st.integers(0, 7).map(lambda i: i == 7)
    size = st.tuples(st.integers(1, 5), rare).map(lambda s: 0 if s[1] else s[0])
    e_train, e_valid, t, d = draw(size), draw(size), draw(size), draw(size)
    ext_dim, f = draw(st.integers(0, 2)), draw(st.integers(1, 3))
    shapes = {"train_data": (e_train, t, d), "valid_data": (e_valid, t, d),
              "train_ext_input": (e_train, t, ext_dim), "valid_ext_input": (e_valid, t, ext_dim),
              "alignment_matrix_cxf": (d, f), "alignment_bias_c": (d,)}
    files = []
    for i in range(draw(st.integers(1, 2))):
        if draw(st.integers(0, 19)) == 19:  # a garbage (non-HDF5) file
            files.append(draw(st.binary(max_size=64)))
            continue
        rng = np.random.RandomState(draw(st.integers(0, 2 ** 31 - 1)))
        keys = [k for k in KEYS[:2] if not draw(rare)]
        keys += draw(st.lists(st.sampled_from(KEYS[2:]), unique=True))
        data = {}
        for key in keys:
            shape = shapes[key]
            if draw(rare):  # a random shape instead
                shape = tuple(draw(st.lists(st.integers(0, 3), max_size=4)))
            elif i and key.endswith("_data") and draw(rare):  # T differs across files
                shape = (shape[0], shape[1] + 1, shape[2])
            inject = draw(st.sampled_from(["nan", "neg", "frac"])) if draw(rare) else None
            data[key] = _random_array(rng, draw(st.sampled_from(DTYPES)), shape, inject)
        files.append(data)
    flags = dict(observation=observation.for_dist(draw(st.sampled_from(["poisson", "gaussian"]))),
                 ext_input_dim=draw(st.sampled_from([0, ext_dim])),
                 factors_dim=draw(st.sampled_from([None, f, f, f + 1])),
                 batch_size=draw(st.sampled_from([None, 1, 3, 6])),
                 kind=draw(st.sampled_from(["train", "posterior_sample_and_average"])))
    return files, flags


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(dataset_files())
def test_property_loads_or_raises_one_line_data_error(case):
    files, flags = case
    with tempfile.TemporaryDirectory() as folder:
        for i, data in enumerate(files):
            path = os.path.join(folder, "%s_s%d" % (STEM, i))
            if isinstance(data, bytes):
                with open(path, "wb") as f:
                    f.write(data)
            else:
                utils.write_data(path, data)
        try:
            datasets, notes = checks.load_datasets(folder, STEM, **flags)
        except DataError as e:
            msg = str(e)
            assert "\n" not in msg and "\r" not in msg and msg.count(": ") >= 2, msg
            return
        assert list(datasets) == sorted(datasets) and len(datasets) == len(files)
        for d in datasets.values():
            e, t, dd = d["train_data"].shape
            assert min(e, t, dd) > 0 and d["num_steps"] == t and d["data_dim"] == dd
            assert np.isfinite(d["train_data"]).all()
            if flags["observation"].counts:
                assert (d["train_data"] >= 0).all() and (d["valid_data"] >= 0).all()
        assert all(isinstance(n, str) and "\n" not in n for n in notes)


# ------------------------------------------------------------------------------------------
# Hyperparameter JSON


def test_hps_json_round_trip(tmp_path):
    hps = {"batch_size": 128, "learning_rate_init": 0.01, "do_causal_controller": False,
           "do_reset_learning_rate": True, "np_flag": np.bool_(True), "np_int": np.int64(3),
           "kind": "train", "dataset_names": ["a", "b"], "dataset_dims": {"a": 50, "b": 20},
           "nested": {"x": True}}
    fname = str(tmp_path / "hyperparameters-0.txt")
    utils.write_hps_json(fname, hps)
    assert os.listdir(tmp_path) == ["hyperparameters-0.txt"]
    raw = json.load(open(fname))
    assert raw["do_causal_controller"] == "false" and raw["do_reset_learning_rate"] == "true"
    back = utils.read_hps_json(fname)
    expected = dict(hps, np_flag=True, np_int=3)
    assert back == expected
    assert back["do_causal_controller"] is False and back["np_flag"] is True


def test_read_hps_json_errors(tmp_path):
    bad = tmp_path / "h.txt"
    bad.write_text("{'batch_size': 1}")  # a Python literal, not JSON: never eval'd
    with pytest.raises(DataError) as ei:
        utils.read_hps_json(str(bad))
    assert_one_line_error(ei, "h.txt", "not valid JSON")
    bad.write_text("[1, 2]")
    with pytest.raises(DataError):
        utils.read_hps_json(str(bad))
    with pytest.raises(DataError):
        utils.read_hps_json(str(tmp_path / "missing.txt"))
