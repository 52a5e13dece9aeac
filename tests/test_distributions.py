"""Every equation of distributions.py against a NumPy reference.

Each test computes the expected value with an independent float64 NumPy
implementation of the original's equations written here, on tiny sizes, and compares with
rtol/atol ~1e-5. Statistical checks use seeded generators and tolerances of
several standard errors.
"""
import math

import numpy as np
import pytest
import tensorflow as tf

import distributions as dist

RTOL = 1e-5
ATOL = 1e-5
LOG_2PI = math.log(2.0 * math.pi)

_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])


def _close(actual, expected, rtol=RTOL, atol=ATOL):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected,
                               rtol=rtol, atol=atol)


def _f32(x):
    return tf.constant(np.asarray(x, np.float32))


# ------------------------------------------------------------------ NumPy references
def np_normal_logpdf(x, mean, var):
    """log N(x; mean, var) elementwise, float64."""
    x, mean, var = (np.asarray(a, np.float64) for a in (x, mean, var))
    return -0.5 * (np.log(2.0 * np.pi * var) + (x - mean) ** 2 / var)


def np_kl_diag(mq, lvq, mp, lvp):
    """KL(N(mq, e^lvq) || N(mp, e^lvp)) summed over the last axis (textbook form)."""
    vq, vp = np.exp(lvq), np.exp(lvp)
    return np.sum(0.5 * (np.log(vp / vq) + (vq + (mq - mp) ** 2) / vp - 1.0), axis=-1)


def np_ar1_logp(z_bxtxu, phi_u, evar_u):
    """log p(z) of independent zero-mean AR(1) processes, elementwise [B, T, U].

    t = 0: stationary N(0, evar / (1 - phi^2)); t >= 1: N(phi z_{t-1}, evar).
    Written as an explicit loop over t.
    """
    z = np.asarray(z_bxtxu, np.float64)
    B, T, U = z.shape
    pvar = evar_u / (1.0 - phi_u ** 2)
    out = np.zeros_like(z)
    for t in range(T):
        if t == 0:
            out[:, 0] = np_normal_logpdf(z[:, 0], 0.0, pvar)
        else:
            out[:, t] = np_normal_logpdf(z[:, t], phi_u * z[:, t - 1], evar_u)
    return out


# ----------------------------------------------------------------------- Poisson
def test_poisson_log_likelihood_matches_numpy_including_lgamma():
    rs = np.random.RandomState(0)
    counts = rs.randint(0, 25, size=(3, 4, 5)).astype(np.int32)
    counts[0, 0, 0] = 0
    counts[0, 0, 1] = 40  # lgamma(41) ~ 110: the constant term must be there
    log_rates = rs.uniform(-2.0, 3.0, size=counts.shape)
    k = counts.astype(np.float64)
    expected = k * log_rates - np.exp(log_rates) - _lgamma(k + 1.0)
    got = dist.poisson_log_likelihood(tf.constant(counts), _f32(log_rates))
    assert got.shape == counts.shape
    # |value| up to ~100 in float32: compare relative
    _close(got, expected, rtol=2e-6, atol=2e-4)


def test_poisson_log_likelihood_normalised_over_counts():
    """sum_k exp(logp(k)) == 1: checks the lgamma normaliser independently."""
    k = np.arange(0, 80, dtype=np.int32)
    for rate in (0.3, 2.0, 11.0):
        logp = dist.poisson_log_likelihood(tf.constant(k), tf.fill([80], math.log(rate)))
        assert abs(float(np.exp(np.asarray(logp, np.float64)).sum()) - 1.0) < 1e-4


# ----------------------------------------------------------------------- Gaussians
def test_gaussian_log_likelihood_matches_numpy():
    rs = np.random.RandomState(1)
    x = rs.randn(4, 3)
    mean = rs.randn(4, 3)
    logvar = rs.uniform(-3.0, 2.0, size=(4, 3))
    expected = np_normal_logpdf(x, mean, np.exp(logvar))
    got = dist.gaussian_log_likelihood(_f32(x), _f32(mean), _f32(logvar))
    _close(got, expected)


def test_gaussian_log_likelihood_of_noise_equals_density_at_sample():
    rs = np.random.RandomState(2)
    mean = rs.randn(5, 3)
    logvar = rs.uniform(-2.0, 1.5, size=(5, 3))
    noise = rs.randn(5, 3)
    z = mean + np.exp(0.5 * logvar) * noise
    expected = np_normal_logpdf(z, mean, np.exp(logvar))
    got_noise = dist.gaussian_log_likelihood_of_noise(_f32(logvar), _f32(noise))
    got_direct = dist.gaussian_log_likelihood(_f32(z), _f32(mean), _f32(logvar))
    _close(got_noise, expected)
    _close(got_direct, expected, rtol=1e-4, atol=1e-4)
    _close(got_noise, np.asarray(got_direct, np.float64), rtol=1e-4, atol=1e-4)


def test_diagonal_gaussian_sample_is_reparameterised():
    rs = np.random.RandomState(3)
    mean = rs.randn(7, 4)
    logvar = rs.uniform(-2.0, 2.0, size=(7, 4))
    g = dist.DiagonalGaussian(_f32(mean), _f32(logvar))
    z, noise = g.sample(tf.random.Generator.from_seed(0))
    assert z.shape == (7, 4) and noise.shape == (7, 4)
    noise = np.asarray(noise, np.float64)
    _close(z, mean + np.exp(0.5 * logvar) * noise)
    assert np.all(noise != 0.0)


def test_diagonal_gaussian_noise_is_standard_normal():
    g = dist.DiagonalGaussian(tf.zeros([400, 100]), tf.zeros([400, 100]))
    rng = tf.random.Generator.from_seed(1)
    z1, n1 = g.sample(rng)
    z2, _ = g.sample(rng)
    n1 = np.asarray(n1, np.float64)
    assert abs(n1.mean()) < 0.01          # SE = 0.0025
    assert abs(n1.std() - 1.0) < 0.01     # SE ~ 0.0018
    # every call draws new noise
    assert not np.allclose(np.asarray(z1), np.asarray(z2))


def test_diagonal_gaussian_sample_statistics_follow_mean_and_logvar():
    n = 20000
    mean = np.tile(np.array([[1.5, -0.5]], np.float32), [n, 1])
    logvar = np.tile(np.log(np.array([[0.25, 4.0]], np.float32)), [n, 1])
    z, _ = dist.DiagonalGaussian(tf.constant(mean), tf.constant(logvar)).sample(
        tf.random.Generator.from_seed(2))
    z = np.asarray(z, np.float64)
    np.testing.assert_allclose(z.mean(0), [1.5, -0.5], atol=0.05)
    np.testing.assert_allclose(z.std(0), [0.5, 2.0], rtol=0.03)


def test_logvar_with_floor():
    raw = np.array([[-20.0, -3.0, 0.0, 2.5]])
    got = dist.logvar_with_floor(_f32(raw), 1e-4)
    _close(got, np.log(np.exp(raw) + 1e-4))
    # the floor dominates a very negative raw value
    assert float(got[0, 0]) == pytest.approx(math.log(1e-4), abs=1e-3)
    # var_min == 0: the raw value unchanged
    _close(dist.logvar_with_floor(_f32(raw), 0.0), raw)


# ----------------------------------------------------------------------- learnable prior
def test_learnable_gaussian_fixed_variance():
    prior = dist.LearnableDiagonalGaussian(3, "LFADS/z/prior_g0", mean_init=0.25,
                                           var_init=0.1, var_min=0.1, var_max=0.1)
    assert prior.mean_var.name == "LFADS/z/prior_g0/mean:0"
    assert prior.logvar_var.name == "LFADS/z/prior_g0/logvar:0"
    assert prior.mean_var.trainable
    assert not prior.logvar_var.trainable
    assert [v.name for v in prior.trainable_variables] == ["LFADS/z/prior_g0/mean:0"]
    assert prior.mean_var.shape == (1, 3) and prior.logvar_var.shape == (1, 3)
    p = prior.params(4)
    assert p.mean.shape == (4, 3) and p.logvar.shape == (4, 3)
    _close(p.mean, np.full((4, 3), 0.25))
    # fixed: logvar is exactly log(var_init), no sigmoid(exp()) transformation
    _close(p.logvar, np.full((4, 3), math.log(0.1)), rtol=1e-6, atol=1e-6)


def test_learnable_gaussian_trainable_variance_quirk():
    vmin, vinit, vmax = 0.1, 0.3, 1.0
    prior = dist.LearnableDiagonalGaussian(2, "pri", mean_init=0.0, var_init=vinit,
                                           var_min=vmin, var_max=vmax)
    assert prior.logvar_var.trainable
    assert {v.name for v in prior.trainable_variables} == {"pri/mean:0", "pri/logvar:0"}
    # the variable stores log(var_init) ...
    _close(prior.logvar_var, np.full((1, 2), math.log(vinit)))
    # ... but the effective initial variance is var_min + (max-min) sigmoid(var_init)
    expected_var = vmin + (vmax - vmin) / (1.0 + math.exp(-vinit))
    p = prior.params(3)
    _close(np.exp(np.asarray(p.logvar, np.float64)), np.full((3, 2), expected_var))
    assert expected_var != pytest.approx(vinit)

    # arbitrary parameter values: var = vmin + (vmax-vmin) sigmoid(exp(param))
    params = np.array([[-30.0, -2.0]], np.float32)
    prior.logvar_var.assign(params)
    expected = vmin + (vmax - vmin) / (1.0 + np.exp(-np.exp(params.astype(np.float64))))
    _close(np.exp(np.asarray(prior.params(1).logvar, np.float64)), expected)


@pytest.mark.parametrize("param", [-50.0, -5.0, -1.0, 0.0, 1.0, 3.0, 20.0])
def test_learnable_gaussian_variance_never_below_midpoint(param):
    vmin, vmax = 0.2, 2.0
    prior = dist.LearnableDiagonalGaussian(1, "pri", var_init=1.0, var_min=vmin,
                                           var_max=vmax)
    prior.logvar_var.assign([[param]])
    var = float(np.exp(prior.params(1).logvar[0, 0]))
    mid = 0.5 * (vmin + vmax)
    assert mid * (1 - 1e-6) <= var <= vmax * (1 + 1e-6)
    if param <= -30:
        assert var == pytest.approx(mid, rel=1e-5)


def test_learnable_gaussian_gradient_reaches_trainable_logvar_only():
    trainable = dist.LearnableDiagonalGaussian(2, "a", var_init=0.5, var_min=0.1,
                                               var_max=1.0)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(trainable.params(3).logvar)
    g = tape.gradient(loss, trainable.logvar_var)
    assert g is not None and np.all(np.abs(np.asarray(g)) > 0)


@pytest.mark.parametrize("kwargs", [
    dict(var_init=0.0, var_min=0.0, var_max=1.0),
    dict(var_init=0.5, var_min=0.6, var_max=0.4),
    dict(var_init=2.0, var_min=0.1, var_max=1.0),
    dict(var_init=0.05, var_min=0.1, var_max=1.0),
])
def test_learnable_gaussian_rejects_bad_arguments(kwargs):
    with pytest.raises(ValueError):
        dist.LearnableDiagonalGaussian(2, "bad", **kwargs)


# ----------------------------------------------------------------------- AR(1) prior
def _ar1(taus, nvars, train_tau=True, train_nvar=True, name="LFADS/z/u_prior_ar1"):
    prior = dist.LearnableAR1Prior(len(taus), 1.0, 1.0, train_tau, train_nvar, name)
    prior.logatau.assign(np.log(np.asarray(taus, np.float32))[None])
    prior.logevars.assign(np.log(np.asarray(nvars, np.float32))[None])
    return prior


def test_ar1_prior_variables_and_initial_values():
    prior = dist.LearnableAR1Prior(3, 10.0, 0.1, True, False, "LFADS/z/u_prior_ar1")
    assert prior.logatau.name == "LFADS/z/u_prior_ar1/logatau:0"
    assert prior.logevars.name == "LFADS/z/u_prior_ar1/logevars:0"
    assert prior.logatau.shape == (1, 3) and prior.logevars.shape == (1, 3)
    _close(prior.logatau, np.full((1, 3), math.log(10.0)))
    _close(prior.logevars, np.full((1, 3), math.log(0.1)))
    assert prior.logatau.trainable and not prior.logevars.trainable
    other = dist.LearnableAR1Prior(1, 10.0, 0.1, False, True, "p")
    assert not other.logatau.trainable and other.logevars.trainable


def test_ar1_phi_and_logpvar():
    taus = np.array([10.0, 2.0, 0.7])
    nvars = np.array([0.1, 0.5, 2.0])
    prior = _ar1(taus, nvars)
    phi = np.exp(-1.0 / taus)
    _close(prior.phi(), phi[None])
    _close(prior.logpvar(), np.log(nvars / (1.0 - phi ** 2))[None])


def test_ar1_log_prob_matches_numpy_density():
    taus = np.array([10.0, 1.5])
    nvars = np.array([0.1, 0.8])
    prior = _ar1(taus, nvars)
    rs = np.random.RandomState(4)
    z = rs.randn(3, 6, 2)
    got = prior.log_prob(_f32(z))
    assert got.shape == (3, 6, 2)
    expected = np_ar1_logp(z, np.exp(-1.0 / taus), nvars)
    _close(got, expected)


def test_ar1_sample_shape_and_statistics():
    taus = np.array([10.0, 2.0])
    nvars = np.array([0.1, 0.5])
    prior = _ar1(taus, nvars)
    phi = np.exp(-1.0 / taus)
    pvar = nvars / (1.0 - phi ** 2)
    z = prior.sample(tf.random.Generator.from_seed(0), 4000, 12)
    assert z.shape == (4000, 12, 2)
    z = np.asarray(z, np.float64)
    # stationary from t = 0: every time bin has variance pvar
    var_t = z.var(axis=0)                                  # [T, U]
    np.testing.assert_allclose(var_t[0], pvar, rtol=0.08)  # SE ~ 2.2%
    np.testing.assert_allclose(var_t.mean(0), pvar, rtol=0.05)
    assert np.all(np.abs(z.mean(axis=(0, 1))) < 0.05 * np.sqrt(pvar))
    # lag-1 autocorrelation phi, lag-2 phi^2
    lag1 = (z[:, 1:] * z[:, :-1]).mean(axis=(0, 1)) / z.var(axis=(0, 1))
    lag2 = (z[:, 2:] * z[:, :-2]).mean(axis=(0, 1)) / z.var(axis=(0, 1))
    np.testing.assert_allclose(lag1, phi, atol=0.02)
    np.testing.assert_allclose(lag2, phi ** 2, atol=0.03)
    # innovations z_t - phi z_{t-1} have variance evar
    innov = z[:, 1:] - phi * z[:, :-1]
    np.testing.assert_allclose(innov.var(axis=(0, 1)), nvars, rtol=0.04)


def test_ar1_sample_is_seeded():
    prior = _ar1([3.0], [0.2])
    a = prior.sample(tf.random.Generator.from_seed(7), 5, 4)
    b = prior.sample(tf.random.Generator.from_seed(7), 5, 4)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


# ----------------------------------------------------------------------- KL estimators
def test_kl_gaussian_gaussian_matches_closed_form():
    rs = np.random.RandomState(5)
    mq, mp = rs.randn(4, 3), rs.randn(4, 3)
    lvq, lvp = rs.uniform(-2, 1, (4, 3)), rs.uniform(-2, 1, (4, 3))
    q = dist.DiagonalGaussian(_f32(mq), _f32(lvq))
    p = dist.DiagonalGaussian(_f32(mp), _f32(lvp))
    got = dist.kl_gaussian_gaussian(q, p)
    assert got.shape == (4,)
    _close(got, np_kl_diag(mq, lvq, mp, lvp))
    # KL(q||q) = 0 and KL is not symmetric
    _close(dist.kl_gaussian_gaussian(q, q), np.zeros(4))
    assert not np.allclose(np.asarray(dist.kl_gaussian_gaussian(p, q)), np.asarray(got))


def test_kl_gaussian_gaussian_matches_monte_carlo():
    mq, lvq = np.array([[0.5, -1.0]]), np.log(np.array([[0.3, 1.7]]))
    mp, lvp = np.array([[0.0, 0.4]]), np.log(np.array([[0.1, 0.9]]))
    got = float(dist.kl_gaussian_gaussian(
        dist.DiagonalGaussian(_f32(mq), _f32(lvq)),
        dist.DiagonalGaussian(_f32(mp), _f32(lvp)))[0])
    rs = np.random.RandomState(6)
    z = mq + np.exp(0.5 * lvq) * rs.randn(400000, 2)
    ratio = (np_normal_logpdf(z, mq, np.exp(lvq))
             - np_normal_logpdf(z, mp, np.exp(lvp))).sum(-1)
    se = ratio.std() / np.sqrt(len(ratio))
    assert abs(got - ratio.mean()) < 4 * se + 1e-4


def test_kl_ar1_sampled_matches_numpy_loop():
    taus = np.array([4.0, 1.2])
    nvars = np.array([0.3, 0.05])
    prior = _ar1(taus, nvars)
    phi = np.exp(-1.0 / taus)
    rs = np.random.RandomState(8)
    B, T, U = 3, 5, 2
    mean = rs.randn(B, T, U) * 0.5
    logvar = rs.uniform(-3.0, 0.5, (B, T, U))
    noise = rs.randn(B, T, U)
    z = mean + np.exp(0.5 * logvar) * noise

    expected = np.zeros(B)
    for b in range(B):
        for t in range(T):
            for j in range(U):
                log_q = np_normal_logpdf(z[b, t, j], mean[b, t, j], np.exp(logvar[b, t, j]))
                if t == 0:
                    log_p = np_normal_logpdf(z[b, 0, j], 0.0, nvars[j] / (1 - phi[j] ** 2))
                else:
                    log_p = np_normal_logpdf(z[b, t, j], phi[j] * z[b, t - 1, j], nvars[j])
                expected[b] += log_q - log_p
    got = dist.kl_ar1_sampled(_f32(z), _f32(noise), _f32(logvar), prior)
    assert got.shape == (B,)
    _close(got, expected, rtol=1e-4, atol=1e-4)


def test_kl_ar1_sampled_is_unbiased_for_the_exact_kl():
    """E_q[log q - log p] of a factorised q vs an AR(1) prior, closed form.

    For q = N(m, diag(s2)) and the AR(1) Gaussian prior,
    E[log p] = sum_t E[log N(z_t; phi z_{t-1}, evar)] with
    E[(z_t - phi z_{t-1})^2] = (m_t - phi m_{t-1})^2 + s2_t + phi^2 s2_{t-1}.
    """
    tau, nvar = 3.0, 0.2
    prior = _ar1([tau], [nvar])
    phi = math.exp(-1.0 / tau)
    pvar = nvar / (1 - phi ** 2)
    T = 4
    m = np.array([0.3, -0.2, 0.5, 0.1])
    s2 = np.array([0.05, 0.1, 0.02, 0.08])
    exact = 0.0
    for t in range(T):
        exact += -0.5 * (np.log(2 * np.pi * s2[t]) + 1.0)  # E log q
        if t == 0:
            e2, v = m[0] ** 2 + s2[0], pvar
        else:
            e2, v = (m[t] - phi * m[t - 1]) ** 2 + s2[t] + phi ** 2 * s2[t - 1], nvar
        exact -= -0.5 * (np.log(2 * np.pi * v) + e2 / v)
    n = 20000
    rs = np.random.RandomState(9)
    noise = rs.randn(n, T, 1)
    z = m[None, :, None] + np.sqrt(s2)[None, :, None] * noise
    lv = np.broadcast_to(np.log(s2)[None, :, None], (n, T, 1))
    kl = np.asarray(dist.kl_ar1_sampled(_f32(z), _f32(noise), _f32(lv), prior), np.float64)
    se = kl.std() / np.sqrt(n)
    assert abs(kl.mean() - exact) < 4 * se
