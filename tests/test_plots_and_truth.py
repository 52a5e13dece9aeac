"""Tests of plot_lfads.py, lfads_tf2/score/rate_r2.py, scripts/plot_lfads_outputs.py and
scripts/compare_to_truth.py (the scripts run as users run them, in a process of their own)."""
import concurrent.futures
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from conftest import ROOT as REPO

from lfads_tf2.evaluate import figures
from lfads_tf2.score import rate_r2

CF_CHAOTIC = 1.0 / (30.0 * 0.01)   # 3.33: truth ~ rates * cf
CF_ITB = 30.0 * 0.01               # 0.3:  truth ~ rates / cf


def _truth_etd(rng, e=6, t=40, d=12):
    """Smooth rates in [0, 1], like the synthetic generators' normalised truth."""
    x = figures.smooth_time(rng.standard_normal((e, t, d)), 3.0, axis=1)
    lo, hi = x.min(axis=1, keepdims=True), x.max(axis=1, keepdims=True)
    return (x - lo) / (hi - lo)


def _example(rng, t=40, d=12, f=4, gaussian=False, truth=True, inputs=True, label="ex"):
    truth_txd = _truth_etd(rng, 1, t, d)[0]
    rates = truth_txd / CF_CHAOTIC
    ex = {"label": label, "data_txd": rng.poisson(rates), "rates_txd": rates,
          "factors_txf": rng.standard_normal((t, f)).cumsum(0),
          "truth_txd": truth_txd if truth else None}
    if gaussian:
        ex["data_txd"] = 30 * truth_txd + 5 * rng.standard_normal((t, d))
        ex["rates_txd"] = 30 * truth_txd
        ex["vars_txd"] = np.full((t, d), 4.0)
    if inputs:
        ex["controller_outputs_txu"] = rng.standard_normal((t, 2)) * 0.1
        ex["ext_input_txi"] = (np.arange(t)[:, None] > t // 2).astype(np.int64)
        ex["input_truth_txi"] = np.zeros((t, 1))
        ex["input_truth_txi"][t // 3] = 20.0
    return ex


def _check_rgb(fig):
    rgb = figures.figure_to_rgb_array(fig)
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert rgb.shape[0] > 200 and rgb.shape[1] > 200
    # Real content: many distinct colours, not a blank canvas.
    assert len(np.unique(rgb.reshape(-1, 3), axis=0)) > 20
    assert rgb.std() > 10
    return rgb


# ---------------------------------------------------------------- figures

def test_plot_examples_poisson_two_columns():
    rng = np.random.default_rng(0)
    exs = [_example(rng, label="train trial 1"), _example(rng, label="valid trial 2")]
    fig = figures.plot_examples(exs, conversion_factor=CF_CHAOTIC, title="t")
    titles = [ax.get_title() for ax in fig.axes]
    assert any(t.startswith("train trial 1") for t in titles)
    assert any(t.startswith("valid trial 2") for t in titles)
    assert fig.legends, "the colour legend is missing"
    legend_text = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "inferred (LFADS)" in legend_text and "true rate" in legend_text
    _check_rgb(fig)


def test_plot_examples_gaussian_and_minimal():
    rng = np.random.default_rng(1)
    fig = figures.plot_examples([_example(rng, gaussian=True)], output_dist="gaussian",
                                   conversion_factor=1 / 30.0)
    legend_text = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "inferred ±1 s.d." in legend_text
    _check_rgb(fig)
    # No truth and no inputs: the inputs row is omitted, spikes are smoothed instead.
    fig = figures.plot_examples([_example(rng, truth=False, inputs=False)] * 2)
    main_axes = [ax for ax in fig.axes if ax.get_subplotspec() is not None]
    assert len(main_axes) == 3 * 2
    legend_text = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any(t.startswith("smoothed spikes") for t in legend_text)
    _check_rgb(fig)


def test_plot_examples_survives_nan_rates():
    # A diverged model must not crash the training loop's plot.
    ex = _example(np.random.default_rng(7), inputs=False)
    ex["rates_txd"] = np.full_like(ex["rates_txd"], np.nan)
    ex["factors_txf"] = np.full_like(ex["factors_txf"], np.inf)
    rgb = figures.figure_to_rgb_array(figures.plot_examples([ex]))
    assert rgb.dtype == np.uint8


def test_save_figure_atomic(tmp_path):
    rng = np.random.default_rng(2)
    fig = figures.plot_examples([_example(rng)])
    path = str(tmp_path / "sub" / "fig.png")
    assert figures.save_figure(fig, path) == path
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path / "sub") == ["fig.png"]   # no temp file left behind


def test_smooth_time_matches_reference():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 15, 3))
    sd = 2.0
    ref = np.empty_like(x)
    for s in range(15):
        w = np.exp(-0.5 * ((np.arange(15) - s) / sd) ** 2)
        ref[:, s, :] = np.tensordot(w / w.sum(), x, axes=([0], [1]))
    np.testing.assert_allclose(figures.smooth_time(x, sd, axis=1), ref, atol=1e-12)
    np.testing.assert_allclose(figures.smooth_time(np.ones((15, 2)), sd), 1.0)
    np.testing.assert_array_equal(figures.smooth_time(x, 0, axis=1), x)


# ---------------------------------------------------------------- conversion conventions

def test_truth_scale_conventions():
    ts = figures.truth_scale
    assert ts(None) == (1.0, "none")
    # chaotic / labeled: cf = 1/(mfr*dt), no max_firing_rate key.
    assert ts(CF_CHAOTIC, None, 0.01) == (pytest.approx(CF_CHAOTIC), "multiply")
    # ITB: cf = mfr*dt with both keys stored.
    s, c = ts(CF_ITB, 30.0, 0.01)
    assert c == "divide" and s == pytest.approx(1 / 0.3)
    # Both keys stored but cf follows the chaotic convention: still multiply.
    assert ts(CF_CHAOTIC, 30.0, 0.01) == (pytest.approx(CF_CHAOTIC), "multiply")
    # Gaussian data are mfr*truth + noise.
    assert ts(CF_CHAOTIC, None, 0.01, "gaussian") == (pytest.approx(1 / 30.0), "gaussian")
    assert ts(CF_ITB, 30.0, 0.01, "gaussian") == (pytest.approx(1 / 30.0), "gaussian")


# ---------------------------------------------------------------- R²

def _r2_reference(pred, truth):
    """Straightforward NumPy loops: pooled and per-neuron R² after per-neuron demeaning."""
    d = truth.shape[2]
    res = tot = 0.0
    per = []
    for j in range(d):
        p = pred[:, :, j] - pred[:, :, j].mean()
        t = truth[:, :, j] - truth[:, :, j].mean()
        res += ((p - t) ** 2).sum()
        tot += (t ** 2).sum()
        per.append(1 - ((p - t) ** 2).sum() / (t ** 2).sum())
    return 1 - res / tot, np.mean(per)


def test_r2_perfect_scaled_and_noisy():
    rng = np.random.default_rng(4)
    truth = _truth_etd(rng)
    # Perfect predictions in each convention give exactly 1.
    r = rate_r2.r2_against_truth(truth / CF_CHAOTIC, truth, CF_CHAOTIC, None, 0.01)
    assert r["convention"] == "multiply"
    assert r["r2_pooled"] == pytest.approx(1.0) and r["r2_mean_per_neuron"] == pytest.approx(1.0)
    r = rate_r2.r2_against_truth(truth * CF_ITB, truth, CF_ITB, 30.0, 0.01)
    assert r["convention"] == "divide"
    assert r["r2_pooled"] == pytest.approx(1.0) and r["r2_mean_per_neuron"] == pytest.approx(1.0)
    # Applying the wrong convention to ITB-scaled rates is visibly wrong.
    assert rate_r2.r2_against_truth(truth * CF_ITB, truth, CF_ITB)["r2_pooled"] < 0.5
    # A per-neuron offset is removed before scoring.
    shifted = truth / CF_CHAOTIC + np.arange(truth.shape[2])
    assert rate_r2.r2_against_truth(shifted, truth, CF_CHAOTIC)["r2_pooled"] == pytest.approx(1.0)
    # Noise lowers R², and both numbers match the NumPy reference.
    prev = 1.0
    for sd in (0.05, 0.2):
        pred = truth + sd * rng.standard_normal(truth.shape)
        r = rate_r2.r2_against_truth(pred / CF_CHAOTIC, truth, CF_CHAOTIC)
        ref_pooled, ref_mean = _r2_reference(pred, truth)
        assert r["r2_pooled"] == pytest.approx(ref_pooled, abs=1e-10)
        assert r["r2_mean_per_neuron"] == pytest.approx(ref_mean, abs=1e-10)
        assert r["r2_pooled"] < prev
        prev = r["r2_pooled"]


def test_r2_constant_neuron_and_smoothing_baseline():
    rng = np.random.default_rng(5)
    truth = _truth_etd(rng, e=20, t=60, d=8)
    truth[:, :, 0] = 0.5                     # a constant neuron has no defined R²
    r = rate_r2.r2_scores(truth, truth)
    assert np.isnan(r["r2_per_neuron"][0]) and r["r2_mean_per_neuron"] == pytest.approx(1.0)
    spikes = rng.poisson(truth / CF_CHAOTIC * 10)   # a high rate, so smoothing does well
    base = rate_r2.smoothed_spikes_r2(spikes, truth, 2.0, scale=CF_CHAOTIC / 10)
    assert 0.2 < base["r2_pooled"] < 1.0
    assert rate_r2.r2_against_truth(truth, truth, scale=1.0)["r2_pooled"] > base["r2_pooled"]


# ---------------------------------------------------------------- CLIs

def _write_h5(path, arrays):
    with h5py.File(path, "w") as hf:
        for k, v in arrays.items():
            hf.create_dataset(k, data=v)


def _fake_files(tmp_path, gaussian=False, itb=False, e_out=5, e_data=5):
    """A data file and a posterior_sample_and_average file with the keys run_lfads writes."""
    rng = np.random.default_rng(6)
    t, d, f, u, g, z = 30, 6, 3, 1, 8, 4
    # Trials beyond e_data exist only in the output (the mismatched-count error case).
    truth = _truth_etd(rng, max(e_out, e_data), t, d)
    cf = CF_ITB if itb else CF_CHAOTIC
    rates = truth * cf if itb else truth / cf
    data = {"valid_data": rng.poisson(rates[:e_data]).astype(np.int32),
            "valid_truth": truth[:e_data],
            "conversion_factor": cf, "dt": 0.01,
            "valid_ext_input": np.ones((e_data, t, 1), dtype=np.int64)}
    if itb:
        data["max_firing_rate"] = 30.0
    if gaussian:
        data["valid_data"] = 30 * truth[:e_data] + rng.standard_normal(truth[:e_data].shape)
    params = rates[:e_out] + 0.01 * rng.standard_normal((e_out, t, d))
    if gaussian:
        params = np.concatenate([30 * truth[:e_out], np.full((e_out, t, d), 2.0)], axis=2)
    out = {"prior_g0_mean": np.zeros((e_out, z)), "prior_g0_logvar": np.zeros((e_out, z)),
           "post_g0_mean": np.zeros((e_out, z)), "post_g0_logvar": np.zeros((e_out, z)),
           "gen_ics": np.zeros((e_out, g)), "controller_outputs": rng.random((e_out, t, u)),
           "gen_states": rng.random((e_out, t, g)), "factors": rng.random((e_out, t, f)),
           "output_dist_params": params, "costs": np.zeros(e_out),
           "nll_bound_vaes": np.zeros(e_out), "nll_bound_iwaes": np.zeros(e_out),
           "train_steps": np.zeros(e_out)}
    data_path = str(tmp_path / "synth_dataset_N6")
    out_path = str(tmp_path / "model_runs_dataset_N6_valid_posterior_sample_and_average")
    _write_h5(data_path, data)
    _write_h5(out_path, out)
    return out_path, data_path


def _run_script(name, *args):
    """`python scripts/<name> args` from another folder, importing this checkout's modules
    (the environment may hold an installed copy of another checkout)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [REPO] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return subprocess.run([sys.executable, os.path.join(REPO, "scripts", name)] + list(args),
                          cwd=os.path.dirname(REPO), env=env, capture_output=True, text=True,
                          timeout=120)


def _run_scripts(name, argvs):
    """_run_script for each argv, two at a time."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(lambda argv: _run_script(name, *argv), argvs))


def _one_line_error(proc):
    """The error line of a script that failed as it should: status 2, one line, no traceback."""
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error:"), proc.stderr
    return proc.stderr


def test_plot_script_writes_pngs(tmp_path):
    out_path, data_path = _fake_files(tmp_path)
    out_dir = tmp_path / "figs"
    proc = _run_script("plot_lfads_outputs.py", "--output_file=" + out_path,
                       "--data_file=" + data_path, "--split=valid", "--trials=0,3",
                       "--out_dir=" + str(out_dir))
    assert proc.returncode == 0, proc.stderr
    paths = proc.stdout.split()
    assert len(paths) == 2 and all(p.endswith(".png") for p in paths)
    for p in paths:
        assert os.path.getsize(p) > 1000


def test_plot_script_gaussian_inferred(tmp_path):
    out_path, data_path = _fake_files(tmp_path, gaussian=True)
    # No --split: taken from the canonical file name. No --output_dist: width 2D.
    proc = _run_script("plot_lfads_outputs.py", "--output_file=" + out_path,
                       "--data_file=" + data_path, "--trials=1",
                       "--out_dir=" + str(tmp_path / "g"))
    assert proc.returncode == 0, proc.stderr
    (path,) = proc.stdout.split()
    assert os.path.exists(path)


def test_plot_script_errors(tmp_path):
    """Each bad input: one line on stderr, status 2, no traceback."""
    out_path, data_path = _fake_files(tmp_path)
    no_factors = tmp_path / "nf"
    no_factors.mkdir()
    out_nf, data_nf = _fake_files(no_factors)
    with h5py.File(out_nf, "a") as hf:
        del hf["factors"]
    # More output trials than data trials (wrong split or data file).
    sub = tmp_path / "x"
    sub.mkdir()
    out2, data2 = _fake_files(sub, e_out=5, e_data=3)
    base = ["--output_file=" + out_path, "--data_file=" + data_path, "--out_dir=" + str(tmp_path)]
    cases = [
        (["--output_file=" + out_path, "--data_file=" + str(tmp_path / "missing"),
          "--out_dir=" + str(tmp_path)], "data file not found"),
        (base + ["--trials=9"], "trial 9 out of range"),
        (base + ["--split=train"], "--split=train"),
        (base + ["--output_dist=gaussian"], "gaussian"),
        (base + ["--trials=a,b"], "integers"),
        (["--output_file=" + out_nf, "--data_file=" + data_nf, "--out_dir=" + str(tmp_path)],
         "missing key 'factors'"),
        (["--output_file=" + out2, "--data_file=" + data2, "--out_dir=" + str(tmp_path)],
         "mismatched trial counts"),
    ]
    procs = _run_scripts("plot_lfads_outputs.py", [argv for argv, _ in cases])
    for (argv, expected), proc in zip(cases, procs):
        assert expected in _one_line_error(proc), (argv, proc.stderr)


def test_compare_script_chaotic(tmp_path):
    out_path, data_path = _fake_files(tmp_path)
    proc = _run_script("compare_to_truth.py", "--output_file=" + out_path,
                       "--data_file=" + data_path, "--split=valid", "--smoothing_sd_bins=2")
    assert proc.returncode == 0, proc.stderr
    values = dict(line.split()[:2] for line in proc.stdout.splitlines())
    assert values["convention"] == "multiply"
    with h5py.File(out_path, "r") as ho, h5py.File(data_path, "r") as hd:
        ref = rate_r2.r2_scores(ho["output_dist_params"][()] * CF_CHAOTIC, hd["valid_truth"][()])
    assert float(values["r2_pooled"]) == pytest.approx(ref["r2_pooled"], abs=1e-4)
    assert float(values["r2_mean_per_neuron"]) == pytest.approx(ref["r2_mean_per_neuron"],
                                                                abs=1e-4)
    assert float(values["r2_pooled"]) > float(values["r2_pooled_smoothed"])


def test_compare_itb_and_fewer_output_trials(tmp_path):
    out_path, data_path = _fake_files(tmp_path, itb=True, e_out=3, e_data=5)
    proc = _run_script("compare_to_truth.py", "--output_file=" + out_path,
                       "--data_file=" + data_path)
    assert proc.returncode == 0, proc.stderr
    values = dict(line.split()[:2] for line in proc.stdout.splitlines())
    assert values["convention"] == "divide" and values["trials"] == "3"
    assert float(values["r2_pooled"]) > 0.95
    assert "first 3 of 5" in proc.stderr


def test_r2_per_bin_locates_the_error_and_adds_up_to_the_pooled_r2(tmp_path):
    """r2_per_bin: an error confined to bin 0 is all of bin 0's share and leaves the other
    bins perfect; the bins' residuals, weighted by their variance, give r2_pooled."""
    rng = np.random.default_rng(0)
    truth = rng.gamma(2.0, 1.0, size=(6, 5, 4))
    pred = truth.copy()
    error = rng.normal(size=(6, 4))
    pred[:, 0, :] += error - error.mean(axis=0)  # leaves each neuron's mean as it is
    r2_t, share_t = rate_r2.r2_per_bin(pred, truth)
    assert share_t == pytest.approx([1, 0, 0, 0, 0])
    assert r2_t[1:] == pytest.approx(np.ones(4))
    pred = truth + rng.normal(scale=0.5, size=truth.shape)
    r2_t, share_t = rate_r2.r2_per_bin(pred, truth)
    truth_c = truth - truth.mean(axis=(0, 1), keepdims=True)
    pred_c = pred - pred.mean(axis=(0, 1), keepdims=True)
    for t in range(5):  # a plain loop as the reference
        ss_res = np.sum((pred_c[:, t] - truth_c[:, t]) ** 2)
        assert r2_t[t] == pytest.approx(1 - ss_res / np.sum(truth_c[:, t] ** 2))
        assert share_t[t] == pytest.approx(ss_res / np.sum((pred_c - truth_c) ** 2))
    ss_tot_t = np.sum(truth_c ** 2, axis=(0, 2))
    assert 1 - np.sum(ss_tot_t * (1 - r2_t)) / ss_tot_t.sum() == pytest.approx(
        rate_r2.r2_scores(pred, truth)["r2_pooled"])
    out_path, data_path = _fake_files(tmp_path)
    proc = _run_script("compare_to_truth.py", "--output_file=" + out_path,
                       "--data_file=" + data_path, "--split=valid", "--per_bin")
    assert proc.returncode == 0, proc.stderr
    lines = [line.split() for line in proc.stdout.splitlines() if line.startswith("r2_bin ")]
    with h5py.File(out_path, "r") as ho, h5py.File(data_path, "r") as hd:
        ref_r2, ref_share = rate_r2.r2_per_bin(ho["output_dist_params"][()] * CF_CHAOTIC,
                                              hd["valid_truth"][()])
    assert [int(f[1]) for f in lines] == list(range(len(ref_r2)))
    assert [float(f[2]) for f in lines] == pytest.approx(ref_r2, abs=1e-4)
    assert [float(f[4]) for f in lines] == pytest.approx(ref_share, abs=1e-4)
