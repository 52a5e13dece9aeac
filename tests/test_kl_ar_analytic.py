"""--kl_ar_analytic: the closed-form KL between the controller-output posterior and the
AR(1) prior, against NumPy references (exact sums and a 10^5-sample Monte Carlo), its
gradients, its use by the model, and a tiny training run with the flag on (a background
job, tests/background.py, beside earlier tests)."""
import json
import math
import os

import numpy as np
import pytest
import tensorflow as tf

import distributions as dist
import lfads
from lfads_tf2.train import hparams
import background
import lfads_testdata as td

LOG_2PI = math.log(2.0 * math.pi)


def _prior(taus, nvars):
    prior = dist.LearnableAR1Prior(len(taus), 1.0, 1.0, True, True, "LFADS/z/u_prior_ar1")
    prior.logatau.assign(np.log(np.asarray(taus, np.float32))[None])
    prior.logevars.assign(np.log(np.asarray(nvars, np.float32))[None])
    return prior


def _posterior(seed, B=3, T=6, U=2):
    rs = np.random.RandomState(seed)
    return rs.randn(B, T, U) * 0.7, rs.uniform(-2.5, 0.3, (B, T, U))


def np_logpdf(x, mean, var):
    return -0.5 * (np.log(2.0 * np.pi * var) + (x - mean) ** 2 / var)


def np_kl_exact(mean, logvar, phi_u, nvar_u):
    """The closed form written as explicit loops over trials, time and inputs."""
    B, T, U = mean.shape
    s2 = np.exp(logvar)
    pvar_u = nvar_u / (1.0 - phi_u ** 2)
    kl = np.zeros(B)
    for b in range(B):
        for t in range(T):
            for j in range(U):
                kl[b] += -0.5 * (np.log(2 * np.pi * s2[b, t, j]) + 1.0)
                if t == 0:
                    e2, v = mean[b, 0, j] ** 2 + s2[b, 0, j], pvar_u[j]
                else:
                    e2 = ((mean[b, t, j] - phi_u[j] * mean[b, t - 1, j]) ** 2
                          + s2[b, t, j] + phi_u[j] ** 2 * s2[b, t - 1, j])
                    v = nvar_u[j]
                kl[b] -= -0.5 * (np.log(2 * np.pi * v) + e2 / v)
    return kl


def np_kl_samples(mean, logvar, phi_u, nvar_u, n, rs):
    """log q(u) - log p(u) at n samples of q per trial -> [n, B] (NumPy, float64)."""
    sd = np.exp(0.5 * logvar)
    u = mean[None] + sd[None] * rs.randn(n, *mean.shape)            # [n, B, T, U]
    log_q = np_logpdf(u, mean[None], sd[None] ** 2).sum(axis=(2, 3))
    pvar_u = nvar_u / (1.0 - phi_u ** 2)
    log_p = (np_logpdf(u[:, :, 0], 0.0, pvar_u).sum(axis=-1)
             + np_logpdf(u[:, :, 1:], phi_u * u[:, :, :-1], nvar_u).sum(axis=(2, 3)))
    return log_q - log_p


def test_matches_the_closed_form_written_as_loops():
    taus, nvars = np.array([4.0, 1.3]), np.array([0.3, 0.05])
    mean, logvar = _posterior(0)
    got = dist.kl_ar1_analytic(tf.constant(mean, tf.float32),
                               tf.constant(logvar, tf.float32), _prior(taus, nvars))
    assert got.shape == (3,)
    np.testing.assert_allclose(got.numpy(), np_kl_exact(mean, logvar, np.exp(-1 / taus),
                                                        nvars), rtol=1e-5, atol=1e-3)


def test_matches_a_monte_carlo_estimate_with_1e5_samples():
    """E_q[log q - log p] by sampling, within 4 standard errors of the mean."""
    taus, nvars = np.array([8.0, 2.0]), np.array([0.2, 0.5])
    mean, logvar = _posterior(1, B=2, T=5)
    phi = np.exp(-1.0 / taus)
    samples_nxb = np_kl_samples(mean, logvar, phi, nvars, 100_000,
                                np.random.RandomState(2))
    mc_b = samples_nxb.mean(axis=0)
    se_b = samples_nxb.std(axis=0) / math.sqrt(samples_nxb.shape[0])
    got = dist.kl_ar1_analytic(tf.constant(mean, tf.float32),
                               tf.constant(logvar, tf.float32), _prior(taus, nvars))
    assert np.all(np.abs(got.numpy() - mc_b) < 4 * se_b + 1e-4), (got.numpy(), mc_b, se_b)


def test_is_zero_when_the_posterior_equals_a_prior_without_memory():
    """phi -> 0 (tau small): p(u) = prod_t N(0, nvar); q equal to it gives KL = 0."""
    nvar = 0.4
    prior = _prior([1e-3], [nvar])
    mean = tf.zeros([2, 7, 1])
    logvar = tf.fill([2, 7, 1], math.log(nvar))
    np.testing.assert_allclose(dist.kl_ar1_analytic(mean, logvar, prior).numpy(), 0.0,
                               atol=1e-5)


def test_gradients_flow_to_the_posterior_and_the_prior():
    taus, nvars = np.array([3.0]), np.array([0.1])
    mean_np, logvar_np = _posterior(3, B=2, T=4, U=1)
    prior = _prior(taus, nvars)
    mean = tf.Variable(mean_np, dtype=tf.float32)
    logvar = tf.Variable(logvar_np, dtype=tf.float32)
    with tf.GradientTape() as tape:
        kl = tf.reduce_sum(dist.kl_ar1_analytic(mean, logvar, prior))
    grads = tape.gradient(kl, [mean, logvar, prior.logatau, prior.logevars])
    for g in grads:
        assert g is not None and np.all(np.isfinite(g.numpy()))
        assert np.any(g.numpy() != 0.0)
    # d KL / d mean by central differences of the NumPy closed form
    phi = np.exp(-1.0 / taus)
    eps = 1e-5
    for idx in [(0, 0, 0), (1, 2, 0), (0, 3, 0)]:
        up, down = mean_np.copy(), mean_np.copy()
        up[idx] += eps
        down[idx] -= eps
        fd = (np_kl_exact(up, logvar_np, phi, nvars).sum()
              - np_kl_exact(down, logvar_np, phi, nvars).sum()) / (2 * eps)
        np.testing.assert_allclose(grads[0].numpy()[idx], fd, rtol=1e-4, atol=1e-4)


def _model(extra_flags):
    hps = hparams.hps_from_argv(td.TINY_MODEL + ["--co_dim=2"] + extra_flags)
    hps = hparams.add_derived_hps(hps, {"ds": {"data_dim": 7, "num_steps": 9}})
    return hps, lfads.LFADS(hps, {"ds": {"data_dim": 7}}, init_seed=0)


def test_the_model_uses_it_with_the_flag_and_the_sampled_kl_without():
    x = np.random.RandomState(4).poisson(1.0, (5, 9, 7)).astype(np.float32)
    outs = {}
    for flag in ("true", "false"):
        hps, model = _model(["--kl_ar_analytic=" + flag, "--kl_co_weight=0.5"])
        out = model.forward("ds", x, None, tf.random.Generator.from_seed(0), "train")
        outs[flag] = (out, model)
    out, model = outs["true"]
    expected = 0.5 * dist.kl_ar1_analytic(out.co_post_mean_bxtxu, out.co_post_logvar_bxtxu,
                                          model.co_prior)
    np.testing.assert_allclose(out.kl_co_b.numpy(), expected.numpy(), rtol=1e-6)
    out_s, model_s = outs["false"]
    assert not np.allclose(out_s.kl_co_b.numpy(), expected.numpy())
    # hps written before the flag existed lack the key: the sampled KL, as the original
    hps, _ = _model(["--kl_co_weight=0.5"])
    del hps["kl_ar_analytic"]
    old = lfads.LFADS(hps, {"ds": {"data_dim": 7}}, init_seed=0)
    out_old = old.forward("ds", x, None, tf.random.Generator.from_seed(0), "train")
    np.testing.assert_allclose(out_old.kl_co_b.numpy(), out_s.kl_co_b.numpy(), rtol=1e-6)


def train_with_the_flag(root):
    """Background job (tests/background.py): a tiny model with a controller trained 2
    epochs with --kl_ar_analytic; its step and hps flag go to root/trained.json."""
    td.write_dataset(os.path.join(root, "data"), seed=5, n_train=32, n_valid=16)
    flags = ["--data_dir=%s" % os.path.join(root, "data"), "--data_filename_stem=" + td.STEM,
             "--lfads_save_dir=%s" % os.path.join(root, "save"), "--kl_ar_analytic=true",
             "--max_epochs=2", "--seed=1"] + td.TINY_MODEL
    bundle = td.run(flags)
    with open(os.path.join(root, "trained.json"), "w") as f:
        json.dump({"step": int(bundle.state.global_step.numpy()),
                   "kl_ar_analytic": bundle.model.hps.kl_ar_analytic}, f)


BACKGROUND = {"trained_with_the_flag": train_with_the_flag}


@pytest.fixture(scope="module")
def trained_with_the_flag():
    return background.result(train_with_the_flag)


def test_tiny_training_run_with_the_flag(trained_with_the_flag):
    root = trained_with_the_flag
    with open(os.path.join(root, "trained.json")) as f:
        trained = json.load(f)
    assert trained["step"] == 4
    assert trained["kl_ar_analytic"] is True
    recs = [td.fitlog_record(line) for line in td.fitlog_lines(os.path.join(root, "save"))]
    assert len(recs) == 2
    for r in recs:
        assert all(math.isfinite(v) for v in r.values()), r
        assert r["kl_tr"] > 0 and r["kl_va"] > 0  # an exact KL is never negative
