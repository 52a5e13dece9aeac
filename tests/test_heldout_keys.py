"""The optional data keys of held-out neurons, forward bins and conditions:
`<split>_recon_data` (checked by checks.validate_datasets, so by every run_lfads load) and
`condition_labels_<split>` (checked for scoring only), with one-line errors naming file,
key and problem."""
import numpy as np
import pytest

from lfads_tf2 import errors
import utils
from lfads_tf2.data import checks
from lfads_tf2.model import observation

T, T_FP, N_IN, N_OUT = 6, 2, 3, 2


def _datasets(seed=0):
    rs = np.random.RandomState(seed)
    d = {utils.PATH_KEY: "/data/set0"}
    for split, E in (("train", 5), ("valid", 4)):
        recon = rs.poisson(1.0, size=(E, T + T_FP, N_IN + N_OUT))
        d[split + "_data"] = recon[:, :T, :N_IN].copy()
        d[split + "_recon_data"] = recon
        d["condition_labels_" + split] = np.arange(E) % 2
    return {"set0": d}


def _error(datasets, output_dist="poisson", labels=False):
    with pytest.raises(errors.DataError) as info:
        if labels:
            checks.validate_heldout_keys("/data/set0", datasets["set0"], observation.for_dist(output_dist),
                                        labels=True)
        else:
            checks.validate_datasets(datasets, observation.for_dist(output_dist))
    text = str(info.value)
    assert "\n" not in text
    return text


def test_valid_keys_pass_and_the_model_shapes_stay_those_of_the_data():
    datasets = _datasets()
    checks.validate_datasets(datasets, observation.for_dist("poisson"))
    assert datasets["set0"]["data_dim"] == N_IN and datasets["set0"]["num_steps"] == T


def test_recon_data_must_extend_the_data():
    ds = _datasets()
    ds["set0"]["valid_recon_data"][1, T - 1, N_IN - 1] += 1
    assert _error(ds) == ("/data/set0: valid_recon_data: its first %d bins and %d neurons "
                          "differ from valid_data (first at index (1, %d, %d)); held-in "
                          "neurons come first, forward bins last" % (T, N_IN, T - 1, N_IN - 1))
    ds = _datasets()
    ds["set0"]["train_recon_data"] = ds["set0"]["train_recon_data"][:, :T - 1]
    assert "train_recon_data: shape (5, %d, %d) is smaller than train_data" % (
        T - 1, N_IN + N_OUT) in _error(ds)
    ds = _datasets()
    ds["set0"]["train_recon_data"] = ds["set0"]["train_recon_data"][:4]
    assert "train_recon_data: has 4 trials but train_data has 5" in _error(ds)


def test_recon_data_are_counts_for_poisson():
    ds = _datasets()
    ds["set0"]["valid_recon_data"][0, T, 0] = -1  # a forward bin
    assert "valid_recon_data: negative counts" in _error(ds)
    ds = _datasets()
    ds["set0"]["valid_recon_data"] = ds["set0"]["valid_recon_data"].astype(np.float64)
    ds["set0"]["valid_recon_data"][2, T + 1, N_IN] += 0.5  # a held-out neuron, forward bin
    assert "valid_recon_data: non-integer counts" in _error(ds)
    checks.validate_datasets(ds, observation.for_dist("gaussian"))  # real values are fine for Gaussian data


def test_both_splits_have_recon_data_of_one_extent():
    ds = _datasets()
    del ds["set0"]["valid_recon_data"]
    assert _error(ds) == ("/data/set0: valid_recon_data: missing, but train_recon_data is "
                          "present (both splits need it)")
    ds = _datasets()
    ds["set0"]["valid_recon_data"] = ds["set0"]["valid_recon_data"][:, :, :N_IN + 1]
    assert "valid_recon_data: shape (4, %d, %d) does not match train_recon_data" % (
        T + T_FP, N_IN + 1) in _error(ds)


def test_condition_labels_have_one_label_per_trial():
    ds = _datasets()
    ds["set0"]["condition_labels_valid"] = np.arange(3)
    assert _error(ds, labels=True) == ("/data/set0: condition_labels_valid: expected shape "
                                       "(4,) = [trials of valid_data], got (3,)")
    checks.validate_datasets(ds, observation.for_dist("poisson"))  # training does not use them
    ds = _datasets()
    ds["set0"]["condition_labels_train"] = np.array([0.0, 1.0, np.nan, 0.0, 1.0])
    assert "condition_labels_train: NaN or inf" in _error(ds, labels=True)
    ds = _datasets()
    ds["set0"]["condition_labels_train"] = np.array([b"a", b"b", b"a", b"c", b"a"])
    checks.validate_heldout_keys("/data/set0", ds["set0"], observation.for_dist("poisson"), labels=True)
