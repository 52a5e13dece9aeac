"""The calcium-imaging generator on small sizes: keys and shapes, sparse non-negative
deconvolved traces that follow the true rates, reproducibility, missing entries, the
indicator recursion and the deconvolution against hand-written references."""
import inspect
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.optimize

from conftest import ROOT
from synth_data import generate_calcium_data as calcium_mod

# 4 conditions x 20 trials (16 train, 4 valid) of 10 neurons, 50 frames: about 0.1 s.
SMALL = dict(synth_data_seed=5, T=0.5, C=4, N=10, nreplications=20, train_percentage=0.8)
KEYS = {"train_data", "valid_data", "train_truth", "valid_truth", "train_spikes",
        "valid_spikes", "condition_labels_train", "condition_labels_valid", "train_inds",
        "valid_inds", "train_percentage", "nreplications", "dt", "conversion_factor",
        "tau_calcium", "calcium_decay", "noise_std", "burn_in", "deconv_l1", "deconv_s_min",
        "missing_fraction", "missing_neuron_fraction", "fluorescence_baseline",
        "spike_amplitude"}


def generate(**kwargs):
    return calcium_mod.generate_calcium_datasets(**dict(SMALL, **kwargs))["dataset_N10"]


@pytest.fixture(scope="module")
def full():
    return generate()


def test_keys_shapes_and_types(full):
    assert set(full) == KEYS
    for split, E in (("train", 64), ("valid", 16)):
        for key in ("_data", "_truth", "_spikes"):
            assert full[split + key].shape == (E, 50, 10), split + key
        assert full[split + "_data"].dtype == np.float32
        assert full[split + "_spikes"].dtype == np.int64
    # condition-major: each condition gives 16 training and 4 validation trials
    assert np.array_equal(np.bincount(full["condition_labels_train"]), [16] * 4)
    assert np.array_equal(full["condition_labels_valid"], full["valid_inds"] // 20)
    assert full["calcium_decay"] == pytest.approx(np.exp(-0.01 / 0.3))
    assert full["conversion_factor"] == 1.0
    assert full["deconv_s_min"] == pytest.approx(1.5 * 0.3)


def test_deconvolved_data_are_sparse_non_negative_and_above_s_min(full):
    x = full["train_data"]
    assert not np.isnan(x).any() and x.min() == 0.0
    zeros = np.mean(x == 0)
    # about as sparse as the spikes (max 0.3 spikes per bin), but not all zero
    assert 0.75 < zeros < 0.97, zeros
    assert abs(zeros - np.mean(full["train_spikes"] == 0)) < 0.05
    assert x[x > 0].min() >= full["deconv_s_min"]


def test_truth_is_the_poisson_rate_in_spikes_per_bin(full):
    truth, spikes = full["train_truth"], full["train_spikes"]
    assert truth.min() >= 0 and truth.max() == pytest.approx(0.3)  # 30 Hz * 10 ms
    assert abs(spikes.mean() - truth.mean()) < 0.05 * truth.mean()
    # trials of a condition share their rates (no inputs)
    same = truth[full["condition_labels_train"] == 1]
    np.testing.assert_array_equal(same, np.broadcast_to(same[0], same.shape))


def test_condition_averaged_data_follow_the_true_rates(full):
    labels, x, truth = (full["condition_labels_train"], full["train_data"],
                        full["train_truth"])
    psth = np.stack([x[labels == c].mean(axis=0) for c in range(4)])  # [C, T, N]
    true = np.stack([truth[labels == c][0] for c in range(4)])
    corr = np.array([np.corrcoef(psth[..., n].ravel(), true[..., n].ravel())[0, 1]
                     for n in range(10)])
    assert corr.mean() > 0.5 and corr.min() > 0.2, corr
    # and the deconvolution recovers most spikes in their frame: one spike is about 1
    assert np.corrcoef(x.ravel(), full["train_spikes"].ravel())[0, 1] > 0.7
    assert 0.7 < x.sum() / full["train_spikes"].sum() < 1.1


def test_same_seed_same_data_other_seed_other_data(full):
    again = generate()
    for key in KEYS:
        np.testing.assert_array_equal(again[key], full[key], err_msg=key)
    other = generate(synth_data_seed=6)
    assert not np.array_equal(other["train_data"], full["train_data"])


def test_missing_entries_are_nan_and_the_rest_equal_the_full_set(full):
    part = generate(missing_fraction=0.2)
    for split in ("train", "valid"):
        x, ref = part[split + "_data"], full[split + "_data"]
        missing = np.isnan(x)
        assert abs(missing.mean() - 0.2) < 0.02, missing.mean()
        np.testing.assert_array_equal(x[~missing], ref[~missing])
        for key in ("_truth", "_spikes"):
            np.testing.assert_array_equal(part[split + key], full[split + key])
    # masks are nested: the entries missing at 10 % are missing at 20 % too
    less = generate(missing_fraction=0.1)
    assert np.isnan(part["train_data"][np.isnan(less["train_data"])]).all()


def test_missing_neurons_blank_whole_trials_of_a_neuron(full):
    part = generate(missing_neuron_fraction=0.3)
    missing = np.isnan(part["train_data"])  # [E, T, N]
    whole = missing.all(axis=1)
    assert np.array_equal(missing.any(axis=1), whole)  # all frames or none
    assert abs(whole.mean() - 0.3) < 0.1, whole.mean()
    np.testing.assert_array_equal(part["train_data"][~missing], full["train_data"][~missing])
    with pytest.raises(ValueError, match="missing_fraction"):
        generate(missing_fraction=1.0)


def test_calcium_recursion_against_a_loop():
    gamma = 0.9
    # a single spike on an empty indicator decays by gamma per frame
    c = calcium_mod.calcium_trace(np.array([[0, 1, 0, 0, 0]]), gamma, np.zeros(1))
    np.testing.assert_allclose(c[0], [0, 1, gamma, gamma ** 2, gamma ** 3], rtol=1e-15)
    # random counts and initial calcium against c_t = gamma c_{t-1} + s_t written out
    rng = np.random.RandomState(0)
    spikes, c_init = rng.poisson(0.5, size=(3, 20)), rng.uniform(0, 5, size=3)
    got = calcium_mod.calcium_trace(spikes, gamma, c_init)
    for m in range(3):
        prev = c_init[m]
        for t in range(20):
            prev = gamma * prev + spikes[m, t]
            assert got[m, t] == pytest.approx(prev, rel=1e-12)


def test_noise_free_deconvolution_returns_the_spikes():
    gamma = calcium_mod.calcium_decay(0.3, 0.01)
    rng = np.random.RandomState(1)
    spikes = rng.poisson(0.2, size=(5, 60)).astype(float)
    spikes[:, 0] = 0.0  # frame 0 also takes the initial calcium; tested apart below
    c_init = rng.uniform(0, 3, size=5)
    s, c = calcium_mod.deconvolve_ar1(calcium_mod.calcium_trace(spikes, gamma, c_init),
                                      gamma)
    np.testing.assert_allclose(s[:, 1:], spikes[:, 1:], atol=1e-9)
    np.testing.assert_allclose(s[:, 0], gamma * c_init, rtol=1e-9)
    assert np.all(s[:, 1:][spikes[:, 1:] == 0] == 0)  # exact zeros, not rounding


@pytest.mark.parametrize("l1", [0.0, 0.5])
def test_deconvolution_equals_nnls_on_the_ar1_kernel(l1):
    """The same minimiser as scipy's NNLS of y - l1 * d on [kernel | gamma^(t+1)]."""
    gamma, T = 0.95, 40
    t = np.arange(T)
    kernel = np.where(t[:, None] >= t[None, :], gamma ** np.abs(t[:, None] - t[None, :]), 0)
    A = np.concatenate([kernel, gamma ** (t[:, None] + 1.0)], axis=1)
    d = np.full(T, 1.0 - gamma)
    d[-1] = 1.0
    rng = np.random.RandomState(2)
    c_true = calcium_mod.calcium_trace(rng.poisson(0.2, size=(20, T)), gamma,
                                       rng.uniform(0, 3, size=20))
    y = c_true + 0.4 * rng.randn(20, T) - rng.uniform(0, 2, size=(20, 1))
    s, c = calcium_mod.deconvolve_ar1(y, gamma, l1_penalty=l1)
    for m in range(20):
        coef, _ = scipy.optimize.nnls(A, y[m] - l1 * d, maxiter=10 * T)
        np.testing.assert_allclose(c[m], A.dot(coef), atol=1e-8)
    assert np.all(s >= 0) and np.mean(s == 0) > 0.5
    np.testing.assert_allclose(s[:, 1:], c[:, 1:] - gamma * c[:, :-1], atol=1e-12)


def test_flag_defaults_are_the_function_defaults():
    from absl import flags
    fv = calcium_mod._define_flags(flags.FlagValues())
    fv(["prog"])
    params = inspect.signature(calcium_mod.generate_calcium_datasets).parameters
    for name, param in params.items():
        assert getattr(fv, name) == param.default, name
    assert fv.datafile_name == "calcium_chaotic_rnn"


def test_command_writes_the_set_and_reports_its_sparsity(tmp_path):
    import utils
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    proc = subprocess.run([sys.executable, "-m", "synth_data.generate_calcium_data",
                           "--save_dir=%s" % tmp_path, "--datafile_name=calcium_small",
                           "--C=3", "--N=6", "--T=0.3", "--nreplications=5",
                           "--missing_fraction=0.2", "--save_fluorescence"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    path = os.path.join(str(tmp_path), "calcium_small_dataset_N6")
    assert "Wrote " + path in proc.stdout
    assert "of observed entries exactly zero" in proc.stdout
    data = utils.read_data(path)
    assert data["train_data"].shape == (12, 30, 6)
    assert data["valid_fluorescence"].shape == (3, 30, 6)
    assert data["missing_fraction"] == pytest.approx(0.2)
