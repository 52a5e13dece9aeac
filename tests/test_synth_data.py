"""Tests of the synthetic data generators, with check values of the original's."""
import os
import re
import shutil
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
import scipy.signal

from conftest import ROOT as REPO_ROOT, REFERENCE
from synth_data import generate_chaotic_rnn_data as chaotic_mod
from synth_data import generate_itb_data as itb_mod
from synth_data import generate_labeled_rnn_data as labeled_mod
from synth_data import synthetic_data_utils as su
from synth_data.itb_rnn import (DEFAULT_WEIGHTS_PATH, integration_quality, itb_target,
                                load_itb_weights, run_itb_rnn)

SCRIPT = os.path.join(REPO_ROOT, "synth_data", "run_generate_synth_data.sh")
# The shell script's settings shared by the three big single-session chaotic sets.
FULL = dict(synth_data_seed=5, T=1.0, C=400, N=50, S=50, train_percentage=0.8, nreplications=10,
            x0_std=1.0, tau=0.025, dt=0.01, max_firing_rate=30.0)
CHAOTIC_KEYS = {"train_truth", "valid_truth", "input_train_truth", "input_valid_truth",
                "train_data", "valid_data", "train_percentage", "nreplications", "dt",
                "input_magnitude", "input_times_train", "input_times_valid", "P_sxn",
                "condition_labels_train", "condition_labels_valid", "conversion_factor"}


@pytest.fixture(scope="module")
def g1p5():
    """Full-size chaotic_rnn_inputs_g1p5 (about 3 s)."""
    return chaotic_mod.generate_chaotic_rnn_datasets(g=1.5, input_magnitude=20.0,
                                                     **FULL)["dataset_N50_S50"]


@pytest.fixture(scope="module")
def no_inputs():
    """Full-size chaotic_rnn_no_inputs (about 3 s)."""
    return chaotic_mod.generate_chaotic_rnn_datasets(g=1.5, input_magnitude=0.0,
                                                     **FULL)["dataset_N50_S50"]


def small_chaotic(**kwargs):
    args = dict(FULL, C=6, input_magnitude=20.0, g=1.5)
    args.update(kwargs)
    return chaotic_mod.generate_chaotic_rnn_datasets(**args)


# ------------------------------------------------------------------ check values of the original

def test_seed5_first_weight():
    assert np.random.RandomState(5).randn() == 0.44122748688504143
    rnn = su.generate_rnn(np.random.RandomState(5), 50, 1.5, 0.025, 0.01, 30.0)
    assert rnn["W"][0, 0] == pytest.approx(0.062398989604462246, abs=1e-15)
    assert rnn["Bin"][0] == pytest.approx(1.1563209412016136, abs=1e-15)
    assert rnn["conversion_factor"] == pytest.approx(0.3)


def test_draw_order_first_initial_state():
    # x0 of condition 0 is the first draw after W, Bin and (unused) Bin2.
    rng = np.random.RandomState(5)
    su.generate_rnn(rng, 50, 1.5, 0.025, 0.01, 30.0)
    assert rng.randn(50, 1)[0, 0] == pytest.approx(-0.9672291172132207, abs=1e-15)


def test_full_size_g1p5_check_values(g1p5):
    d = g1p5
    assert set(d) == CHAOTIC_KEYS
    assert d["train_data"].shape == (3200, 100, 50)
    assert d["valid_data"].shape == (800, 100, 50)
    assert d["train_truth"].shape == (3200, 100, 50)
    assert d["input_train_truth"].shape == (3200, 100, 1)
    assert d["input_valid_truth"].shape == (800, 100, 1)
    assert np.issubdtype(d["train_data"].dtype, np.signedinteger)
    assert d["train_truth"].dtype == np.float64
    assert int(d["train_data"].sum()) == 2364419
    assert int(d["valid_data"].sum()) == 591096
    assert max(d["train_data"].max(), d["valid_data"].max()) == 6
    np.testing.assert_allclose(d["train_truth"][0, 0:3, 0], [0.01789744, 0.14597077, 0.23113657],
                               atol=5e-9)
    assert list(d["input_times_train"][:5]) == [55, 60, 55, 52, 26]
    assert d["input_times_train"].shape == (3200,)
    assert np.all((d["input_times_train"] >= 25) & (d["input_times_train"] < 75))
    # One pulse of height 20 per trial, at its input time.
    inputs = d["input_train_truth"][:, :, 0]
    assert np.all(np.count_nonzero(inputs, axis=1) == 1)
    assert np.array_equal(np.argmax(inputs, axis=1), d["input_times_train"])
    assert np.all(inputs.max(axis=1) == 20.0)


def test_full_size_trial0_matches_reference_loop(g1p5):
    # Re-derive train trial 0 from scratch with the per-trial reference loop.
    rng = np.random.RandomState(5)
    rnn = su.generate_rnn(rng, 50, 1.5, 0.025, 0.01, 30.0)
    x0 = rng.randn(50, 1)[:, 0]
    r_nxt, u_1xt = su.integrate_rnn_loop(rnn, x0, 100, 20.0, 55)
    truth_txn = su.normalize_rates(r_nxt[None])[0].T
    assert np.array_equal(truth_txn, g1p5["train_truth"][0])
    assert np.array_equal(u_1xt.T, g1p5["input_train_truth"][0])


def test_full_size_no_inputs_check_values(no_inputs):
    d = no_inputs
    assert set(d) == CHAOTIC_KEYS
    assert int(d["train_data"].sum()) == 2398456
    assert int(d["valid_data"].sum()) == 600211
    assert max(d["train_data"].max(), d["valid_data"].max()) == 6
    np.testing.assert_allclose(d["train_truth"][0, 0:3, 0], [0.0, 0.16259208, 0.27071205],
                               atol=5e-9)
    assert d["input_times_train"].size == 0 and d["input_times_valid"].size == 0
    assert not np.any(d["input_train_truth"]) and not np.any(d["input_valid_truth"])
    assert d["input_magnitude"] == 0.0


def test_scalars_and_projection(no_inputs):
    d = no_inputs
    assert d["train_percentage"] == 0.8 and d["nreplications"] == 10 and d["dt"] == 0.01
    assert np.array_equal(d["P_sxn"], np.eye(50))
    assert d["conversion_factor"] == pytest.approx(1.0 / 0.3)  # 1 / (mfr * dt)


def test_truth_is_min_max_normalised_per_trial_and_channel(g1p5):
    for truth in (g1p5["train_truth"], g1p5["valid_truth"]):
        assert np.all(truth.min(axis=1) == 0.0)
        assert np.allclose(truth.max(axis=1), 1.0, atol=1e-15, rtol=0)


def test_matches_original_g2p5_subset():
    """The reference pack holds the first 40/24 trials of the original's own g2p5 file."""
    ref_path = os.path.join(REFERENCE, "data", "chaotic_rnn_inputs_g2p5_dataset_N50_S50")
    # Full size: the input-time draw covers all E trials, so C changes every later draw.
    d = chaotic_mod.generate_chaotic_rnn_datasets(g=2.5, input_magnitude=20.0,
                                                  **FULL)["dataset_N50_S50"]
    with h5py.File(ref_path, "r") as hf:
        for split in ("train", "valid"):
            n = hf[split + "_data"].shape[0]
            assert np.array_equal(d[split + "_data"][:n], hf[split + "_data"][()])
            # The reference stores float32.
            np.testing.assert_allclose(d[split + "_truth"][:n], hf[split + "_truth"][()],
                                       atol=1e-7)
            assert np.array_equal(d["input_times_" + split][:n], hf["input_times_" + split][()])
            assert np.array_equal(d["condition_labels_" + split][:n],
                                  hf["condition_labels_" + split][()])


# ------------------------------------------------------------------------------ building blocks

@pytest.mark.parametrize("E,frac,nrep", [(40, 0.8, 10), (200, 0.8, 40), (25, 0.8, 5),
                                         (12, 0.5, 4)])
def test_split_rule(E, frac, nrep):
    train, valid = su.get_train_n_valid_inds(E, frac, nrep)
    expected_valid = [i for i in range(E) if (i % nrep) + 1 > frac * nrep]
    assert list(valid) == expected_valid
    assert sorted(list(train) + list(valid)) == list(range(E))
    # Every condition gives its last replications to validation.
    assert len(valid) == E // nrep * int(round(nrep * (1 - frac)))


def test_split_in_generated_data():
    d = small_chaotic(input_magnitude=0.0)["dataset_N50_S50"]
    assert list(d["condition_labels_train"]) == [c for c in range(6) for _ in range(8)]
    assert list(d["condition_labels_valid"]) == [c for c in range(6) for _ in range(2)]
    # Without inputs the replications of a condition share their rates; only the spikes differ.
    for c in range(6):
        train_c = d["train_truth"][d["condition_labels_train"] == c]
        valid_c = d["valid_truth"][d["condition_labels_valid"] == c]
        assert all(np.array_equal(train_c[0], x) for x in list(train_c) + list(valid_c))
    assert not np.array_equal(d["train_data"][0], d["train_data"][1])


def test_vectorised_integration_equals_loop():
    for g, N in ((1.5, 50), (2.5, 50), (1.5, 30)):
        rng = np.random.RandomState(1)
        rnn = su.generate_rnn(rng, N, g, 0.025, 0.01, 30.0)
        x0s = rng.randn(N, 12)
        times = rng.choice(50, size=12) + 25
        r_exnxt, u_ex1xt = su.integrate_rnn(rnn, x0s, 100, 20.0, times)
        for e in range(12):
            r_nxt, u_1xt = su.integrate_rnn_loop(rnn, x0s[:, e], 100, 20.0, times[e])
            # Bit-identical, not just close: the networks are chaotic.
            assert np.array_equal(r_nxt, r_exnxt[e])
            assert np.array_equal(u_1xt, u_ex1xt[e])


def test_spikify_draw_order_is_trial_channel_time():
    rates = np.random.RandomState(0).rand(7, 4, 100)
    spikes = su.spikify_data(rates, np.random.RandomState(3), 0.01, 30.0)
    rng = np.random.RandomState(3)
    for e in range(7):
        for n in range(4):
            assert np.array_equal(spikes[e, n], rng.poisson(rates[e, n] * 30.0 * 0.01, size=100))
    assert spikes.dtype == np.int64


def test_gaussian_noise_is_seeded():
    a = small_chaotic(noise_type="gaussian", input_magnitude=0.0)["dataset_N50_S50"]
    b = small_chaotic(noise_type="gaussian", input_magnitude=0.0)["dataset_N50_S50"]
    assert a["train_data"].dtype == np.float64
    assert np.array_equal(a["train_data"], b["train_data"])
    resid = a["train_data"] - 30.0 * a["train_truth"]
    assert np.std(resid) == pytest.approx(15.0, rel=0.05)  # 5 * mfr * sqrt(dt)


def test_flags_defaults_and_old_replication_name():
    from absl import flags
    for mod, expected in ((chaotic_mod, dict(datafile_name="thits_data", C=100, N=50, S=50,
                                              npcs=10, nreplications=40, g=1.5,
                                              input_magnitude=20.0, noise_type="poisson")),
                          (itb_mod, dict(datafile_name="itb_rnn", C=800, N=50, nreplications=5,
                                         u_std=0.25, checkpoint_path="SAMPLE_CHECKPOINT")),
                          (labeled_mod, dict(datafile_name="conditioned_rnn_data", C=400, N=50,
                                             nreplications=10, g=1.5))):
        fv = mod._define_flags(flags.FlagValues())
        fv(["prog"])
        common = dict(save_dir="/tmp/rnn_synth_data_v1.0/", synth_data_seed=5, T=1.0,
                      train_percentage=0.8, dt=0.01, max_firing_rate=30.0, tau=0.025)
        for name, value in dict(common, **expected).items():
            assert getattr(fv, name) == value, (mod.__name__, name)
        fv = mod._define_flags(flags.FlagValues())
        fv(["prog", "--nspikifications=7"])
        assert fv.nreplications == 7


# ------------------------------------------------------------------------------- multi-session

def test_multisession_alignment_maps_psths_onto_shared_pcs():
    npcs = 10
    datasets = chaotic_mod.generate_chaotic_rnn_datasets(
            **dict(FULL, C=12, N=100, S=20, nreplications=10, input_magnitude=0.0, g=1.5,
                   npcs=npcs))
    names = ["dataset_N100_S20_n%d" % i for i in range(1, 6)]
    assert sorted(datasets) == names
    # Independent re-derivation of the shared PCs of the smoothed PSTHs.
    T = 100
    X = np.zeros([100, T * 12])
    for n, name in enumerate(names):
        d = datasets[name]
        assert d["alignment_matrix_cxf"].shape == (20, npcs)
        assert d["alignment_bias_c"].shape == (20,)
        assert np.array_equal(d["P_sxn"], np.roll(np.eye(20, 100), 20 * n, axis=1))
        for c in range(12):
            avg = d["train_data"][d["condition_labels_train"] == c].mean(axis=0)
            X[20 * n:20 * (n + 1), c * T:(c + 1) * T] = avg.T
    X = scipy.signal.filtfilt(np.ones(6) / 6.0, [1.0], X, axis=1)
    means = X.mean(axis=1)
    Xc = X - means[:, None]
    U = np.linalg.svd(Xc, full_matrices=False)[0]
    pcs_txp = Xc.T.dot(U[:, :npcs])

    def fit_error(W):
        """Relative error of Xc_ds^T W vs the PCs, each PC up to its (arbitrary) sign."""
        approx = Xc[rows].T.dot(W)
        err = np.minimum(np.linalg.norm(approx - pcs_txp, axis=0),
                         np.linalg.norm(approx + pcs_txp, axis=0))
        return np.linalg.norm(err) / np.linalg.norm(pcs_txp)

    rand = np.random.RandomState(0)
    for n, name in enumerate(names):
        d = datasets[name]
        rows = slice(20 * n, 20 * (n + 1))
        np.testing.assert_allclose(d["alignment_bias_c"], means[rows], atol=1e-10)
        W = d["alignment_matrix_cxf"]
        W_rand = rand.randn(20, npcs) * np.linalg.norm(W) / np.sqrt(20 * npcs)
        assert fit_error(W) < 0.5
        assert fit_error(W) < 0.5 * fit_error(W_rand)


def test_multisession_shared_integration_equals_per_session():
    datasets = chaotic_mod.generate_chaotic_rnn_datasets(
            **dict(FULL, C=3, N=60, S=20, nreplications=10, input_magnitude=0.0, g=1.5))
    rnn = su.generate_rnn(np.random.RandomState(5), 60, 1.5, 0.025, 0.01, 30.0)
    rng = np.random.RandomState(5)
    su.generate_rnn(rng, 60, 1.5, 0.025, 0.01, 30.0)
    x0s = np.concatenate([np.tile(rng.randn(60, 1), 10) for _ in range(3)], axis=1)
    train, _ = su.get_train_n_valid_inds(30, 0.8, 10)
    for n in range(3):
        P = np.roll(np.eye(20, 60), 20 * n, axis=1)
        rates, _, _ = su.generate_data(rnn, 1.0, 30, x0s, P)
        truth = datasets["dataset_N60_S20_n%d" % (n + 1)]["train_truth"]
        assert np.array_equal(su.nparray_and_transpose(rates[train]), truth)


# -------------------------------------------------------------------------------------- labeled

def test_labeled_ext_input_is_label_and_rates_follow_it():
    C, N, nrep = 4, 50, 10
    d = labeled_mod.generate_labeled_rnn_datasets(C=C, nreplications=nrep)["dataset_N50"]
    assert set(d) == {"train_truth", "valid_truth", "train_data", "valid_data",
                      "train_ext_input", "valid_ext_input", "train_percentage", "nreplications",
                      "dt", "P_sxn", "condition_labels_train", "condition_labels_valid",
                      "conversion_factor"}
    assert d["conversion_factor"] == pytest.approx(1.0 / 0.3)
    assert d["train_ext_input"].shape == (32, 100, 1)
    assert np.issubdtype(d["train_ext_input"].dtype, np.integer)
    assert np.issubdtype(d["train_data"].dtype, np.signedinteger)

    # Independent re-derivation of the original generate_labeled_rnn_data.py's draw order.
    E = C * nrep
    rng = np.random.RandomState(5)
    label = rng.randint(2, size=E)
    x0s = np.concatenate([np.tile(rng.randn(N, 1), nrep) for _ in range(C)], axis=1)
    P = rng.randn(N, N) / np.sqrt(N)
    rnns = [su.generate_rnn(np.random.RandomState(s), N, 1.5, 0.025, 0.01, 30.0) for s in (6, 7)]
    rates = [su.generate_data(rnn, 1.0, E, x0s, P)[0] for rnn in rnns]
    spikes = [su.spikify_data(r, rng, 0.01, 30.0) for r in rates]
    train, valid = su.get_train_n_valid_inds(E, 0.8, nrep)
    assert np.array_equal(d["P_sxn"], P)
    for split, inds in (("train", train), ("valid", valid)):
        ext = d[split + "_ext_input"][:, :, 0]
        assert np.array_equal(ext, np.repeat(label[inds][:, None], 100, axis=1))
        for k, e in enumerate(inds):
            which = label[e]
            assert np.array_equal(d[split + "_truth"][k], rates[which][e].T)
            assert np.array_equal(d[split + "_data"][k], spikes[which][e].T)
    assert 0 < label.sum() < E  # both networks are used


# ------------------------------------------------------------------------------------------ ITB

def test_shipped_itb_network_integrates_to_bound():
    weights = load_itb_weights("SAMPLE_CHECKPOINT")
    assert weights["Wh"].shape == (50, 50) and weights["b"].shape == (1, 50)
    assert weights["Bu"].shape == (1, 50) and weights["Wro"].shape == (50, 1)
    assert weights["bro"].shape == (1,)
    mse, r2 = integration_quality(weights, nseqs=1000, T=100, u_std=0.25, seed=123)
    assert r2 > 0.9
    assert mse < 0.05


def test_itb_weights_paths(tmp_path):
    default = load_itb_weights("SAMPLE_CHECKPOINT")
    for path in (DEFAULT_WEIGHTS_PATH, DEFAULT_WEIGHTS_PATH[:-len(".npz")]):
        w = load_itb_weights(path)
        assert all(np.array_equal(w[k], default[k]) for k in default)
    with pytest.raises(FileNotFoundError):
        load_itb_weights(str(tmp_path / "missing.npz"))


def test_itb_generator():
    C, nrep = 6, 5
    d = itb_mod.generate_itb_datasets(C=C, nreplications=nrep)["dataset_N50"]
    assert set(d) == {"train_truth", "valid_truth", "train_data", "valid_data",
                      "train_percentage", "nreplications", "dt", "u_std", "max_firing_rate",
                      "train_inputs_u", "valid_inputs_u", "train_outputs_u", "valid_outputs_u",
                      "conversion_factor"}
    assert d["train_truth"].shape == (24, 100, 50) and d["valid_truth"].shape == (6, 100, 50)
    assert d["train_data"].shape == (24, 100, 50)
    assert np.issubdtype(d["train_data"].dtype, np.signedinteger)
    assert d["train_inputs_u"].shape == (24, 100, 1)
    assert d["train_outputs_u"].shape == (24, 100)
    assert d["conversion_factor"] == pytest.approx(0.3)  # mfr * dt: the others' reciprocal
    assert d["u_std"] == 0.25 and d["max_firing_rate"] == 30.0
    # Inputs: one sequence per condition from RandomState(seed + 1), shared by its replications.
    u_cxt = np.random.RandomState(6).randn(C, 100) * 0.25
    assert np.array_equal(d["train_inputs_u"][:, :, 0], np.repeat(u_cxt, 4, axis=0))
    assert np.array_equal(d["valid_inputs_u"][:, :, 0], u_cxt)
    # Outputs are the network's; truth is P h, normalised per trial and channel.
    weights = load_itb_weights()
    h_cxtxn, z_cxt = run_itb_rnn(weights, u_cxt)
    assert np.array_equal(d["valid_outputs_u"], z_cxt)
    P = np.random.RandomState(5).randn(50, 50) / np.sqrt(50)
    truth = su.normalize_rates(np.matmul(P, np.transpose(h_cxtxn, (0, 2, 1))))
    np.testing.assert_allclose(d["valid_truth"], np.transpose(truth, (0, 2, 1)), atol=1e-12)
    assert np.all(d["train_truth"].min(axis=1) == 0.0)
    # The outputs integrate the inputs to bound.
    target = itb_target(u_cxt)
    assert 1 - np.mean((z_cxt - target) ** 2) / np.var(target) > 0.9


# --------------------------------------------------------------------------------- shell script

EXPECTED_FILES = (["chaotic_rnn_no_inputs_dataset_N50_S50",
                   "gaussian_chaotic_rnn_no_inputs_dataset_N50_S50",
                   "chaotic_rnn_inputs_g1p5_dataset_N50_S50",
                   "chaotic_rnn_inputs_g2p5_dataset_N50_S50"]
                  + ["chaotic_rnn_multisession_dataset_N100_S20_n%d" % i for i in range(1, 6)]
                  + ["itb_rnn_dataset_N50", "chaotic_rnns_labeled_dataset_N50"]
                  + ["chaotic_rnn_nlb_%dtrain_dataset_N70_heldin50" % n for n in (2000, 200)]
                  + ["calcium_chaotic_rnn_dataset_N50",
                     "calcium_missing20_chaotic_rnn_dataset_N50"])


def test_script_stems_are_not_prefixes_of_other_sets():
    with open(SCRIPT) as f:
        text = f.read()
    assert os.access(SCRIPT, os.X_OK)
    assert "--nspikifications" not in text
    stems = re.findall(r"--datafile_name=(\w+)", text)
    assert sorted(stems) == sorted(["chaotic_rnn_no_inputs", "gaussian_chaotic_rnn_no_inputs",
                                    "chaotic_rnn_inputs_g1p5", "chaotic_rnn_inputs_g2p5",
                                    "chaotic_rnn_multisession", "itb_rnn",
                                    "chaotic_rnns_labeled", "chaotic_rnn_nlb_2000train",
                                    "chaotic_rnn_nlb_200train", "calcium_chaotic_rnn",
                                    "calcium_missing20_chaotic_rnn"])
    for stem in stems:
        for fname in EXPECTED_FILES:
            if not fname.startswith(stem + "_dataset_"):
                assert not fname.startswith(stem), (stem, fname)


def _env(**extra):
    """The shell script's environment: this Python, and this checkout's synth_data first
    (the environment may hold an installed copy of another checkout)."""
    return dict(os.environ, PYTHON=sys.executable, PYTHONPATH=os.pathsep.join(
        [REPO_ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]), **extra)


@pytest.mark.slow  # writes 3.5 GB: too much for every CI run; run with -m slow
def test_script_end_to_end(tmp_path):
    """Runs all eleven generator calls (writes about 3.7 GB, removed afterwards)."""
    out_dir = tmp_path / "synth"
    start = time.time()
    try:
        proc = subprocess.run(["bash", SCRIPT, str(out_dir)], cwd=str(tmp_path), env=_env(),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert time.time() - start < 120
        assert sorted(os.listdir(out_dir)) == sorted(EXPECTED_FILES)
        for fname in EXPECTED_FILES:
            assert os.path.join(str(out_dir), fname) in proc.stdout
        with h5py.File(out_dir / "chaotic_rnn_inputs_g1p5_dataset_N50_S50", "r") as hf:
            assert int(hf["train_data"][()].sum()) == 2364419
            assert int(hf["valid_data"][()].sum()) == 591096
            assert hf["train_data"].compression is None
        with h5py.File(out_dir / "chaotic_rnn_multisession_dataset_N100_S20_n3", "r") as hf:
            assert hf["train_data"].shape == (4800, 100, 20)
            assert hf["alignment_matrix_cxf"].shape == (20, 10)
        with h5py.File(out_dir / "itb_rnn_dataset_N50", "r") as hf:
            assert hf["conversion_factor"][()] == pytest.approx(0.3)
        for n in (2000, 200):
            with h5py.File(out_dir / ("chaotic_rnn_nlb_%dtrain_dataset_N70_heldin50" % n),
                           "r") as hf:
                assert hf["train_data"].shape == (n, 100, 50)
                assert hf["train_recon_data"].shape == (n, 120, 70)
                assert hf["valid_recon_data"].shape == (500, 120, 70)
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)
