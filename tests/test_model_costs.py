"""The cost terms against NumPy: the L2 penalty, the controller-output correlation
penalty, the reconstruction and KL costs with their ramped weights, and the VAE and
IWAE bounds over several samples per trial."""
import numpy as np
import pytest
import tensorflow as tf

from lfads_tf2.model import costs as cost_terms
from lfads_tf2.train import loop
from lfads_reference import (TINY, RecordingRng, assert_close as _close, lgamma as _lgamma,
                             make_hps, make_inputs, make_model, np_forward_posterior_mean,
                             np_kl_diag, params_of)


# ------------------------------------------------------------------ L2 and correlation penalties
def _l2_reference(P, hps):
    def tensors(scope):
        return [P[scope + "/GenGRU/Gates/h_2_ru/W"], P[scope + "/GenGRU/Gates/h_2_ru/b"],
                P[scope + "/GenGRU/Candidate/rh_2_c/W"], P[scope + "/GenGRU/Candidate/rh_2_c/b"]]
    gen = tensors("LFADS/gen")
    con = tensors("LFADS/con") if hps.co_dim > 0 else []
    if not (hps.l2_gen_scale > 0 or hps.l2_con_scale > 0):
        return 0.0
    num = 0.5 * hps.l2_gen_scale * sum((v ** 2).sum() for v in gen) \
        + 0.5 * hps.l2_con_scale * sum((v ** 2).sum() for v in con)
    return num / sum(v.size for v in gen + con)


@pytest.mark.parametrize("flags", [
    ["--co_dim=2", "--l2_gen_scale=2000", "--l2_con_scale=0"],
    ["--co_dim=2", "--l2_gen_scale=2000", "--l2_con_scale=30"],
    ["--co_dim=2", "--l2_gen_scale=0", "--l2_con_scale=30"],
    ["--co_dim=0", "--l2_gen_scale=2000"],
    ["--co_dim=2", "--l2_gen_scale=0", "--l2_con_scale=0"],
])
def test_l2_cost_matches_numpy(flags):
    hps, model = make_model(TINY + flags)
    expected = _l2_reference(params_of(model), hps)
    _close(model.l2_cost(), expected, rtol=1e-5, atol=1e-7)


def test_l2_cost_denominator_counts_controller_even_without_its_scale():
    """As the original: 0.5*2000*sum||v||^2 over gen tensors / (numel gen + numel
    con)."""
    hps, model = make_model(TINY + ["--co_dim=2", "--l2_gen_scale=2000",
                                    "--l2_con_scale=0"])
    P = params_of(model)
    G, C = hps.gen_dim, hps.con_dim
    numel = (G * 2 * G + 2 * G + G * G + G) + (C * 2 * C + 2 * C + C * C + C)
    gen_sq = sum((P["LFADS/gen/GenGRU/" + k] ** 2).sum() for k in (
        "Gates/h_2_ru/W", "Gates/h_2_ru/b", "Candidate/rh_2_c/W", "Candidate/rh_2_c/b"))
    _close(model.l2_cost(), 0.5 * 2000 * gen_sq / numel)


def test_corr_cost_matches_numpy():
    hps, model = make_model(TINY + ["--co_dim=3", "--co_mean_corr_scale=1.0"])
    mu = np.random.RandomState(7).randn(4, 6, 3)
    expected = []
    for i in range(3):
        for j in range(i + 1, 3):
            s = (mu[:, :, i] * mu[:, :, j]).sum(axis=1)   # [B]
            expected.append(0.5 * s ** 2)
    _close(model.corr_cost(tf.constant(mu, tf.float32)), np.mean(expected))


# ------------------------------------------------------------------ the total and the bounds
def test_costs_match_numpy():
    flags = ["--co_dim=2", "--co_mean_corr_scale=0.7", "--kl_start_step=100",
             "--kl_increase_steps=400", "--l2_start_step=0", "--l2_increase_steps=1000",
             "--l2_gen_scale=50", "--l2_con_scale=20", "--kl_ic_weight=0.6"]
    hps, model = make_model(TINY + flags)
    x, _ = make_inputs(hps, B=4, seed=11)
    rng = RecordingRng(0)
    out = model.forward("ds", x, None, rng, "posterior_mean")
    noise = np.transpose([d for d in rng.normal_draws if d.shape == (6, 4, 2)][0], [1, 0, 2])
    P = params_of(model)
    ref = np_forward_posterior_mean(P, hps, "ds", x, None, noise)
    costs = model.costs(out, tf.constant(300, tf.int64))
    kl_w, l2_w = 0.5, 0.3
    _close(costs.kl_weight, kl_w)
    _close(costs.l2_weight, l2_w)
    # recon: summed over time and channels, averaged over the batch only
    k = x.astype(np.float64)
    logr = np.log(ref["rates_bxtxd"])
    recon = -np.mean((k * logr - np.exp(logr) - _lgamma(k + 1)).sum(axis=(1, 2)))
    _close(tf.reduce_mean(costs.recon), recon, atol=1e-4)
    kl_b = ref["kl_ic_b"] + ref["kl_co_b"]
    _close(tf.reduce_mean(costs.kl), kl_b.mean(), atol=1e-4)
    l2 = _l2_reference(P, hps)
    _close(costs.l2, l2)
    mu = ref["co_post_mean_bxtxu"]
    corr = np.mean(0.5 * ((mu[:, :, 0] * mu[:, :, 1]).sum(1)) ** 2)
    _close(costs.corr, corr)
    total = recon + kl_w * kl_b.mean() + l2_w * l2 + 0.7 * corr
    _close(tf.reduce_mean(costs.total), total, atol=1e-4)
    # bounds with one sample per trial: vae == iwae == -(log p - weighted KLs)
    lb = ref["log_p_xgz_b"] - kl_b
    _close(costs.nll_bound_vae, -lb, atol=2e-4)
    _close(costs.nll_bound_iwae, -lb, atol=2e-4)


def test_nll_bounds_with_num_samples_rows_per_trial():
    hps, model = make_model(TINY + ["--co_dim=2", "--kl_ic_weight=0.5"])
    x, _ = make_inputs(hps, B=3, seed=12)
    S = 4
    out = model.forward("ds", x, None, tf.random.Generator.from_seed(5),
                        "posterior_sample", num_samples=S)
    assert out.log_p_xgz_b.shape == (3 * S,)
    # rows are trial-major: the S rows of a trial share its posterior
    pm = out.ic_post_mean_bxz.numpy().reshape(3, S, -1)
    _close(pm, np.repeat(pm[:, :1], S, axis=1), rtol=0, atol=0)
    assert not np.allclose(pm[0, 0], pm[1, 0])
    # kl_ic includes its weight
    kl_ic = 0.5 * np_kl_diag(*(getattr(out, k).numpy().astype(np.float64) for k in (
        "ic_post_mean_bxz", "ic_post_logvar_bxz", "ic_prior_mean_bxz",
        "ic_prior_logvar_bxz")))
    _close(out.kl_ic_b, kl_ic, atol=1e-4)
    costs = model.costs(out, 5000, num_samples=S)
    logp = out.log_p_xgz_b.numpy().astype(np.float64)
    kl = kl_ic + out.kl_co_b.numpy().astype(np.float64)
    lb = (logp - kl).reshape(3, S)
    assert np.ptp(lb, axis=1).min() > 1e-3  # samples differ: iwae != vae
    m = lb.max(axis=1, keepdims=True)
    iwae = -(m[:, 0] + np.log(np.mean(np.exp(lb - m), axis=1)))
    _close(costs.nll_bound_iwae, iwae, atol=2e-4)
    _close(costs.nll_bound_vae, -lb.mean(axis=1), atol=2e-4)
    _close(costs.recon, -logp.reshape(3, S).mean(axis=1), atol=1e-4)
    _close(costs.kl, kl.reshape(3, S).mean(axis=1), atol=1e-4)
    assert np.all(costs.nll_bound_iwae.numpy() <= costs.nll_bound_vae.numpy() + 1e-4)


# ------------------------------------------------------------------ ramped weights
@pytest.mark.parametrize("step,expected", [(0, 0.0), (1000, 0.5), (2000, 1.0), (3000, 1.0)])
def test_ramp_weights_with_defaults(step, expected):
    hps = make_hps([])
    assert (hps.kl_start_step, hps.kl_increase_steps) == (0, 2000)
    assert (hps.l2_start_step, hps.l2_increase_steps) == (0, 2000)
    for s in (step, tf.constant(step, tf.int64)):
        assert float(cost_terms.ramp_weight(s, hps.kl_start_step, hps.kl_increase_steps)) \
            == pytest.approx(expected)
    assert loop.ramp_value(step, hps.l2_start_step, hps.l2_increase_steps) \
        == pytest.approx(expected)


@pytest.mark.parametrize("step,start,inc,expected", [
    (0, 500, 1000, 0.0), (499, 500, 1000, 0.0), (750, 500, 1000, 0.25),
    (1500, 500, 1000, 1.0), (10 ** 6, 500, 1000, 1.0), (3, 0, 4, 0.75)])
def test_ramp_with_start_step(step, start, inc, expected):
    assert float(cost_terms.ramp_weight(step, start, inc)) == pytest.approx(expected)
    assert loop.ramp_value(step, start, inc) == pytest.approx(expected)
