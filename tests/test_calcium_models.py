"""The calcium-imaging observation models, zero-inflated gamma (ZIG) and gamma: their
equations against the NumPy/SciPy references of tests/calcium_reference.py (TensorFlow and
numpy), the reported parameters and means, sampling, data checks, s_min, bits per entry,
and a tiny ZIG model trained, evaluated and scored end to end."""
import os
import shutil

import numpy as np
import pytest
import scipy.special
import scipy.stats

import background
import calcium_reference as ref
import lfads_testdata as td
import utils
from lfads_tf2 import errors
from lfads_tf2.data import checks
from lfads_tf2.model import observation
from lfads_tf2.score import lfads_score, metrics, rate_r2
from lfads_tf2.score.output_files import InputError
from lfads_tf2.train import hparams

B, T, N = 3, 5, 4


def _raw(seed=0, scale=2.0):
    """Read-out outputs (a, b, c) [B, T, N] float64 and s_min [N]."""
    rs = np.random.RandomState(seed)
    return (scale * rs.randn(B, T, N), 0.7 * rs.randn(B, T, N), 0.7 * rs.randn(B, T, N),
            0.3 + 0.2 * rs.rand(N))


def _zig_data(s_min, seed=1):
    """[B, T, N] with zeros, values at s_min, between 0 and s_min, and above."""
    rs = np.random.RandomState(seed)
    x = np.where(rs.rand(B, T, N) < 0.5, 0.0, s_min + rs.gamma(1.5, 0.8, (B, T, N)))
    x[0, 0] = s_min               # the default s_min's own entries: x - s_min = 0
    x[0, 1] = 0.5 * s_min         # below s_min (possible with --zig_s_min)
    return x


def _links(a, b, c):
    """q, k, theta of the read-out outputs, as the docstring of ZeroInflatedGamma."""
    q = observation.Q_EPS + (1 - 2 * observation.Q_EPS) * scipy.special.expit(a)
    clip = observation.LOG_GAMMA_CLIP
    return q, np.exp(np.clip(b, -clip, clip)), np.exp(np.clip(c, -clip, clip))


def _tf(*arrays):
    import tensorflow as tf
    return tuple(tf.constant(a, tf.float64) for a in arrays)


# ------------------------------------------------------------------ equations
def test_zig_log_likelihood_equals_the_reference():
    a, b, c, s_min = _raw()
    x = _zig_data(s_min)
    zig = observation.for_dist("zig", s_min=s_min)
    q, k, theta = _links(a, b, c)
    want = ref.zig_log_likelihood(x, q, k, theta, s_min)
    assert np.all(np.isfinite(want))
    got_tf = zig.log_likelihood(*_tf(x), _tf(a, b, c, s_min)).numpy()
    np.testing.assert_allclose(got_tf, want, rtol=1e-10, atol=1e-10)
    reported, _ = zig.reported(_tf(a, b, c, s_min))
    np.testing.assert_allclose(zig.log_likelihood_np(x, reported.numpy()), want,
                               rtol=1e-10, atol=1e-10)
    # the float32 graph the model runs agrees to float32 precision
    import tensorflow as tf
    f32 = zig.log_likelihood(tf.constant(x, tf.float32),
                             tuple(tf.constant(v, tf.float32) for v in (a, b, c, s_min)))
    np.testing.assert_allclose(f32.numpy(), want, rtol=1e-4, atol=1e-4)
    # NaN (a missing entry) stays NaN in numpy, as the reference
    x_nan = x.copy()
    x_nan[1, 2, 3] = np.nan
    assert np.isnan(zig.log_likelihood_np(x_nan, reported.numpy())[1, 2, 3])


def test_gamma_log_likelihood_equals_scipy():
    a, b, c, _ = _raw(seed=2)
    x = np.random.RandomState(3).gamma(2.0, 1.5, (B, T, N)) + 1e-3
    gamma = observation.for_dist("gamma")
    _, k, theta = _links(a, b, c)
    want = ref.gamma_log_likelihood(x, k, theta)
    np.testing.assert_allclose(gamma.log_likelihood(*_tf(x), _tf(b, c)).numpy(), want,
                               rtol=1e-10)
    reported, _ = gamma.reported(_tf(b, c))
    np.testing.assert_allclose(gamma.log_likelihood_np(x, reported.numpy()), want,
                               rtol=1e-10)


def test_reported_parameters_means_and_their_split_round_trip():
    a, b, c, s_min = _raw(seed=4)
    q, k, theta = _links(a, b, c)
    zig = observation.for_dist("zig", s_min=s_min)
    params, mean = (t.numpy() for t in zig.reported(_tf(a, b, c, s_min)))
    assert params.shape == (B, T, 3 * N) and mean.shape == (B, T, N)
    parts = zig.split_reported(params)
    assert list(parts) == ["q", "shape", "scale"]
    for name, want in zip(parts, (q, k, theta)):
        np.testing.assert_allclose(parts[name], want, rtol=1e-12)
    np.testing.assert_allclose(mean, ref.zig_mean(q, k, theta, s_min), rtol=1e-12)
    np.testing.assert_allclose(zig.mean(params), mean, rtol=1e-12)
    np.testing.assert_allclose(zig.feedback(_tf(a, b, c, s_min)).numpy(), mean, rtol=1e-12)

    gamma = observation.for_dist("gamma")
    params, mean = (t.numpy() for t in gamma.reported(_tf(b, c)))
    assert list(gamma.split_reported(params)) == ["shape", "scale"]
    np.testing.assert_allclose(params, np.concatenate([k, theta], axis=-1), rtol=1e-12)
    np.testing.assert_allclose(mean, ref.gamma_mean(k, theta), rtol=1e-12)
    np.testing.assert_allclose(gamma.mean(params), mean, rtol=1e-12)
    # the widths lfads_score and the scripts infer a model from
    assert observation.names_for_width(3 * N, N) == ["zig"]
    assert observation.names_for_width(2 * N, N) == ["gaussian", "gamma"]
    assert observation.names_for_width(2 * N, N, unnamed_file=True) == ["gaussian"]


def test_take_neurons_keeps_each_parameter_and_constant():
    a, b, c, s_min = _raw(seed=5)
    zig = observation.for_dist("zig", s_min=s_min)
    params = zig.reported(_tf(a, b, c, s_min))[0].numpy()
    part, part_params = zig.take_neurons(params, slice(1, 3))
    np.testing.assert_array_equal(part.s_min, s_min[1:3])
    for name, value in part.split_reported(part_params).items():
        np.testing.assert_array_equal(value, zig.split_reported(params)[name][..., 1:3])


def test_extreme_outputs_give_finite_likelihoods_and_gradients():
    """The links keep q inside (0, 1) and clip the gamma's logs: finite values and
    gradients at any read-out output, and for zeros and NaN (missing) entries."""
    import tensorflow as tf
    s_min = np.full(N, 0.4)
    x = _zig_data(s_min)
    x[2, 4] = np.nan
    raw = [tf.Variable(np.full((B, T, N), v)) for v in (1e4, -1e4, 1e3)]
    zig = observation.for_dist("zig", s_min=s_min)
    for sign in (1.0, -1.0):
        with tf.GradientTape() as tape:
            ll = zig.log_likelihood(*_tf(x), tuple(sign * v for v in raw)
                                    + _tf(s_min))
            total = tf.reduce_sum(tf.where(tf.math.is_nan(_tf(x)[0]), 0.0, ll))
        grads = tape.gradient(total, raw)
        assert np.all(np.isfinite(ll.numpy()))
        assert all(np.all(np.isfinite(g.numpy())) for g in grads)
        q = zig.split_reported(zig.reported(tuple(sign * v for v in raw) + _tf(s_min))[0]
                               .numpy())["q"]
        assert np.all((q >= observation.Q_EPS) & (q <= 1 - observation.Q_EPS))


def test_samplers_follow_the_reference_and_the_means():
    a, b, c, s_min = _raw(seed=6, scale=1.0)
    q, k, theta = _links(a, b, c)
    zig = observation.for_dist("zig", s_min=s_min)
    params = zig.reported(_tf(a, b, c, s_min))[0].numpy()
    parts = zig.split_reported(params)  # (q, k, theta up to rounding)
    np.testing.assert_array_equal(
        zig.sample(np.random.RandomState(7), params),
        ref.zig_sample(np.random.RandomState(7), parts["q"], parts["shape"], parts["scale"],
                       s_min))
    # many draws of one entry's distribution: mean and zero fraction within 4 s.e.
    one = np.broadcast_to(params[:1, :1, :], (40000, 1, 3 * N))
    draws = zig.sample(np.random.default_rng(8), one)
    mean = ref.zig_mean(q[0, 0], k[0, 0], theta[0, 0], s_min)
    se = draws.std(axis=(0, 1)) / np.sqrt(40000)
    assert np.all(np.abs(draws.mean(axis=(0, 1)) - mean) < 4 * se)
    assert np.all(np.abs((draws == 0).mean(axis=(0, 1)) - (1 - q[0, 0])) < 0.01)
    assert np.all((draws == 0) | (draws > s_min))
    gamma = observation.for_dist("gamma")
    params = gamma.reported(_tf(b, c))[0].numpy()
    draws = gamma.sample(np.random.default_rng(9), np.broadcast_to(params[:1, :1],
                                                                   (40000, 1, 2 * N)))
    se = draws.std(axis=(0, 1)) / np.sqrt(40000)
    assert np.all(np.abs(draws.mean(axis=(0, 1)) - ref.gamma_mean(k[0, 0], theta[0, 0]))
                  < 4 * se)


# ------------------------------------------------------------------ null models, bits
def test_fit_gamma_is_the_maximum_likelihood_fit():
    rs = np.random.RandomState(10)
    y = rs.gamma(np.array([0.6, 1.0, 3.0, 20.0]), np.array([2.0, 0.5, 1.0, 0.1]),
                 size=(500, 4))
    use = rs.rand(500, 4) < 0.8
    k, theta = observation.fit_gamma(y, use)
    for n in range(4):
        k_sp, _, theta_sp = scipy.stats.gamma.fit(y[use[:, n], n], floc=0)
        assert k[n] == pytest.approx(k_sp, rel=1e-4)
        assert theta[n] == pytest.approx(theta_sp, rel=1e-4)
    k, theta = observation.fit_gamma(y, np.zeros_like(use))  # no samples: k = theta = 1
    assert np.all(k == 1.0) and np.all(theta == 1.0)


def test_zig_null_model_is_the_zero_fraction_and_the_gamma_of_the_excess():
    s_min = np.array([0.4, 0.5])
    rs = np.random.RandomState(11)
    x = np.where(rs.rand(300, 7, 2) < 0.7, 0.0, s_min + rs.gamma(2.0, 0.5, (300, 7, 2)))
    x[0, 0, 0] = np.nan
    p = observation.for_dist("zig", s_min=s_min).null_params(x)
    flat = x.reshape(-1, 2)
    for n in range(2):
        seen = flat[~np.isnan(flat[:, n]), n]
        assert p[n] == pytest.approx(np.mean(seen > 0))
        k_sp, _, theta_sp = scipy.stats.gamma.fit(seen[seen > 0] - s_min[n], floc=0)
        assert p[2 + n] == pytest.approx(k_sp, rel=1e-4)
        assert p[4 + n] == pytest.approx(theta_sp, rel=1e-4)


def test_bits_per_entry_against_the_reference_likelihoods():
    a, b, c, s_min = _raw(seed=12, scale=1.0)
    x = _zig_data(s_min, seed=13)
    x[1, 1, 1] = np.nan
    zig = observation.for_dist("zig", s_min=s_min)
    params = zig.reported(_tf(a, b, c, s_min))[0].numpy()
    q, k, theta = _links(a, b, c)
    null = zig.split_reported(zig.null_params(x))
    ll_model = np.nansum(ref.zig_log_likelihood(x, q, k, theta, s_min))
    ll_null = np.nansum(ref.zig_log_likelihood(x, null["q"], null["shape"], null["scale"],
                                               s_min))
    n = np.sum(~np.isnan(x))
    assert metrics.bits_per_entry(zig, params, x) == pytest.approx(
        (ll_model - ll_null) / n / np.log(2), rel=1e-10)
    # the null model itself scores 0 bits, and (being the ML fit) nothing constant beats it
    null_params = np.broadcast_to(zig.null_params(x), (B, T, 3 * N))
    assert metrics.bits_per_entry(zig, null_params, x) == pytest.approx(0.0, abs=1e-12)
    moved = null_params * np.repeat([1.0, 1.1, 0.9], N)
    assert metrics.bits_per_entry(zig, moved, x) < 0


# ------------------------------------------------------------------ data and s_min
def _check(output_dist, x, path="/data/set0"):
    data = {"train_data": x, "valid_data": x, utils.PATH_KEY: path}
    return checks.validate_datasets({"set0": data}, observation.for_dist(output_dist))


def test_data_checks_one_line_errors_and_integer_data():
    x = np.zeros((2, 3, 4), np.float32)
    x[1, 2, 3] = 0.7
    assert _check("zig", x) == [] and _check("zig", x.astype(np.int64)) == []
    assert _check("gamma", x + 1.0) == [] and _check("gamma", np.ones((2, 3, 4), int)) == []
    x[0, 1, 2] = -0.1
    with pytest.raises(errors.DataError) as info:
        _check("zig", x)
    assert str(info.value) == (
        "/data/set0: train_data: negative values for --output_dist=zig (it models traces "
        "that are 0 or positive) in 1 value(s), first at index (0, 1, 2)")
    with pytest.raises(errors.DataError) as info:
        _check("gamma", x + 0.05)
    assert str(info.value) == ("/data/set0: train_data: negative values for "
                               "--output_dist=gamma in 1 value(s), first at index (0, 1, 2)")
    with pytest.raises(errors.DataError) as info:
        _check("gamma", np.abs(x))
    assert str(info.value) == (
        "/data/set0: train_data: zeros for --output_dist=gamma, which needs values > 0 "
        "(data with exact zeros: --output_dist=zig), in 22 value(s), first at index "
        "(0, 0, 0)")


def _hps(argv, datasets):
    hps = hparams.hps_from_argv(argv)
    hparams.validate_hps(hps)
    return hparams.add_derived_hps(hps, datasets)


def test_s_min_is_each_neurons_smallest_nonzero_training_value_or_the_flag():
    rs = np.random.RandomState(14)
    recon = np.where(rs.rand(6, 5, 4) < 0.6, 0.0, 0.3 + rs.rand(6, 5, 4)).astype(np.float32)
    recon[:, :, 3] = 0.0  # a neuron that never fires gets the others' smallest value
    recon[2, 1, 0] = np.nan  # a missing entry is no value
    data = {"train_data": recon[:, :, :2], "valid_data": recon[:, :, :2],
            "train_recon_data": recon, "valid_recon_data": recon, "data_dim": 2,
            "num_steps": 5}
    hps = _hps(["--output_dist=zig"], {"ds": dict(data)})
    got = np.asarray(hps.dataset_zig_s_min["ds"])
    flat = recon.reshape(-1, 4)
    want = [np.nanmin(np.where(flat[:, n] > 0, flat[:, n], np.inf)) for n in range(3)]
    np.testing.assert_array_equal(got, want + [min(want)])
    assert got.dtype == np.float64 and np.all(got.astype(np.float32) == got)
    hps = _hps(["--output_dist=zig", "--zig_s_min=0.25"], {"ds": dict(data)})
    assert hps.dataset_zig_s_min == {"ds": [0.25] * 4}
    assert "dataset_zig_s_min" not in _hps(["--output_dist=gaussian"], {"ds": dict(data)})
    for argv, message in (
            (["--zig_s_min=0.5"], "--zig_s_min=0.5: only used with --output_dist=zig "
                                  "(not poisson)"),
            (["--output_dist=zig", "--zig_s_min=-1"], "--zig_s_min=-1.0: must be a finite "
                                                      "value >= 0")):
        with pytest.raises(errors.UsageError) as info:
            hparams.validate_hps(hparams.hps_from_argv(argv))
        assert str(info.value) == message


def test_each_dataset_reads_out_its_own_s_min():
    """Two sessions of different widths: the read-out's constants follow the dataset,
    by name and by index tensor (one traced graph for every session)."""
    import lfads
    import tensorflow as tf
    hps = hparams.hps_from_argv(td.TINY_NO_CONTROLLER + ["--output_dist=zig"])
    hps = hparams.add_derived_hps(hps, {"a": {"data_dim": 3, "num_steps": 4},
                                        "b": {"data_dim": 2, "num_steps": 4}})
    hps.dataset_zig_s_min = {"a": [0.1, 0.2, 0.3], "b": [0.5, 0.6]}
    model = lfads.LFADS(hps, {"a": {"data_dim": 3}, "b": {"data_dim": 2}}, init_seed=0)
    factors = tf.zeros([2, 4, hps.factors_dim])

    @tf.function
    def s_min_of(index):
        return model.readinout.read_out(index, factors)[3]

    for i, name in enumerate(("a", "b")):
        want = hps.dataset_zig_s_min[name]
        np.testing.assert_allclose(model.readinout.read_out(name, factors)[3], want,
                                   rtol=1e-7)
        np.testing.assert_allclose(s_min_of(tf.constant(i)), want, rtol=1e-7)
    # a forward pass scores data with the dataset's s_min
    rs = np.random.RandomState(15)
    x = np.where(rs.rand(2, 4, 2) < 0.5, 0.0, 0.6 + rs.rand(2, 4, 2)).astype(np.float32)
    out = model.forward("b", x, None, tf.random.Generator.from_seed(0), "posterior_mean")
    params = model.readinout.read_out("b", out.factors_bxtxf)
    want = model.observation.log_likelihood(x, params).numpy().sum(axis=(1, 2))
    np.testing.assert_allclose(out.log_p_xgz_b.numpy(), want, rtol=1e-5)
    zig = observation.for_dist("zig", s_min=np.array([0.5, 0.6]))
    np.testing.assert_allclose(
        zig.log_likelihood_np(x, out.output_params_bxtxp.numpy()).sum(axis=(1, 2)), want,
        rtol=1e-4)


# ------------------------------------------------------------------ end to end
D_IN, N_ALL, E_TRAIN = 12, 15, 160


def make_calcium_dataset(seed=0, n_train=E_TRAIN, n_valid=48, T=25, burn=10,
                         decay=0.7, noise=0.3):
    """Deconvolved calcium traces of lfads_testdata.make_dataset's spikes (rates from a
    few latent sinusoids): calcium c_t = decay c_{t-1} + spikes_t from the steady state
    of the first rate over `burn` lead-in frames, plus noise, deconvolved by the
    calcium generator's OASIS (synth_data/generate_calcium_data.py; events below
    1.5 noise set to 0). The first D_IN of N_ALL neurons are held in."""
    from synth_data import generate_calcium_data as gcd
    d = td.make_dataset(seed=seed, n_train=n_train, n_valid=n_valid, T=T, D=N_ALL)
    rs = np.random.RandomState(seed + 100)
    truth = np.concatenate([d["train_truth"], d["valid_truth"]])  # counts per bin
    counts = np.concatenate([d["train_data"], d["valid_data"]])
    E = truth.shape[0]
    lead = rs.poisson(np.repeat(truth[:, :1], burn, axis=1))
    spikes = np.concatenate([lead, counts], axis=1).transpose(0, 2, 1).reshape(E * N_ALL, -1)
    calcium = gcd.calcium_trace(spikes, decay, truth[:, 0].reshape(-1) / (1 - decay))
    s, _ = gcd.deconvolve_ar1(calcium + noise * rs.randn(*calcium.shape), decay, 0.1,
                              1.5 * noise)
    x = s.reshape(E, N_ALL, -1)[:, :, burn:].transpose(0, 2, 1).astype(np.float32)
    out = {"conversion_factor": 1.0}
    for split, rows in (("train", slice(0, n_train)), ("valid", slice(n_train, None))):
        out.update({split + "_data": x[rows, :, :D_IN], split + "_recon_data": x[rows],
                    split + "_truth": truth[rows]})
    return out


def _zig_flags(root):
    # A slower KL ramp than TINY's: with 20 steps the tiny model's posterior collapsed to
    # the prior on these sparse traces before the read-out had learned anything.
    return ["--data_dir=" + os.path.join(root, "data"), "--data_filename_stem=" + td.STEM,
            "--lfads_save_dir=" + os.path.join(root, "save")] + td.TINY_NO_CONTROLLER + [
        "--output_dist=zig", "--kl_increase_steps=200", "--l2_increase_steps=200"]


def train_zig(root):
    """Background job (tests/background.py): 30 epochs (300 steps) of the tiny model
    without a controller on make_calcium_dataset, then posterior_sample_and_average."""
    utils.write_data(os.path.join(root, "data", td.STEM + "_cal"), make_calcium_dataset())
    td.run(_zig_flags(root) + ["--max_epochs=30", "--seed=4"])
    td.run(_zig_flags(root) + ["--kind=posterior_sample_and_average"])


BACKGROUND = {"zig_trained": train_zig}


@pytest.fixture(scope="module")
def zig_trained(tmp_path_factory):
    """train_zig's folder, copied (lfads_score writes its JSON beside the outputs)."""
    root = str(tmp_path_factory.mktemp("zig"))
    shutil.copytree(background.result(train_zig), root, dirs_exist_ok=True)
    return {"save_dir": os.path.join(root, "save"),
            "data_path": os.path.join(root, "data", td.STEM + "_cal"),
            "data": make_calcium_dataset()}


def _posterior(trained, split):
    path = os.path.join(trained["save_dir"],
                        "model_runs_cal_%s_posterior_sample_and_average" % split)
    import h5py
    with h5py.File(path, "r") as f:
        assert f.attrs["output_dist"] == "zig"
    return path, utils.read_data(path)


def test_zig_training_learns_and_writes_means(zig_trained):
    data = zig_trained["data"]
    recs = td.finite_fitlog(zig_trained["save_dir"])
    assert recs[-1]["total_va"] < recs[0]["total_va"] - 10, recs
    hps = utils.read_hps_json(os.path.join(zig_trained["save_dir"],
                                           "hyperparameters-300.txt"))
    s_min = observation.smallest_nonzero(data["train_recon_data"])
    np.testing.assert_array_equal(hps["dataset_zig_s_min"]["cal"], s_min)
    # the validation reconstruction cost beats each neuron's best constant ZIG
    zig = observation.for_dist("zig", s_min=s_min)
    recon = data["valid_recon_data"]
    null_nll = -zig.log_likelihood_np(recon, zig.null_params(recon)).sum(axis=(1, 2)).mean()
    assert recs[-1]["recon_va"] < null_nll - 10, (recs[-1], null_nll)
    for split in ("train", "valid"):
        _, out = _posterior(zig_trained, split)
        E = data[split + "_data"].shape[0]
        assert out["output_dist_params"].shape == (E, 25, 3 * N_ALL)
        assert out["output_dist_mean"].shape == (E, 25, N_ALL)
        np.testing.assert_array_equal(out["output_dist_s_min"], s_min)
        truth = data[split + "_truth"]
        assert td.corr(out["output_dist_mean"], truth) > 0.5, split
        # the mean of the sample-averaged parameters is close to the averaged mean
        assert td.corr(zig.mean(out["output_dist_params"]), out["output_dist_mean"]) > 0.99


def test_lfads_score_scores_a_zig_output(zig_trained):
    path, out = _posterior(zig_trained, "valid")
    data = zig_trained["data"]
    res = lfads_score.score_files(path, zig_trained["data_path"], affine=True)
    assert res["output_dist"] == "zig"
    assert sorted(res["metrics"]) == ["co_bpe", "rate_r2"]
    assert "bits per spike need poisson rates, not zig" in res["not_computed"]["co_bps"]
    zig = observation.for_dist("zig", s_min=out["output_dist_s_min"])
    assert res["metrics"]["co_bpe"] == pytest.approx(metrics.co_bpe(
        zig, out["output_dist_params"], data["valid_recon_data"], D_IN, 25))
    assert res["metrics"]["co_bpe"] > 0  # the held-out neurons beat their constant fit
    want = rate_r2.r2_affine(out["output_dist_mean"], data["valid_truth"])
    assert res["metrics"]["rate_r2"] == pytest.approx(want["r2_mean_per_neuron"])
    assert res["metrics"]["rate_r2"] > 0.2
    plain = lfads_score.score_files(path, zig_trained["data_path"], wanted=("rate_r2",))
    assert plain["details"]["truth_convention"] == "multiply"  # conversion_factor 1
    with pytest.raises(InputError) as info:
        lfads_score.score_files(path, zig_trained["data_path"], dist="gaussian")
    assert "--dist=gaussian but the file was written by an --output_dist=zig model" \
        in str(info.value)


def test_lfads_score_tells_gamma_from_gaussian_by_the_file_attribute(tmp_path):
    """Gamma and Gaussian parameters are both [.., 2N]: the file's attribute decides;
    a file without it (an older version's) is Gaussian, as before."""
    import h5py
    rs = np.random.RandomState(16)
    truth = 0.5 + rs.rand(10, 6, 3)
    x = rs.gamma(4.0, truth / 4.0)
    data_path = str(tmp_path / "data_set0")
    utils.write_data(data_path, {"train_data": x, "valid_data": x, "valid_truth": truth})
    params = np.concatenate([np.full_like(truth, 4.0), truth / 4.0], axis=-1)
    path = str(tmp_path / "model_runs_set0_valid_posterior_push_mean")
    utils.write_data(path, {"output_dist_params": params})
    assert lfads_score.score_files(path, data_path)["output_dist"] == "gaussian"
    with h5py.File(path, "a") as f:
        f.attrs["output_dist"] = "gamma"
    res = lfads_score.score_files(path, data_path)
    assert res["output_dist"] == "gamma" and res["metrics"]["rate_r2"] == pytest.approx(1.0)
