"""Held-out neurons and forward prediction.

With `<split>_recon_data` [E, T + fp, N] beside `<split>_data` [E, T, D] the read-out
predicts all N neurons and the generator runs T + fp steps (zero encoder and external
inputs after T); the likelihood scores all of recon_data. Checked here: the forward
pass against the NumPy reference of lfads_reference.py (extended by forward bins),
the cost against a NumPy Poisson log-likelihood, the held-in-only path unchanged, the
training/posterior/scoring commands end to end, and test_data validation. The two
trained models are made by background jobs (tests/background.py) beside earlier tests.
"""
import json
import math
import os

import h5py
import numpy as np
import pytest
import tensorflow as tf

import lfads
from lfads_tf2 import errors
from lfads_tf2.train import hparams
from lfads_tf2.data import checks
from lfads_tf2.model import observation
import utils
from lfads_tf2.train import build, loop, steps
from lfads_tf2.model import random_draws
from lfads_tf2.score import lfads_score
import background
import lfads_testdata as td
from lfads_reference import (RecordingRng, TINY, assert_close as _close,
                             np_forward_posterior_mean, params_of)

T, FP, D, N = 6, 3, 5, 7


def make_heldout_model(argv, T=T, fp=FP, dims=None, seed=0, perturb=0.3, rnn="fused"):
    """Tiny model of datasets {name: (D, N)} with fp forward bins; every variable gets
    N(0, perturb^2) added (seeded), as lfads_reference.make_model."""
    dims = dims or {"ds": (D, N)}
    hps = hparams.hps_from_argv(list(argv))
    hps = hparams.add_derived_hps(hps, {n: {"data_dim": d, "num_steps": T}
                                          for n, (d, _) in dims.items()})
    hps.fp_bins = fp
    hps.dataset_recon_dims = {n: nn for n, (_, nn) in dims.items()}
    info = {n: {"data_dim": d, "recon_dim": nn} for n, (d, nn) in dims.items()}
    model = lfads.LFADS(hps, info, init_seed=seed, rnn=rnn)
    if perturb:
        rs = np.random.RandomState(seed + 100)
        for v in sorted(model.variables, key=lambda v: v.name):
            v.assign(v.numpy() + perturb * rs.randn(*v.shape).astype(np.float32))
    return hps, model


def heldout_inputs(B, T=T, fp=FP, D=D, N=N, I=0, seed=0):
    """(data [B, T, D], recon [B, T + fp, N] whose held-in part is data, ext or None)."""
    rs = np.random.RandomState(seed)
    recon = rs.poisson(1.5, size=(B, T + fp, N)).astype(np.float32)
    ext = rs.randn(B, T, I).astype(np.float32) if I else None
    return recon[:, :T, :D].copy(), recon, ext


def np_poisson_loglik(counts, rates):
    counts, rates = np.asarray(counts, np.float64), np.asarray(rates, np.float64)
    lgam = np.vectorize(math.lgamma)(counts + 1.0)
    return (counts * np.log(rates) - rates - lgam).sum(axis=(1, 2))


CONFIGS = {
    "controller_factor_feedback": ["--co_dim=2"],
    "controller_rate_feedback": ["--co_dim=2", "--feedback_factors_or_rates=rates"],
    "controller_lag2_causal": ["--co_dim=1", "--controller_input_lag=2",
                               "--do_causal_controller=true"],
    "ext_to_generator_no_controller": ["--co_dim=0", "--ext_input_dim=2",
                                       "--inject_ext_input_to_gen=true"],
}


# ------------------------------------------------------------------ the forward pass
@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_forward_with_forward_bins_and_heldout_neurons_matches_numpy(config):
    """Rates [B, T+fp, N], factors [B, T+fp, F]; the controller's encoder inputs and the
    generator's external inputs are zero after T (the reference feeds zeros there: a
    model that fed the encoders' last lagged step, or anything else, fails)."""
    hps, model = make_heldout_model(TINY + CONFIGS[config])
    B = 3
    data, recon, ext = heldout_inputs(B, I=hps.ext_input_dim)
    rng = RecordingRng(0)
    out = model.forward("ds", data, ext, rng, "posterior_mean", recon_bxtxn=recon)
    assert out.rates_bxtxd.shape == (B, T + FP, N)
    assert out.factors_bxtxf.shape == (B, T + FP, hps.factors_dim)
    assert out.gen_states_bxtxg.shape == (B, T + FP, hps.gen_dim)
    noise_bxtxu = None
    if hps.co_dim > 0:
        assert out.co_bxtxu.shape == (B, T + FP, hps.co_dim)
        draws = [d for d in rng.normal_draws if d.shape == (T + FP, B, hps.co_dim)]
        assert len(draws) == 1, "expected one controller-noise draw [T + fp, B, U]"
        noise_bxtxu = np.transpose(draws[0], [1, 0, 2])
    expected = np_forward_posterior_mean(params_of(model), hps, "ds", data, ext,
                                         noise_bxtxu, fp_bins=FP, recon=recon)
    got = out._asdict()
    for key, value in expected.items():
        assert tuple(got[key].shape) == value.shape, key
        big = key in ("log_p_xgz_b", "kl_co_b", "kl_ic_b")
        _close(got[key], value, atol=2e-4 if big else 1e-5, msg=key)


def test_likelihood_covers_all_neurons_and_bins_of_the_target():
    """log p(x|z) = sum over T + fp bins and N neurons of the Poisson log-likelihood of
    recon under the model's rates; the training cost's recon term is its batch mean."""
    hps, model = make_heldout_model(TINY + ["--co_dim=1"])
    data, recon, _ = heldout_inputs(4, seed=1)
    out = model.forward("ds", data, None, tf.random.Generator.from_seed(3),
                        "posterior_sample", recon_bxtxn=recon)
    _close(out.log_p_xgz_b, np_poisson_loglik(recon, out.rates_bxtxd.numpy()),
           rtol=1e-5, atol=1e-3)
    costs = model.costs(out, tf.constant(0, tf.int64))
    _close(np.mean(costs.recon), -np_poisson_loglik(recon, out.rates_bxtxd.numpy()).mean(),
           rtol=1e-5, atol=1e-3)
    # without a target beyond the data (test data): the data's bins and neurons only
    out_data = model.forward("ds", data, None, tf.random.Generator.from_seed(3),
                             "posterior_sample")
    np.testing.assert_array_equal(out_data.rates_bxtxd, out.rates_bxtxd)
    _close(out_data.log_p_xgz_b,
           np_poisson_loglik(data, out.rates_bxtxd.numpy()[:, :T, :D]), atol=1e-3)


def test_gaussian_readout_is_wide_too():
    hps, model = make_heldout_model(TINY + ["--co_dim=1", "--output_dist=gaussian"])
    data, recon, _ = heldout_inputs(2)
    out = model.forward("ds", data + 0.1, None, tf.random.Generator.from_seed(0),
                        "posterior_mean", recon_bxtxn=recon + 0.1)
    assert out.output_params_bxtxp.shape == (2, T + FP, 2 * N)
    expected = np_forward_posterior_mean(params_of(model), hps, "ds", data + 0.1, None,
                                         None, fp_bins=FP, recon=recon + 0.1)
    _close(out.output_params_bxtxp, expected["output_params_bxtxp"])
    _close(out.log_p_xgz_b, expected["log_p_xgz_b"], atol=2e-4)


def test_forward_bins_and_heldout_neurons_extend_the_heldin_outputs():
    """Same weights: the first T steps and the held-in neurons of a model with forward
    bins and held-out neurons are those of the model without (the generator is causal
    and u_t is taken at its mean)."""
    argv = TINY + ["--co_dim=2"]
    _, wide = make_heldout_model(argv)
    _, narrow = make_heldout_model(argv, fp=0, dims={"ds": (D, D)}, perturb=0)
    by_name = wide.variables_by_name()
    for name, var in narrow.variables_by_name().items():
        value = by_name[name].numpy()
        var.assign(value[..., :D] if "fac_2_logrates" in name else value)
    data, recon, _ = heldout_inputs(3)
    out_w = wide.forward("ds", data, None, tf.random.Generator.from_seed(0),
                         "posterior_mean", recon_bxtxn=recon)
    out_n = narrow.forward("ds", data, None, tf.random.Generator.from_seed(0),
                           "posterior_mean")
    _close(out_w.factors_bxtxf[:, :T], out_n.factors_bxtxf, atol=1e-6)
    _close(out_w.rates_bxtxd[:, :T, :D], out_n.rates_bxtxd, atol=1e-6)
    _close(out_w.co_post_mean_bxtxu[:, :T], out_n.co_post_mean_bxtxu, atol=1e-6)


@pytest.mark.parametrize("argv", [["--co_dim=2"], ["--co_dim=0"]])
def test_fused_and_autodiff_agree_with_forward_bins(argv):
    """Training pass (dropout): the same costs and gradients from both loops."""
    data, recon, _ = heldout_inputs(4, seed=2)
    results = []
    for rnn in ("fused", "autodiff"):
        hps, model = make_heldout_model(TINY + argv, rnn=rnn)
        with tf.GradientTape() as tape:
            out = model.forward("ds", data, None, tf.random.Generator.from_seed(5), "train",
                                keep_prob=0.8, recon_bxtxn=recon)
            total = tf.reduce_mean(model.costs(out, tf.constant(10, tf.int64)).total)
        variables = sorted(model.trainable_variables, key=lambda v: v.name)
        grads = tape.gradient(total, variables)
        results.append((out, total, [g.numpy() for g in grads]))
    (out_f, tot_f, g_f), (out_a, tot_a, g_a) = results
    _close(out_f.factors_bxtxf, out_a.factors_bxtxf, atol=1e-5)
    _close(tot_f, tot_a, rtol=1e-5, atol=1e-3)
    for gf, ga in zip(g_f, g_a):
        _close(gf, ga, rtol=1e-4, atol=1e-4)


def test_generator_side_draws_are_longer_the_rest_unchanged():
    sizes = random_draws.Sizes(T, 2, 4, 3, 8, 2, 7)
    longer = sizes._replace(gen_steps=T + FP)
    short = random_draws.draw(tf.random.Generator.from_seed(0), sizes, "train", 0.9, 3, 3, D, True)
    long_ = random_draws.draw(tf.random.Generator.from_seed(0), longer, "train", 0.9, 3, 3, D,
                       True)
    for a, b in zip(short[:4], long_[:4]):
        np.testing.assert_array_equal(a, b)
    assert long_.gen_mask_txbxg.shape == (T + FP, 3, 8)
    assert long_.con_mask_bxtxk.shape == (3, T + FP, 7)
    assert long_.co_noise_txbxu.shape == (T + FP, 3, 2)
    same = random_draws.draw(tf.random.Generator.from_seed(0), sizes._replace(gen_steps=T),
                      "train", 0.9, 3, 3, D, True)
    for a, b in zip(short, same):
        np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------ held-in only
@pytest.mark.parametrize("mode", ["train", "posterior_sample"])
def test_heldin_only_forward_is_unchanged_by_a_target_equal_to_the_data(mode):
    """Without held-out keys: forward(recon=data) is forward() to the last bit."""
    hps, model = make_heldout_model(TINY + ["--co_dim=1"], fp=0, dims={"ds": (D, D)})
    assert not model.predicts_beyond_data and not steps.uses_recon(hps)
    assert "recon" not in steps.batch_signature(hps)
    data = heldout_inputs(3, fp=0, N=D)[0]
    a = model.forward("ds", data, None, tf.random.Generator.from_seed(1), mode,
                      keep_prob=0.8)
    b = model.forward("ds", data, None, tf.random.Generator.from_seed(1), mode,
                      keep_prob=0.8, recon_bxtxn=data)
    for key, value in a._asdict().items():
        if value is not None:
            np.testing.assert_array_equal(value, getattr(b, key), err_msg=key)
    assert a.rates_bxtxd.shape == (3, T, D)


def test_heldin_only_hps_and_architecture_record():
    hps = hparams.add_derived_hps(hparams.hps_from_argv(TINY), {
        "ds": {"train_data": np.zeros((4, T, D)), "data_dim": D, "num_steps": T}})
    assert hps.fp_bins == 0 and hps.dataset_recon_dims == {"ds": D}
    arch = json.loads(build.architecture_json(hps))
    assert arch["dataset_recon_dims"] == arch["dataset_dims"] == {"ds": D}
    # hps of older runs (and of the original) have neither key
    del hps["fp_bins"], hps["dataset_recon_dims"]
    assert not steps.uses_recon(hps)
    assert json.loads(build.architecture_json(hps))["dataset_recon_dims"] == {"ds": D}


# ------------------------------------------------------------------ data files
def make_heldout_dataset(seed=0, n_train=32, n_valid=16, n_test=10, T=12, fp=4, D=6,
                         N=9, n_latents=2, n_conditions=4):
    """NLB-style data: latent sinusoids (phase = condition) over T + fp bins drive N
    neurons; the first D neurons over the first T bins are `<split>_data`."""
    rs = np.random.RandomState(seed)
    E = n_train + n_valid + n_test
    t = np.arange(T + fp)[None, :, None]
    freqs = rs.uniform(0.5, 1.5, size=(1, 1, n_latents)) * 2 * np.pi / T
    labels = np.arange(E) % n_conditions
    phases = (2 * np.pi * labels / n_conditions)[:, None, None] + 0.2 * rs.randn(E, 1, 1)
    latents = np.sin(freqs * t + phases)
    W = rs.randn(n_latents, N) / np.sqrt(n_latents)
    rates = np.exp(1.1 * latents @ W + np.log(0.8) + 0.3 * rs.randn(N))
    counts = rs.poisson(rates).astype(np.int64)
    out = {"conversion_factor": 1.0}
    parts = {"train": slice(0, n_train), "valid": slice(n_train, n_train + n_valid),
             "test": slice(n_train + n_valid, E)}
    for split, rows in parts.items():
        if rows.stop == rows.start:
            continue
        out[split + "_data"] = counts[rows, :T, :D].copy()
        out[split + "_recon_data"] = counts[rows].copy()
        out[split + "_truth"] = rates[rows]
        out["condition_labels_" + split] = labels[rows]
    return out


def write_heldout(folder, name="set0", **kwargs):
    data = make_heldout_dataset(**kwargs)
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "%s_%s" % (td.STEM, name))
    utils.write_data(path, data)
    return path, data


def _read(path):
    with h5py.File(path, "r") as hf:
        return {k: hf[k][()] for k in hf}


def _flags(root):
    return ["--data_dir=" + os.path.join(root, "data"), "--data_filename_stem=" + td.STEM,
            "--lfads_save_dir=" + os.path.join(root, "save")] + td.TINY_MODEL


def train_heldout(root):
    """Background job (tests/background.py): 2 epochs of a tiny model with a controller
    on make_heldout_dataset, with the example figure every epoch; then both posterior
    kinds and prior_sample."""
    write_heldout(os.path.join(root, "data"))
    flags = _flags(root)
    td.run(flags + ["--max_epochs=2", "--plot_every_n_epochs=1",
                    "--temporal_spike_jitter_width=1"])
    for kind in ("posterior_sample_and_average", "posterior_push_mean", "prior_sample"):
        td.run(flags + ["--kind=" + kind])


def train_heldout_cd_sv(root):
    """Background job: the same data and model trained 2 epochs with CD, SV and spike
    jitter together, then posterior_push_mean."""
    write_heldout(os.path.join(root, "data"))
    flags = _flags(root)
    td.run(flags + ["--max_epochs=2", "--cd_rate=0.3", "--sv_rate=0.1", "--seed=3",
                    "--temporal_spike_jitter_width=1"])
    td.run(flags + ["--kind=posterior_push_mean"])


BACKGROUND = {"trained": train_heldout, "cd_sv_trained": train_heldout_cd_sv}


@pytest.fixture(scope="module")
def trained():
    """The folder of train_heldout (run by a background job while earlier tests run)."""
    root = background.result(train_heldout)
    return {"data_dir": os.path.join(root, "data"), "save_dir": os.path.join(root, "save"),
            "data_path": os.path.join(root, "data", "%s_set0" % td.STEM),
            "data": make_heldout_dataset(), "flags": _flags(root)}


@pytest.fixture(scope="module")
def cd_sv_trained():
    root = background.result(train_heldout_cd_sv)
    return {"save_dir": os.path.join(root, "save"), "data": make_heldout_dataset()}


@pytest.mark.parametrize("kind", ["posterior_sample_and_average", "posterior_push_mean"])
def test_posterior_outputs_are_wide_and_long_for_every_split(trained, kind):
    data = trained["data"]
    hps = utils.read_hps_json(os.path.join(trained["save_dir"], "hyperparameters-0.txt"))
    assert hps["fp_bins"] == 4 and hps["dataset_recon_dims"] == {"set0": 9}
    for split in ("train", "valid", "test"):
        out = _read(os.path.join(trained["save_dir"],
                                 "model_runs_set0_%s_%s" % (split, kind)))
        E = data[split + "_data"].shape[0]
        assert out["output_dist_params"].shape == (E, 16, 9), split
        assert out["factors"].shape == (E, 16, 5)
        assert out["gen_states"].shape == (E, 16, 24)
        assert out["controller_outputs"].shape == (E, 16, 1)
        assert out["gen_ics"].shape == (E, 24)
        assert out["costs"].shape == (E,) and np.all(np.isfinite(out["costs"]))
        assert np.all(out["output_dist_params"] > 0)


def test_train_and_valid_costs_score_all_of_recon_data(trained):
    """push_mean: the costs are -log p(recon_data | the file's rates) plus the (small,
    ramped) KL and L2 terms; those of test trials -log p(test_data | its part of them)."""
    data = trained["data"]
    for split, scored in (("valid", "recon"), ("test", "data")):
        out = _read(os.path.join(trained["save_dir"],
                                 "model_runs_set0_%s_posterior_push_mean" % split))
        rates = out["output_dist_params"]
        nll_all = -np_poisson_loglik(data[split + "_recon_data"], rates)
        nll_data = -np_poisson_loglik(data[split + "_data"], rates[:, :12, :6])
        nll = nll_all if scored == "recon" else nll_data
        # the held-out neurons and forward bins add about as much as the rest
        gap = np.median(nll_all - nll_data)
        assert gap > 0.3 * np.median(nll_data)
        assert np.median(np.abs(out["costs"] - nll)) < 0.25 * gap, split


def test_prior_sample_generates_all_neurons_and_bins(trained):
    out = _read(os.path.join(trained["save_dir"], "model_runs_prior_sample"))
    assert out["output_dist_params"].shape == (16, 16, 9)
    assert out["prior_zs_ar_con"].shape == (16, 16, 1)


def test_example_figure_was_written(trained):
    """The training example figure (recon_data spikes, T + fp bins) in TensorBoard."""
    tags = set()
    log_dir = os.path.join(trained["save_dir"], "lfads_log")
    for name in os.listdir(log_dir):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(log_dir, name)):
            tags.update(v.tag for v in event.summary.value)
    assert "LFADS/LFADS_example" in tags


def _run_script(name, *args):
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [root] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return subprocess.run([sys.executable, os.path.join(root, "scripts", name)] + list(args),
                          env=env, capture_output=True, text=True, timeout=120)


def test_scripts_read_the_wide_outputs(trained, tmp_path):
    """plot_lfads_outputs draws them over recon_data; compare_to_truth scores them
    against the truth of all neurons and bins (test split included)."""
    out_path = os.path.join(trained["save_dir"],
                            "model_runs_set0_test_posterior_sample_and_average")
    proc = _run_script("plot_lfads_outputs.py", "--output_file=" + out_path,
                       "--data_file=" + trained["data_path"], "--trials=0",
                       "--out_dir=" + str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert os.listdir(str(tmp_path)) == [os.path.basename(out_path) + "_trial0.png"]
    proc = _run_script("compare_to_truth.py", "--output_file=" + out_path,
                       "--data_file=" + trained["data_path"])
    assert proc.returncode == 0, proc.stderr
    assert "split test" in proc.stdout and "r2_pooled" in proc.stdout


def test_lfads_score_gives_co_bps_and_fp_bps(trained):
    for split in ("valid", "test"):
        out_path = os.path.join(trained["save_dir"],
                                "model_runs_set0_%s_posterior_sample_and_average" % split)
        result = lfads_score.score_files(out_path, trained["data_path"])
        assert result["split"] == split
        assert (result["heldin_neurons"], result["heldout_neurons"]) == (6, 3)
        assert (result["heldin_bins"], result["forward_bins"]) == (12, 4)
        assert set(result["metrics"]) == {"co_bps", "fp_bps", "psth_r2", "rate_r2"}
        assert all(np.isfinite(v) for v in result["metrics"].values())
        lfads_score.write_json(result, out_path + ".scores.json")
        with open(out_path + ".scores.json") as f:
            assert json.load(f)["metrics"]["fp_bps"] == result["metrics"]["fp_bps"]


def test_lfads_score_names_the_missing_key(trained, tmp_path):
    data = dict(trained["data"])
    del data["valid_recon_data"], data["train_recon_data"], data["test_recon_data"]
    path = str(tmp_path / "plain")
    utils.write_data(path, data)
    out_path = os.path.join(trained["save_dir"],
                            "model_runs_set0_valid_posterior_sample_and_average")
    with pytest.raises(lfads_score.InputError) as info:
        lfads_score.score_files(out_path, path, wanted=("fp_bps",))
    assert "missing key 'valid_recon_data'" in str(info.value)
    assert "\n" not in str(info.value)


def test_test_data_are_not_trained_on(trained):
    hps = hparams.add_derived_hps(
        hparams.hps_from_argv(trained["flags"]),
        {"set0": dict(trained["data"], data_dim=6, num_steps=12)})
    arrays = loop.split_arrays({"set0": trained["data"]}, hps, "test")["set0"]
    assert set(arrays) == {"data"}
    train = loop.split_arrays({"set0": trained["data"]}, hps, "train")["set0"]
    assert train["recon"].shape == (32, 16, 9)
    spec = steps.batch_signature(hps)
    assert spec["recon"].shape.as_list() == [None, 16, 9]


def test_multisession_with_different_heldout_neurons(tmp_path):
    """Two sessions, 3 and 2 held-out neurons, one number of forward bins, alignment
    matrices: one trace (open width), read-outs of their own widths."""
    data_dir, save_dir = str(tmp_path / "data"), str(tmp_path / "save")
    for i, (name, (d, n)) in enumerate(sorted({"a": (6, 9), "b": (5, 7)}.items())):
        data = make_heldout_dataset(seed=i, D=d, N=n, n_test=0)
        rs = np.random.RandomState(i)
        data["alignment_matrix_cxf"] = rs.randn(d, 5) / np.sqrt(d)
        data["alignment_bias_c"] = np.zeros(d)
        utils.write_data(os.path.join(data_dir, "%s_%s" % (td.STEM, name)), data)
    flags = ["--data_dir=" + data_dir, "--data_filename_stem=" + td.STEM,
             "--lfads_save_dir=" + save_dir] + td.TINY_NO_CONTROLLER
    bundle = td.run(flags + ["--max_epochs=1"])
    assert bundle.model.readinout.readouts["a"][0].W.shape == (5, 9)
    assert bundle.model.readinout.readouts["b"][0].W.shape == (5, 7)
    td.run(flags + ["--kind=posterior_push_mean"])
    for name, n in (("a", 9), ("b", 7)):
        out = _read(os.path.join(save_dir, "model_runs_%s_valid_posterior_push_mean" % name))
        assert out["output_dist_params"].shape == (16, 16, n)
    assert not os.path.exists(os.path.join(save_dir,
                                           "model_runs_a_test_posterior_push_mean"))


# ------------------------------------------------------------------ validation
def _datasets(**changes):
    d = make_heldout_dataset(n_train=5, n_valid=4, n_test=3)
    d.update(changes)
    d[utils.PATH_KEY] = "/data/set0"
    return {"set0": d}


def _error(datasets, ext_input_dim=0):
    with pytest.raises(errors.DataError) as info:
        checks.validate_datasets(datasets, observation.for_dist("poisson"), ext_input_dim=ext_input_dim)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_test_data_validation_is_one_line_naming_file_and_key():
    checks.validate_datasets(_datasets(), observation.for_dist("poisson"))
    good = _datasets()["set0"]["test_data"]
    assert _error(_datasets(test_data=good[:, :-1])).startswith(
        "/data/set0: test_data: shape (3, 11, 6) does not match train_data (5, 12, 6)")
    assert _error(_datasets(test_data=good[:, :, :-1])).startswith(
        "/data/set0: test_data: shape (3, 12, 5) does not match train_data")
    bad = good.copy()
    bad[1, 2, 3] = -1
    assert _error(_datasets(test_data=bad)).startswith(
        "/data/set0: test_data: negative counts in 1 value(s), first at index (1, 2, 3)")
    nan = good.astype(np.float64)
    nan[0, 0, 0] = np.nan
    assert _error(_datasets(test_data=nan)).startswith("/data/set0: test_data: NaN or inf")
    assert _error(_datasets(test_data=good[0])).startswith(
        "/data/set0: test_data: has 2 dims")
    assert _error(_datasets(), ext_input_dim=1).startswith(
        "/data/set0: train_ext_input: missing")
    ds = _datasets(train_ext_input=np.zeros((5, 12, 1)), valid_ext_input=np.zeros((4, 12, 1)))
    assert _error(ds, ext_input_dim=1).startswith("/data/set0: test_ext_input: missing; "
                                                  "required with test_data")
    ds["set0"]["test_ext_input"] = np.zeros((3, 11, 1))
    assert _error(ds, ext_input_dim=1).startswith("/data/set0: test_ext_input: expected "
                                                  "shape (3, 12, 1)")


def test_test_recon_data_must_extend_test_data():
    ds = _datasets()
    ds["set0"]["test_recon_data"] = ds["set0"]["test_recon_data"][:, :-1]
    assert _error(ds).startswith("/data/set0: test_recon_data: shape (3, 15, 9) does not "
                                 "match train_recon_data (5, 16, 9)")
    ds = _datasets()
    ds["set0"]["test_recon_data"][0, 0, 0] += 1
    assert _error(ds).startswith("/data/set0: test_recon_data: its first 12 bins")


def test_sessions_must_share_the_forward_bins():
    a = _datasets()["set0"]
    b = make_heldout_dataset(fp=2, n_train=5, n_valid=4, n_test=0)
    b[utils.PATH_KEY] = "/data/set1"
    assert _error({"set0": a, "set1": b}) == (
        "/data/set1: train_recon_data: 2 forward bins, but /data/set0 has 4; all datasets "
        "must share the number of forward bins (a dataset without recon_data has 0)")
    c = {k: v for k, v in b.items() if "recon" not in k}
    assert _error({"set0": a, "set1": c}).startswith(
        "/data/set1: train_recon_data: 0 forward bins, but /data/set0 has 4")
    # held-out neurons may differ; no forward bins anywhere is fine
    d = make_heldout_dataset(fp=0, N=8, n_train=5, n_valid=4, n_test=0)
    e = make_heldout_dataset(fp=0, N=6, n_train=5, n_valid=4, n_test=0)
    d[utils.PATH_KEY], e[utils.PATH_KEY] = "/d", "/e"
    checks.validate_datasets({"d": d, "e": e}, observation.for_dist("poisson"))


# ------------------------------------------------------------------ with CD and SV
def test_cd_gradients_with_heldout_neurons_and_forward_bins():
    """Coordinated dropout hides held-in entries only: the gradient of held-out neurons
    and forward bins always passes; that of held-in entries the encoders saw is 0."""
    from lfads_tf2.model import regularisers
    from test_coordinated_dropout import _loglik_grads, _seed
    _, model = make_heldout_model(td.TINY_MODEL + ["--keep_prob=1.0"], perturb=0.0)
    data, recon, _ = heldout_inputs(6, seed=3)
    enc, mask = regularisers.apply(data, _seed(21), 0.3)
    _, _, _, g = _loglik_grads(model, recon, enc, mask)
    assert g.shape == recon.shape
    hidden = mask.grad_bxtxd.numpy() > 0
    heldin = g[:, :T, :D]
    assert (heldin[~hidden] == 0).all() and (heldin[hidden] != 0).all()
    assert (g[:, T:, :] != 0).all() and (g[:, :, D:] != 0).all()


def test_training_with_cd_sv_and_jitter_on_heldout_data(cd_sv_trained):
    """CD, SV and spike jitter together on held-out/forward data: the fitlog carries
    sv_recon, and the posterior outputs are wide and long."""
    save_dir, data = cd_sv_trained["save_dir"], cd_sv_trained["data"]
    with open(os.path.join(save_dir, "fitlog.csv")) as f:
        lines = f.read().splitlines()
    assert len(lines) == 2
    for line in lines:
        fields = [x.strip() for x in line.split(",")]
        assert fields[-2] == "sv_recon" and math.isfinite(float(fields[-1]))
    out = _read(os.path.join(save_dir, "model_runs_set0_valid_posterior_push_mean"))
    assert out["output_dist_params"].shape == (data["valid_data"].shape[0], 16, 9)
