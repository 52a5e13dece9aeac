"""Issue 2, item 7: the equations of lfads.py and the training helpers against NumPy.

Every expected value is computed by an independent float64 NumPy implementation of
the spec written in this file (§4 model, §6 costs, §7.2 variable selection, §8
training helpers, §15 acceptance numbers), on tiny sizes. The model's weights are
randomly perturbed before comparing (biases, initial states and prior means start
at zero and would otherwise hide mistakes in how they are used).
"""
import math
import re

import numpy as np
import pytest
import tensorflow as tf

import lfads
from lfads_tf2.model import costs as cost_terms
from lfads_tf2.model import encoders, layers
import run_lfads
from lfads_tf2.train import loop

RTOL = 1e-5
ATOL = 1e-5
LOG_2PI = math.log(2.0 * math.pi)

_lgamma = np.vectorize(math.lgamma, otypes=[np.float64])

# Tiny sizes: Eic=4, Eci=3, Z=3, F=3, G=4, C=5; data D=5, T=6 unless stated.
TINY = ["--ic_dim=3", "--factors_dim=3", "--gen_dim=4", "--con_dim=5",
        "--ci_enc_dim=3", "--ic_enc_dim=4"]
T_STEPS = 6
D_CH = 5


def _close(actual, expected, rtol=RTOL, atol=ATOL, msg=""):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected,
                               rtol=rtol, atol=atol, err_msg=msg)


def make_hps(argv, datasets=None):
    datasets = datasets or {"ds": {"data_dim": D_CH, "num_steps": T_STEPS}}
    hps = run_lfads.hps_from_argv(list(argv))
    return run_lfads.add_derived_hps(hps, datasets)


def make_model(argv, info=None, T=T_STEPS, seed=0, perturb=0.3):
    """Tiny model; every variable gets N(0, perturb^2) added (seeded)."""
    info = info or {"ds": {"data_dim": D_CH}}
    hps = make_hps(argv, {n: {"data_dim": d["data_dim"], "num_steps": T}
                          for n, d in info.items()})
    model = lfads.LFADS(hps, info, init_seed=seed)
    if perturb:
        rs = np.random.RandomState(seed + 100)
        for v in sorted(model.variables, key=lambda v: v.name):
            v.assign(v.numpy() + perturb * rs.randn(*v.shape).astype(np.float32))
    return hps, model


def params_of(model):
    """dict TF1-style name (no ':0') -> float64 value."""
    return {v.name[:-2]: v.numpy().astype(np.float64) for v in model.variables}


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def normalize_columns(w):
    return w / np.sqrt(np.maximum(np.sum(w * w, axis=0, keepdims=True), 1e-12))


class RecordingRng:
    """Wraps a seeded tf.random.Generator and keeps every draw (to get the noise)."""

    def __init__(self, seed):
        self.gen = tf.random.Generator.from_seed(seed)
        self.normal_draws = []
        self.uniform_draws = []

    def normal(self, shape, *args, **kwargs):
        v = self.gen.normal(shape, *args, **kwargs)
        self.normal_draws.append(v.numpy().astype(np.float64))
        return v

    def uniform(self, shape, *args, **kwargs):
        v = self.gen.uniform(shape, *args, **kwargs)
        self.uniform_draws.append(v.numpy().astype(np.float64))
        return v

    def __getattr__(self, name):
        return getattr(self.gen, name)


# ------------------------------------------------------------------ NumPy reference
def np_encoder_gru(P, scope, x_bxtxk, h0_1xn, clip, reverse=False):
    """Spec §4.2 with the joint [x, h] matrices; states indexed by absolute time."""
    w_ru, b_ru = P[scope + "/GRU/Gates/xh_2_ru/W"], P[scope + "/GRU/Gates/xh_2_ru/b"]
    w_c, b_c = P[scope + "/GRU/Candidate/xrh_2_c/W"], P[scope + "/GRU/Candidate/xrh_2_c/b"]
    return np_encoder_gru_w(w_ru, b_ru, w_c, b_c, x_bxtxk, h0_1xn, clip, reverse)


def np_encoder_gru_w(w_ru, b_ru, w_c, b_c, x_bxtxk, h0_1xn, clip, reverse=False):
    B, T, _ = x_bxtxk.shape
    n = w_c.shape[1]
    h = np.repeat(np.asarray(h0_1xn, np.float64), B, axis=0)
    out = np.zeros((B, T, n))
    for t in (reversed(range(T)) if reverse else range(T)):
        h = np_encoder_gru_step(w_ru, b_ru, w_c, b_c, x_bxtxk[:, t], h, clip)
        out[:, t] = h
    return out


def np_encoder_gru_step(w_ru, b_ru, w_c, b_c, x, h, clip, forget_bias=1.0):
    n = h.shape[1]
    gates = np.concatenate([x, h], axis=1) @ w_ru + b_ru
    r = sigmoid(gates[:, :n])
    u = sigmoid(gates[:, n:] + forget_bias)
    c = np.tanh(np.concatenate([x, r * h], axis=1) @ w_c + b_c)
    return np.clip(u * h + (1.0 - u) * c, -clip, clip)


def np_gengru_step(P, scope, x, h, clip, forget_bias=1.0):
    """Spec §4.3: separate input (no bias) and recurrent (with bias) matrices."""
    n = h.shape[1]
    g = h @ P[scope + "/GenGRU/Gates/h_2_ru/W"] + P[scope + "/GenGRU/Gates/h_2_ru/b"]
    if x is not None:
        g = g + x @ P[scope + "/GenGRU/Gates/x_2_ru/W"]
    r = sigmoid(g[:, :n])
    u = sigmoid(g[:, n:] + forget_bias)
    c = (r * h) @ P[scope + "/GenGRU/Candidate/rh_2_c/W"] \
        + P[scope + "/GenGRU/Candidate/rh_2_c/b"]
    if x is not None:
        c = c + x @ P[scope + "/GenGRU/Candidate/x_2_c/W"]
    return np.clip(u * h + (1.0 - u) * np.tanh(c), -clip, clip)


def np_kl_diag(mq, lvq, mp, lvp):
    vq, vp = np.exp(lvq), np.exp(lvp)
    return np.sum(0.5 * (np.log(vp / vq) + (vq + (mq - mp) ** 2) / vp - 1.0), axis=-1)


def np_normal_logpdf(x, mean, var):
    return -0.5 * (np.log(2.0 * np.pi * var) + (x - mean) ** 2 / var)


def np_forward_posterior_mean(P, hps, name, x, ext, co_noise_bxtxu=None, sample=False,
                              g0_noise_bxz=None, masks=None, fp_bins=0, recon=None):
    """The whole LFADS forward pass of spec §4.

    fp_bins: forward bins, the generator runs T + fp_bins steps with zero encoder and
    external inputs after T (the masks "con" and "gen" and co_noise then cover T +
    fp_bins steps); recon: the likelihood's target [B, T + fp_bins, N] (default x).

    Default: g0 and u_t at their posterior means (co_noise only enters the KL).
    sample=True: u_t = mean + exp(logvar/2) * co_noise; g0 likewise when
    g0_noise_bxz is given. masks: inverted-dropout multipliers of §4.5 by place
    ("data" [B,T,D], "ext" [B,T,I], "ic_enc" [B,2Eic], "con" [B,T,Cin],
    "gen" [B,T,G]); missing places are not dropped.
    """
    masks = masks or {}
    x = np.asarray(x, np.float64)
    B, T, D = x.shape
    U, Z, I = hps.co_dim, hps.ic_dim, hps.ext_input_dim
    clip = hps.cell_clip_value
    res = {}
    x_do = x * masks.get("data", 1.0)
    if ext is not None:
        ext = np.asarray(ext, np.float64) * masks.get("ext", 1.0)

    # §4.4 read-in (identity when the model has no read-in variables)
    ri = "LFADS/x_2_infac_%s" % name
    enc_in = x_do @ P[ri + "/W"] + P[ri + "/b"] if ri + "/W" in P else x_do
    if I > 0 and not hps.inject_ext_input_to_gen:
        enc_in = np.concatenate([enc_in, ext], axis=-1)

    # §4.6/§4.7 IC encoder and g0 posterior/prior
    if Z > 0:
        n = min(hps.num_steps_for_gen_ic, T)
        fwd = np_encoder_gru(P, "LFADS/ic_enc_fwd", enc_in[:, :n],
                             P["LFADS/ic_enc_fwd/ic_enc_t0_fwd"], clip)
        rev = np_encoder_gru(P, "LFADS/ic_enc_rev", enc_in[:, :n],
                             P["LFADS/ic_enc_rev/ic_enc_t0_rev"], clip, reverse=True)
        ic_enc = np.concatenate([fwd[:, n - 1], rev[:, 0]], axis=1) * masks.get("ic_enc", 1.0)
        sc = "LFADS/z/ic_enc_2_post_g0/"
        mean = ic_enc @ P[sc + "mean/W"] + P[sc + "mean/b"]
        raw = ic_enc @ P[sc + "logvar/W"] + P[sc + "logvar/b"]
        logvar = np.log(np.exp(raw) + hps.ic_post_var_min) if hps.ic_post_var_min > 0 \
            else raw
        pm = np.repeat(P["LFADS/z/prior_g0/mean"], B, axis=0)
        plv = P["LFADS/z/prior_g0/logvar"]
        if hps.ic_prior_var_max > hps.ic_prior_var_min:
            lo, hi = hps.ic_prior_var_min, hps.ic_prior_var_max
            plv = np.log(lo + (hi - lo) * sigmoid(np.exp(plv)))
        plv = np.repeat(plv, B, axis=0)
        res.update(ic_post_mean_bxz=mean, ic_post_logvar_bxz=logvar,
                   ic_prior_mean_bxz=pm, ic_prior_logvar_bxz=plv,
                   kl_ic_b=hps.kl_ic_weight * np_kl_diag(mean, logvar, pm, plv))
        g0 = mean if g0_noise_bxz is None else mean + np.exp(0.5 * logvar) * g0_noise_bxz
        gen_ic = g0 @ P["LFADS/gen/g0_2_gen_ic/W"] + P["LFADS/gen/g0_2_gen_ic/b"] \
            if "LFADS/gen/g0_2_gen_ic/W" in P else g0
    else:
        gen_ic = np.repeat(P["LFADS/gen/g0"], B, axis=0)
    res["gen_ics_bxg"] = gen_ic

    # §4.10 read-out
    w_fac = normalize_columns(P["LFADS/gen/gen_2_fac/W"])
    gaussian = hps.output_dist == "gaussian"

    def readout(fac):
        if gaussian:
            m = fac @ P["LFADS/glm/fac_2_means_%s/W" % name] \
                + P["LFADS/glm/fac_2_means_%s/b" % name]
            lv = fac @ P["LFADS/glm/fac_2_logvars_%s/W" % name] \
                + P["LFADS/glm/fac_2_logvars_%s/b" % name]
            return m, lv
        ro = "LFADS/glm/fac_2_logrates_%s" % name
        return fac @ P[ro + "/W"] + P[ro + "/b"] if ro + "/W" in P else fac

    def feedback(fac, clip_rates):
        if hps.feedback_factors_or_rates == "factors":
            return fac
        if gaussian:
            return readout(fac)[0]
        logr = readout(fac)
        return np.exp(np.clip(logr, -80, 80) if clip_rates else logr)

    # §4.8 controller inputs
    feed = U > 0 and hps.do_feed_factors_to_controller
    if U > 0:
        lag = hps.controller_input_lag
        ci_f = np_encoder_gru(P, "LFADS/ci_enc_fwd", enc_in,
                              P["LFADS/ci_enc_fwd/ci_enc_t0_fwd"], clip)
        if not hps.do_causal_controller:
            ci_r = np_encoder_gru(P, "LFADS/ci_enc_rev", enc_in,
                                  P["LFADS/ci_enc_rev/ci_enc_t0_rev"], clip, reverse=True)
        con = np.repeat(P["LFADS/con/c0"], B, axis=0)
        if feed:  # "t = -1" value from the initial state, unclipped rates (Q29)
            fb = feedback(gen_ic @ w_fac, clip_rates=False)

    # §4.9 loop
    gen = gen_ic
    gen_states, factors, co_m, co_lv = [], [], [], []
    for t in range(T + fp_bins):
        gen_x = None
        if U > 0:
            parts = [ci_f[:, t - lag] if 0 <= t - lag and t < T
                     else np.zeros_like(ci_f[:, 0])]
            if not hps.do_causal_controller:
                parts.append(ci_r[:, t + lag] if t + lag < T else np.zeros_like(ci_r[:, 0]))
            if feed:
                parts.append(fb)
            con_in = np.concatenate(parts, axis=1)
            if "con" in masks:
                con_in = con_in * masks["con"][:, t]
            con = np_gengru_step(P, "LFADS/con", con_in, con, clip)
            sc = "LFADS/con/con_to_post_co/"
            m = con @ P[sc + "mean/W"] + P[sc + "mean/b"]
            lv = con @ P[sc + "logvar/W"] + P[sc + "logvar/b"]
            co_m.append(m)
            co_lv.append(lv)
            gen_x = m + np.exp(0.5 * lv) * co_noise_bxtxu[:, t] if sample else m
        if I > 0 and hps.inject_ext_input_to_gen:
            ext_t = ext[:, t] if t < T else np.zeros_like(ext[:, 0])
            gen_x = ext_t if gen_x is None else np.concatenate([gen_x, ext_t], 1)
        gen = np_gengru_step(P, "LFADS/gen", gen_x, gen, clip)
        fac = (gen * masks["gen"][:, t] if "gen" in masks else gen) @ w_fac
        gen_states.append(gen)
        factors.append(fac)
        if feed:
            fb = feedback(fac, clip_rates=True)
    factors = np.stack(factors, axis=1)
    res["gen_states_bxtxg"] = np.stack(gen_states, axis=1)
    res["factors_bxtxf"] = factors

    # observation model
    if recon is not None:
        x = np.asarray(recon, np.float64)
    if gaussian:
        m, lv = readout(factors)
        res["rates_bxtxd"] = m
        res["output_params_bxtxp"] = np.concatenate([m, np.exp(lv)], axis=-1)
        loglik = -0.5 * (lv + LOG_2PI + (x - m) ** 2 / np.exp(lv))
    else:
        logr = readout(factors)
        res["rates_bxtxd"] = res["output_params_bxtxp"] = np.exp(logr)
        loglik = x * logr - np.exp(logr) - _lgamma(x + 1.0)
    res["log_p_xgz_b"] = loglik.sum(axis=(1, 2))

    if U > 0:
        m, lv = np.stack(co_m, axis=1), np.stack(co_lv, axis=1)
        co = m + np.exp(0.5 * lv) * co_noise_bxtxu if sample else m
        res.update(co_bxtxu=co, co_post_mean_bxtxu=m, co_post_logvar_bxtxu=lv)
        if co_noise_bxtxu is not None:
            # §5.6: one-sample KL at z = m + exp(lv/2) eps vs the AR(1) prior
            phi = np.exp(-np.exp(-P["LFADS/z/u_prior_ar1/logatau"][0]))
            evar = np.exp(P["LFADS/z/u_prior_ar1/logevars"][0])
            pvar = evar / (1.0 - phi ** 2)
            z = m + np.exp(0.5 * lv) * co_noise_bxtxu
            log_q = np_normal_logpdf(z, m, np.exp(lv))
            kl = np.zeros(B)
            for t in range(m.shape[1]):
                if t == 0:
                    log_p = np_normal_logpdf(z[:, 0], 0.0, pvar)
                else:
                    log_p = np_normal_logpdf(z[:, t], phi * z[:, t - 1], evar)
                kl += (log_q[:, t] - log_p).sum(axis=1)
            res["kl_co_b"] = hps.kl_co_weight * kl
    return res


def make_inputs(hps, B, seed=0, D=D_CH):
    rs = np.random.RandomState(seed)
    T = hps.num_steps
    if hps.output_dist == "poisson":
        x = rs.poisson(1.5, size=(B, T, D)).astype(np.int32)
    else:
        x = rs.randn(B, T, D).astype(np.float32)
    ext = rs.randn(B, T, hps.ext_input_dim).astype(np.float32) \
        if hps.ext_input_dim > 0 else None
    return x, ext


# ------------------------------------------------------------------ §4.1 Linear
def test_linear_init_std_is_alpha_over_sqrt_fan_in_plain_normal():
    lin = layers.Linear(500, 400, "big", np.random.RandomState(0), alpha=2.5)
    w = lin.W.numpy().astype(np.float64)
    sd = 2.5 / math.sqrt(500)
    assert abs(w.mean()) < 0.01 * sd
    assert w.std() == pytest.approx(sd, rel=0.01)        # SE ~ 0.16 %
    # plain normal, not truncated at 2 sd: P(|w| > 2 sd) = 4.55 %
    assert np.mean(np.abs(w) > 2 * sd) == pytest.approx(0.0455, abs=0.003)
    np.testing.assert_array_equal(lin.b.numpy(), np.zeros((1, 400), np.float32))
    assert lin.W.name == "big/W:0" and lin.b.name == "big/b:0"


def test_linear_affine_map_and_init_values():
    rs = np.random.RandomState(1)
    w0, b0 = rs.randn(4, 3), rs.randn(1, 3)
    lin = layers.Linear(4, 3, "l", rs, mat_init=w0, bias_init=b0)
    x = rs.randn(2, 5, 4)
    _close(lin(tf.constant(x, tf.float32)), x @ w0 + b0)
    no_bias = layers.Linear(4, 3, "nb", rs, mat_init=w0, do_bias=False)
    assert no_bias.b is None and len(no_bias.variables) == 1
    _close(no_bias(tf.constant(x, tf.float32)), x @ w0)


def test_linear_identity_shortcut_has_no_variables():
    lin = layers.Linear(4, 4, "id", np.random.RandomState(0), identity=True)
    assert len(lin.variables) == 0
    x = np.random.RandomState(2).randn(3, 4).astype(np.float32)
    np.testing.assert_array_equal(lin(tf.constant(x)).numpy(), x)
    # only possible when in_size == out_size
    not_id = layers.Linear(4, 5, "nid", np.random.RandomState(0), identity=True)
    assert {v.name for v in not_id.variables} == {"nid/W:0", "nid/b:0"}


def test_linear_normalized_columns_have_unit_norm():
    rs = np.random.RandomState(3)
    w0 = rs.randn(6, 3) * np.array([[0.1, 3.0, 17.0]])
    lin = layers.Linear(6, 3, "n", rs, mat_init=w0, do_bias=False, normalized=True)
    w = lin.weight().numpy().astype(np.float64)
    _close(np.linalg.norm(w, axis=0), np.ones(3))
    _close(w, w0 / np.linalg.norm(w0, axis=0, keepdims=True))
    # the raw variable keeps its scale
    _close(lin.W.numpy(), w0, rtol=1e-6)
    x = rs.randn(2, 6)
    _close(lin(tf.constant(x, tf.float32)), x @ (w0 / np.linalg.norm(w0, axis=0)))


@pytest.mark.parametrize("kwargs", [
    dict(mat_init=np.zeros((3, 4))),            # transposed
    dict(mat_init=np.zeros((4, 2))),
    dict(bias_init=np.zeros((1, 4))),
    dict(bias_init=np.zeros((1, 2))),
])
def test_linear_shape_errors(kwargs):
    with pytest.raises(ValueError):
        layers.Linear(4, 3, "bad", np.random.RandomState(0), **kwargs)


# ------------------------------------------------------------------ §4.2 EncoderGRU
@pytest.mark.parametrize("clip", [0.4, 5.0])
def test_encoder_gru_step_matches_numpy(clip):
    rs = np.random.RandomState(4)
    n_in, n = 2, 4
    cell = layers.EncoderGRU(n_in, n, "LFADS/ic_enc_fwd", rs, weight_scale=1.7,
                            clip_value=clip)
    assert cell.gates.W.shape == (n_in + n, 2 * n)
    assert cell.candidate.W.shape == (n_in + n, n)
    assert cell.gates.W.name == "LFADS/ic_enc_fwd/GRU/Gates/xh_2_ru/W:0"
    assert cell.candidate.b.name == "LFADS/ic_enc_fwd/GRU/Candidate/xrh_2_c/b:0"
    cell.gates.b.assign(rs.randn(1, 2 * n).astype(np.float32))
    cell.candidate.b.assign(rs.randn(1, n).astype(np.float32))
    x = rs.randn(3, 1, n_in) * 2.0
    h = rs.uniform(-2.0, 2.0, size=(3, n))
    x_ru, x_c = cell.input_projection(tf.constant(x, tf.float32))
    got = cell.step(tf.constant(h, tf.float32), x_ru[:, 0], x_c[:, 0],
                    *cell.recurrent_weights())
    expected = np_encoder_gru_step(cell.gates.W.numpy().astype(np.float64),
                                   cell.gates.b.numpy().astype(np.float64),
                                   cell.candidate.W.numpy().astype(np.float64),
                                   cell.candidate.b.numpy().astype(np.float64),
                                   x[:, 0], h, clip)
    _close(got, expected)
    if clip < 1:
        assert np.any(np.abs(expected) == clip)  # the clip is exercised


def test_encoder_gru_init_scales():
    """Gate weights use weight_scale/sqrt(n_x+n); candidate weights alpha=1 (Q11)."""
    cell = layers.EncoderGRU(150, 250, "e", np.random.RandomState(0), weight_scale=3.0,
                            clip_value=5.0)
    assert cell.gates.W.numpy().std() == pytest.approx(3.0 / 20.0, rel=0.01)
    assert cell.candidate.W.numpy().std() == pytest.approx(1.0 / 20.0, rel=0.01)
    assert not np.any(cell.gates.b.numpy()) and not np.any(cell.candidate.b.numpy())


def _assert_run_encoders_match_numpy(cells, xs, h0s):
    got, finals = encoders.run_fused([
        (c, tf.constant(x, tf.float32), tf.constant(h, tf.float32))
        for c, x, h in zip(cells, xs, h0s)])
    for c, x, h0, g, final in zip(cells, xs, h0s, got, finals):
        f64 = [v.numpy().astype(np.float64) for v in (c.gates.W, c.gates.b,
                                                       c.candidate.W, c.candidate.b)]
        expected = np_encoder_gru_w(*f64, x, h0, c.clip_value)
        assert g.shape == expected.shape
        _close(g, expected)
        _close(final, expected[:, -1])


def test_run_encoders_matches_numpy_loop():
    rs = np.random.RandomState(5)
    cells = [layers.EncoderGRU(2, 4, "a", rs, 1.0, 0.8),
             layers.EncoderGRU(3, 2, "b", rs, 1.3, 5.0)]
    for c in cells:
        c.gates.b.assign(rs.randn(*c.gates.b.shape).astype(np.float32))
        c.candidate.b.assign(rs.randn(*c.candidate.b.shape).astype(np.float32))
    _assert_run_encoders_match_numpy(cells, [rs.randn(3, 5, 2), rs.randn(3, 5, 3)],
                                     [rs.randn(1, 4), rs.randn(1, 2)])


def test_run_encoders_stacks_equal_cells_and_keeps_their_own_weights():
    """Three cells of one size run as one stacked cell (and one with another clip
    value runs apart); each must still follow its own weights and initial state."""
    rs = np.random.RandomState(7)
    cells = [layers.EncoderGRU(2, 3, name, rs, 1.0, clip)
             for name, clip in (("a", 5.0), ("b", 5.0), ("c", 5.0), ("d", 0.4))]
    _assert_run_encoders_match_numpy(cells, [rs.randn(4, 6, 2) for _ in cells],
                                     [rs.randn(1, 3) for _ in cells])


# ------------------------------------------------------------------ §4.3 GenGRU
@pytest.mark.parametrize("n_in,clip", [(2, 5.0), (3, 0.3), (0, 5.0)])
def test_gengru_step_matches_numpy(n_in, clip):
    rs = np.random.RandomState(6)
    n = 4
    cell = layers.GenGRU(n_in, n, "LFADS/gen", rs, input_weight_scale=2.0,
                        rec_weight_scale=0.9, clip_value=clip)
    names = {v.name for v in cell.variables}
    expected_names = {"LFADS/gen/GenGRU/Gates/h_2_ru/W:0", "LFADS/gen/GenGRU/Gates/h_2_ru/b:0",
                      "LFADS/gen/GenGRU/Candidate/rh_2_c/W:0",
                      "LFADS/gen/GenGRU/Candidate/rh_2_c/b:0"}
    if n_in:
        expected_names |= {"LFADS/gen/GenGRU/Gates/x_2_ru/W:0",
                           "LFADS/gen/GenGRU/Candidate/x_2_c/W:0"}
    assert names == expected_names  # input maps have no bias
    for v in cell.variables:
        v.assign(v.numpy() + 0.5 * rs.randn(*v.shape).astype(np.float32))
    P = {v.name[:-2]: v.numpy().astype(np.float64) for v in cell.variables}
    h = rs.uniform(-1.5, 1.5, size=(3, n))
    if n_in:
        x = rs.randn(3, n_in)
        xt = tf.constant(x, tf.float32)
        x_ru, x_c = cell.x_2_ru(xt), cell.x_2_c(xt)
    else:
        x, x_ru, x_c = None, 0.0, 0.0
    got = cell.step(tf.constant(h, tf.float32), x_ru, x_c, cell.recurrent_bias())
    expected = np_gengru_step(P, "LFADS/gen", x, h, clip)
    _close(got, expected)
    if clip < 1:
        assert np.any(np.abs(expected) == clip)


def test_gengru_init_scales():
    cell = layers.GenGRU(100, 400, "g", np.random.RandomState(0), input_weight_scale=2.0,
                        rec_weight_scale=0.5, clip_value=5.0)
    assert cell.x_2_ru.W.numpy().std() == pytest.approx(2.0 / 10.0, rel=0.01)
    assert cell.x_2_c.W.numpy().std() == pytest.approx(2.0 / 10.0, rel=0.01)
    assert cell.h_2_ru.W.numpy().std() == pytest.approx(0.5 / 20.0, rel=0.01)
    assert cell.rh_2_c.W.numpy().std() == pytest.approx(0.5 / 20.0, rel=0.01)


# ------------------------------------------------------------------ whole forward pass
FORWARD_CONFIGS = {
    "controller_lag1": ["--co_dim=2", "--controller_input_lag=1"],
    "no_controller": ["--co_dim=0"],
    "controller_lag2_clip_ext_to_encoders_short_ic": [
        "--co_dim=2", "--controller_input_lag=2", "--cell_clip_value=0.3",
        "--ext_input_dim=2", "--num_steps_for_gen_ic=4", "--ic_prior_var_min=0.05",
        "--ic_prior_var_scale=0.1", "--ic_prior_var_max=0.5", "--kl_ic_weight=0.7",
        "--kl_co_weight=1.3"],
    "gaussian_causal_ext_to_gen_identity_g0": [
        "--co_dim=2", "--output_dist=gaussian", "--ext_input_dim=2",
        "--inject_ext_input_to_gen=true", "--do_causal_controller=true", "--ic_dim=4"],
    "rates_feedback_lag0": ["--co_dim=1", "--feedback_factors_or_rates=rates",
                            "--controller_input_lag=0"],
    "no_ic_no_feedback": ["--ic_dim=0", "--co_dim=2",
                          "--do_feed_factors_to_controller=false"],
}


@pytest.mark.parametrize("config", sorted(FORWARD_CONFIGS))
def test_forward_posterior_mean_matches_numpy(config):
    hps, model = make_model(TINY + FORWARD_CONFIGS[config])
    x, ext = make_inputs(hps, B=3)
    rng = RecordingRng(0)
    out = model.forward("ds", x, ext, rng, "posterior_mean")
    noise = None
    if hps.co_dim > 0:
        draws = [d for d in rng.normal_draws if d.shape == (T_STEPS, 3, hps.co_dim)]
        assert len(draws) == 1, "expected one controller-noise draw [T, B, U]"
        noise = np.transpose(draws[0], [1, 0, 2])
    expected = np_forward_posterior_mean(params_of(model), hps, "ds", x, ext, noise)

    got = out._asdict()
    if hps.co_dim == 0:
        assert got["co_bxtxu"] is None and got["kl_co_b"] is None
    if hps.ic_dim == 0:
        assert got["kl_ic_b"] is None and got["ic_post_mean_bxz"] is None
    for key, value in expected.items():
        assert got[key] is not None, key
        assert tuple(got[key].shape) == value.shape, key
        big = key in ("log_p_xgz_b", "kl_co_b", "kl_ic_b")
        _close(got[key], value, rtol=RTOL, atol=2e-4 if big else ATOL, msg=key)
    if config.startswith("controller_lag2_clip"):
        assert np.any(np.abs(expected["gen_states_bxtxg"]) == 0.3)


def _dropout_mask(rng, shape_bm, keep):
    """The inverted-dropout mask of one place, from the recorded uniform draw.

    The draw may be batch-major [B, T, n] or time-major [T, B, n]; either way it
    is returned batch-major. The sizes used make every place's shape unique.
    """
    tm = (shape_bm[1], shape_bm[0]) + tuple(shape_bm[2:])
    found = [u for u in rng.uniform_draws if u.shape in (tuple(shape_bm), tm)]
    assert len(found) == 1, "expected one dropout draw of shape %s" % (shape_bm,)
    u = found[0]
    if u.shape != tuple(shape_bm):
        u = np.swapaxes(u, 0, 1)
    return (u < keep).astype(np.float64) / keep


def _normal_draw(rng, shape_bm):
    tm = (shape_bm[1], shape_bm[0]) + tuple(shape_bm[2:])
    found = [d for d in rng.normal_draws if d.shape in (tuple(shape_bm), tm)]
    assert len(found) == 1, "expected one normal draw of shape %s" % (shape_bm,)
    d = found[0]
    return d if d.shape == tuple(shape_bm) else np.swapaxes(d, 0, 1)


@pytest.mark.parametrize("mode", ["train", "posterior_sample"])
@pytest.mark.parametrize("config", ["controller_lag1", "no_controller",
                                    "controller_lag2_clip_ext_to_encoders_short_ic",
                                    "gaussian_causal_ext_to_gen_identity_g0"])
def test_forward_sampled_modes_with_recorded_draws_match_numpy(config, mode):
    """train: dropout at the five places of §4.5 + posterior samples; the masks and
    the noise are taken from the (recorded) generator and fed to the reference."""
    hps, model = make_model(TINY + FORWARD_CONFIGS[config])
    B, T, keep = 3, T_STEPS, 0.7
    U, Z, I = hps.co_dim, hps.ic_dim, hps.ext_input_dim
    x, ext = make_inputs(hps, B)
    rng = RecordingRng(0)
    out = model.forward("ds", x, ext, rng, mode, keep_prob=keep)
    masks = {}
    if mode == "train":
        masks["data"] = _dropout_mask(rng, (B, T, D_CH), keep)
        if I > 0:
            masks["ext"] = _dropout_mask(rng, (B, T, I), keep)
        if Z > 0:
            masks["ic_enc"] = _dropout_mask(rng, (B, 2 * hps.ic_enc_dim), keep)
        if U > 0:
            cin = hps.ci_enc_dim * (1 if hps.do_causal_controller else 2) \
                + (hps.factors_dim if hps.do_feed_factors_to_controller else 0)
            masks["con"] = _dropout_mask(rng, (B, T, cin), keep)
        masks["gen"] = _dropout_mask(rng, (B, T, hps.gen_dim), keep)
        assert len(rng.uniform_draws) == len(masks)
    else:
        assert not rng.uniform_draws  # no dropout outside training
    g0_noise = _normal_draw(rng, (B, Z)) if Z > 0 else None
    co_noise = _normal_draw(rng, (B, T, U)) if U > 0 else None
    expected = np_forward_posterior_mean(params_of(model), hps, "ds", x, ext, co_noise,
                                         sample=True, g0_noise_bxz=g0_noise, masks=masks)
    got = out._asdict()
    for key, value in expected.items():
        assert got[key] is not None, key
        big = key in ("log_p_xgz_b", "kl_co_b", "kl_ic_b")
        _close(got[key], value, rtol=RTOL, atol=2e-4 if big else 2 * ATOL, msg=key)


@pytest.mark.parametrize("co_dim", [2, 0])
def test_forward_prior_sample_matches_numpy(co_dim):
    hps, model = make_model(TINY + ["--co_dim=%d" % co_dim])
    B = 3
    rng = RecordingRng(0)
    out = model.forward("ds", None, None, rng, "prior_sample", batch_size=B)
    assert out.log_p_xgz_b is None and out.kl_ic_b is None and out.kl_co_b is None
    P = params_of(model)
    eps = _normal_draw(rng, (B, hps.ic_dim))
    g0 = P["LFADS/z/prior_g0/mean"] + np.exp(0.5 * P["LFADS/z/prior_g0/logvar"]) * eps
    gen = g0 @ P["LFADS/gen/g0_2_gen_ic/W"] + P["LFADS/gen/g0_2_gen_ic/b"]
    _close(out.gen_ics_bxg, gen)
    if co_dim:
        u = out.co_bxtxu.numpy().astype(np.float64)
        assert u.shape == (B, T_STEPS, co_dim) and np.all(u != 0)
    else:
        assert out.co_bxtxu is None
    w_fac = normalize_columns(P["LFADS/gen/gen_2_fac/W"])
    states = []
    for t in range(T_STEPS):
        gen = np_gengru_step(P, "LFADS/gen", u[:, t] if co_dim else None, gen,
                             hps.cell_clip_value)
        states.append(gen)
    states = np.stack(states, axis=1)
    factors = states @ w_fac
    logr = factors @ P["LFADS/glm/fac_2_logrates_ds/W"] + P["LFADS/glm/fac_2_logrates_ds/b"]
    _close(out.gen_states_bxtxg, states)
    _close(out.factors_bxtxf, factors)
    _close(out.rates_bxtxd, np.exp(logr))


def test_forward_readout_identity_when_factors_equal_channels():
    hps, model = make_model(["--co_dim=0", "--ic_dim=3", "--factors_dim=5", "--gen_dim=4",
                             "--ic_enc_dim=4"])
    assert not any("glm" in v.name for v in model.variables)
    x, _ = make_inputs(hps, B=2)
    out = model.forward("ds", x, None, tf.random.Generator.from_seed(0), "posterior_mean")
    _close(out.rates_bxtxd, np.exp(out.factors_bxtxf.numpy().astype(np.float64)))
    expected = np_forward_posterior_mean(params_of(model), hps, "ds", x, None)
    _close(out.rates_bxtxd, expected["rates_bxtxd"])


def test_forward_does_not_depend_on_batch_size():
    hps, model = make_model(TINY + ["--co_dim=2"])
    x, _ = make_inputs(hps, B=10, seed=3)
    together = model.forward("ds", x, None, tf.random.Generator.from_seed(0),
                             "posterior_mean")
    keys = ["factors_bxtxf", "rates_bxtxd", "gen_states_bxtxg", "gen_ics_bxg",
            "co_post_mean_bxtxu", "co_post_logvar_bxtxu", "ic_post_mean_bxz",
            "ic_post_logvar_bxz", "log_p_xgz_b", "kl_ic_b"]
    for i in range(10):
        single = model.forward("ds", x[i:i + 1], None, tf.random.Generator.from_seed(1),
                               "posterior_mean")
        for k in keys:
            _close(getattr(single, k)[0], getattr(together, k)[i].numpy().astype(np.float64),
                   atol=1e-4 if k == "log_p_xgz_b" else ATOL, msg="%s trial %d" % (k, i))


# ------------------------------------------------------------------ §6 costs
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
    """§15: 0.5*2000*sum||v||^2 over gen tensors / (numel gen + numel con)."""
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
    # kl_ic includes its weight (§6.1)
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


# ------------------------------------------------------------------ §6.2 ramps
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


# ------------------------------------------------------------------ §8.4 plateau rule
def test_plateau_rule_first_decay_needs_more_than_n_costs():
    n = 3
    # three (== n) recorded costs: never a decay, however large the current one
    decay, hist = loop.plateau_rule([1.0, 1.0, 1.0], 100.0, n)
    assert not decay and hist == [1.0, 1.0, 1.0, 100.0]
    # four costs; current greater than the max of the LAST n -> decay, +inf appended
    decay, hist = loop.plateau_rule([100.0, 1.0, 2.0, 3.0], 3.5, n)
    assert decay and hist[:4] == [100.0, 1.0, 2.0, 3.0] and hist[4] == np.inf
    # equal to the max is not greater
    decay, hist = loop.plateau_rule([100.0, 1.0, 2.0, 3.0], 3.0, n)
    assert not decay and hist[-1] == 3.0


def test_plateau_rule_decays_are_n_plus_1_epochs_apart():
    n = 3
    hist, decays = [], []
    for epoch in range(16):
        decay, hist = loop.plateau_rule(hist, float(epoch + 1), n)  # rising cost
        if decay:
            decays.append(epoch)
    assert decays == [4, 8, 12]
    # falling costs never decay
    hist = []
    for epoch in range(20):
        decay, hist = loop.plateau_rule(hist, 100.0 - epoch, n)
        assert not decay


# ------------------------------------------------------------------ §8.6 spike jitter
def test_jitter_spikes_preserves_totals_and_moves_spikes():
    rs = np.random.RandomState(0)
    counts = rs.poisson(0.8, size=(6, 20, 7))
    out = loop.jitter_spikes(counts, 3, np.random.RandomState(1))
    assert out.shape == counts.shape
    np.testing.assert_array_equal(out.sum(axis=1), counts.sum(axis=1))
    assert np.all(out >= 0) and np.all(out == np.round(out))
    assert not np.array_equal(out, counts)
    # a width larger than the trial still preserves totals
    out = loop.jitter_spikes(counts[:, :4], 9, np.random.RandomState(2))
    np.testing.assert_array_equal(out.sum(axis=1), counts[:, :4].sum(axis=1))


def test_jitter_spikes_shifts_stay_within_width():
    w, T, n = 2, 12, 3000
    rs = np.random.RandomState(3)
    t0 = rs.randint(0, T, size=n)
    counts = np.zeros((n, T, 1), np.int32)
    counts[np.arange(n), t0, 0] = 1
    out = loop.jitter_spikes(counts, w, np.random.RandomState(4))
    t1 = out[:, :, 0].argmax(axis=1)
    assert np.all(out.sum(axis=(1, 2)) == 1)
    shift = t1 - t0
    assert np.all(np.abs(shift) <= w)
    interior = (t0 >= w) & (t0 <= T - 1 - w)
    seen = set(shift[interior].tolist())
    assert set(range(-w, w)) <= seen <= set(range(-w, w + 1))
    # edges reflect: a spike at t=0 lands in [0, w]
    assert np.all(t1[t0 == 0] <= w) and np.all(t1[t0 == T - 1] >= T - 1 - w)


# ------------------------------------------------------------------ §8.1 batching
def _split(sizes):
    return {name: {"data": np.zeros((n, 2, 1), np.float32)} for name, n in sizes.items()}


def test_epoch_batches_cover_every_trial_with_distinct_padding():
    B = 5
    sizes = {"a": 23, "b": 16, "c": 15}
    batches = loop.epoch_batches(_split(sizes), B, np.random.RandomState(0))
    assert len(batches) == sum(-(-n // B) for n in sizes.values())  # 5 + 4 + 3
    for name, n in sizes.items():
        rows = [idx for nm, idx in batches if nm == name]
        assert all(len(r) == B for r in rows)
        idx = np.concatenate(rows)
        assert idx.dtype.kind == "i" and idx.min() >= 0 and idx.max() < n
        counts = np.bincount(idx, minlength=n)
        assert counts.min() >= 1                        # every trial at least once
        assert counts.max() <= 2                        # repeats are distinct trials
        assert (counts == 2).sum() == (-n) % B          # exactly B - (n mod B) extras
        assert len(idx) % B == 0


def test_epoch_batches_are_single_dataset_and_deterministic():
    split = _split({"a": 23, "b": 16})
    a = loop.epoch_batches(split, 4, np.random.RandomState(9))
    b = loop.epoch_batches(split, 4, np.random.RandomState(9))
    assert [(n, list(i)) for n, i in a] == [(n, list(i)) for n, i in b]
    c = loop.epoch_batches(split, 4, np.random.RandomState(10))
    assert [(n, list(i)) for n, i in a] != [(n, list(i)) for n, i in c]
    for name, idx in a:
        assert name in ("a", "b")
        assert idx.max() < (23 if name == "a" else 16)
    # batches of the datasets are interleaved in some epoch (not all a's then all b's)
    interleaved = False
    for seed in range(10):
        names = [n for n, _ in loop.epoch_batches(split, 4, np.random.RandomState(seed))]
        changes = sum(x != y for x, y in zip(names, names[1:]))
        interleaved |= changes > 1
    assert interleaved


# ------------------------------------------------------------------ §8.5 csv line
def _tokens(line):
    return [t.strip() for t in line.strip().split(",")]


def test_csv_line_tokens_with_validation():
    tr = {"total": 123.456, "recon": 100.0, "kl": 20.123}
    va = {"total": 130.0, "recon": 110.555, "kl": 19.994}
    line = loop.csv_line(7, 420, tr, va, 0.1234567, 0.25, 0.5)
    assert line.endswith("\n") and line.count("\n") == 1
    assert _tokens(line) == [
        "epoch", "7", "step", "420", "total", "123.46", "130.00", "recon", "100.00",
        "110.56", "kl", "20.12", "19.99", "l2", "0.12346", "klweight", "0.25",
        "l2weight", "0.50"]


def test_csv_line_tokens_without_validation():
    tr = {"total": 1.0, "recon": 2.0, "kl": 3.0}
    line = loop.csv_line(0, 9, tr, None, 4.0, 1.0, 0.0)
    assert _tokens(line) == ["epoch", "0", "step", "9", "total", "1.00", "recon", "2.00",
                             "kl", "3.00", "l2", "4.00000", "klweight", "1.00",
                             "l2weight", "0.00"]


# ------------------------------------------------------------------ §15 parameter counts
@pytest.mark.parametrize("flags,count", [
    ([], 620044),
    (["--factors_dim=20"], 603574),
    (["--co_dim=0", "--factors_dim=20"], 309338),
])
def test_trainable_parameter_counts(flags, count):
    hps = make_hps(flags, {"ds": {"data_dim": 50, "num_steps": 10}})
    model = lfads.LFADS(hps, {"ds": {"data_dim": 50}}, init_seed=0)
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == count
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables_to_train()) == count


# ------------------------------------------------------------------ §4.14 names
def _expected_inventory():
    """Spec §4.14 for TINY + co_dim=2, one dataset 'ds' (D=5), identity read-in."""
    D, Eic, Eci, Z, U, C, G, F = 5, 4, 3, 3, 2, 5, 4, 3
    inv = {}
    for kind, E in (("ic", Eic), ("ci", Eci)):
        for d in ("fwd", "rev"):
            s = "LFADS/%s_enc_%s/" % (kind, d)
            inv[s + "%s_enc_t0_%s" % (kind, d)] = (1, E)
            inv[s + "GRU/Gates/xh_2_ru/W"] = (D + E, 2 * E)
            inv[s + "GRU/Gates/xh_2_ru/b"] = (1, 2 * E)
            inv[s + "GRU/Candidate/xrh_2_c/W"] = (D + E, E)
            inv[s + "GRU/Candidate/xrh_2_c/b"] = (1, E)
    inv["LFADS/z/prior_g0/mean"] = (1, Z)
    inv["LFADS/z/prior_g0/logvar"] = (1, Z)
    for p in ("mean", "logvar"):
        inv["LFADS/z/ic_enc_2_post_g0/%s/W" % p] = (2 * Eic, Z)
        inv["LFADS/z/ic_enc_2_post_g0/%s/b" % p] = (1, Z)
        inv["LFADS/con/con_to_post_co/%s/W" % p] = (C, U)
        inv["LFADS/con/con_to_post_co/%s/b" % p] = (1, U)
    inv["LFADS/z/u_prior_ar1/logevars"] = (1, U)
    inv["LFADS/z/u_prior_ar1/logatau"] = (1, U)
    inv["LFADS/con/c0"] = (1, C)
    for scope, n, n_in in (("con", C, 2 * Eci + F), ("gen", G, U)):
        s = "LFADS/%s/GenGRU/" % scope
        inv[s + "Gates/x_2_ru/W"] = (n_in, 2 * n)
        inv[s + "Gates/h_2_ru/W"] = (n, 2 * n)
        inv[s + "Gates/h_2_ru/b"] = (1, 2 * n)
        inv[s + "Candidate/x_2_c/W"] = (n_in, n)
        inv[s + "Candidate/rh_2_c/W"] = (n, n)
        inv[s + "Candidate/rh_2_c/b"] = (1, n)
    inv["LFADS/gen/g0_2_gen_ic/W"] = (Z, G)
    inv["LFADS/gen/g0_2_gen_ic/b"] = (1, G)
    inv["LFADS/gen/gen_2_fac/W"] = (G, F)
    inv["LFADS/glm/fac_2_logrates_ds/W"] = (F, D)
    inv["LFADS/glm/fac_2_logrates_ds/b"] = (1, D)
    return inv


def test_variable_names_and_shapes_follow_original_inventory():
    _, model = make_model(TINY + ["--co_dim=2"], perturb=0)
    names = [v.name for v in model.variables]
    assert len(names) == len(set(names)), "duplicate variable names"
    assert all(n.endswith(":0") for n in names)
    got = {v.name[:-2]: tuple(v.shape) for v in model.variables}
    assert got == _expected_inventory()
    assert "LFADS/gen/GenGRU/Gates/h_2_ru/W" in got
    trainable = {v.name[:-2] for v in model.trainable_variables}
    assert set(got) - trainable == {"LFADS/z/prior_g0/logvar"}
    # no read-in for a single dataset without alignment
    assert not any("x_2_infac" in n for n in got)
    assert model.variables_by_name().keys() == got.keys()


def test_variable_names_unique_in_every_forward_config():
    for flags in FORWARD_CONFIGS.values():
        _, model = make_model(TINY + flags, perturb=0)
        names = [v.name for v in model.variables]
        assert len(names) == len(set(names)), flags
        assert all(re.match(r"^LFADS/[A-Za-z0-9_/]+:0$", n) for n in names), names


# ------------------------------------------------------------------ §4.4 read-in / read-out
def _alignment(seed=0):
    rs = np.random.RandomState(seed)
    return {"a": {"data_dim": 5, "alignment_matrix_cxf": rs.randn(5, 3),
                  "alignment_bias_c": rs.randn(5)},
            "b": {"data_dim": 4, "alignment_matrix_cxf": rs.randn(4, 3),
                  "alignment_bias_c": None}}


def test_multi_dataset_readin_and_readout_from_alignment():
    info = _alignment()
    _, model = make_model(TINY + ["--co_dim=2"], info=info, perturb=0)
    P = params_of(model)
    ma, ba = info["a"]["alignment_matrix_cxf"], info["a"]["alignment_bias_c"]
    mb = info["b"]["alignment_matrix_cxf"]
    _close(P["LFADS/x_2_infac_a/W"], ma, rtol=1e-6)
    _close(P["LFADS/x_2_infac_a/b"], -(ba[None, :] @ ma), rtol=1e-6)
    _close(P["LFADS/glm/fac_2_logrates_a/W"], ma.T, rtol=1e-6)
    _close(P["LFADS/glm/fac_2_logrates_a/b"], ba[None, :], rtol=1e-6)
    _close(P["LFADS/x_2_infac_b/W"], mb, rtol=1e-6)
    _close(P["LFADS/x_2_infac_b/b"], np.zeros((1, 3)))
    _close(P["LFADS/glm/fac_2_logrates_b/W"], mb.T, rtol=1e-6)
    # b has no bias of its own: it does not inherit a's (the original's Q6 leak)
    _close(P["LFADS/glm/fac_2_logrates_b/b"], np.zeros((1, 4)))
    # the read-in realises (x - bias) W
    x = np.random.RandomState(1).randn(2, 6, 5)
    _close(model.readinout.readins["a"](tf.constant(x, tf.float32)), (x - ba) @ ma, atol=1e-4)
    # the encoders see F = 3 input factors
    assert P["LFADS/ic_enc_fwd/GRU/Gates/xh_2_ru/W"].shape == (3 + 4, 8)
    for name, D in (("a", 5), ("b", 4)):
        x = np.random.RandomState(2).poisson(1.0, size=(2, T_STEPS, D))
        out = model.forward(name, x, None, tf.random.Generator.from_seed(0),
                            "posterior_mean")
        assert out.rates_bxtxd.shape == (2, T_STEPS, D)


def test_forward_multi_dataset_matches_numpy():
    info = _alignment(3)
    hps, model = make_model(TINY + ["--co_dim=2"], info=info)
    for name, D in (("a", 5), ("b", 4)):
        x = np.random.RandomState(4).poisson(1.0, size=(3, T_STEPS, D)).astype(np.int32)
        out = model.forward(name, x, None, tf.random.Generator.from_seed(0),
                            "posterior_mean")
        ref = np_forward_posterior_mean(params_of(model), hps, name, x, None)
        for key in ("factors_bxtxf", "rates_bxtxd", "co_post_mean_bxtxu", "ic_post_mean_bxz"):
            _close(getattr(out, key), ref[key], msg="%s %s" % (name, key))
        _close(out.log_p_xgz_b, ref["log_p_xgz_b"], atol=2e-4)


def test_single_dataset_with_alignment_has_learned_readin():
    rs = np.random.RandomState(5)
    m = rs.randn(5, 3)
    _, model = make_model(TINY + ["--co_dim=0"],
                          info={"ds": {"data_dim": 5, "alignment_matrix_cxf": m}}, perturb=0)
    P = params_of(model)
    _close(P["LFADS/x_2_infac_ds/W"], m, rtol=1e-6)
    _close(P["LFADS/x_2_infac_ds/b"], np.zeros((1, 3)))
    _close(P["LFADS/glm/fac_2_logrates_ds/W"], m.T, rtol=1e-6)
    assert P["LFADS/ic_enc_fwd/GRU/Gates/xh_2_ru/W"].shape == (3 + 4, 8)


def test_gaussian_readout_init():
    info = {"ds": {"data_dim": 3}}
    _, model = make_model(["--output_dist=gaussian", "--co_dim=0", "--ic_dim=3",
                           "--factors_dim=3", "--gen_dim=4", "--ic_enc_dim=4"],
                          info=info, perturb=0)
    P = params_of(model)
    # F == D but the identity shortcut is not allowed for Gaussian means
    assert P["LFADS/glm/fac_2_means_ds/W"].shape == (3, 3)
    assert P["LFADS/glm/fac_2_means_ds/W"].std() > 0.1
    _close(P["LFADS/glm/fac_2_means_ds/b"], np.zeros((1, 3)))
    _close(P["LFADS/glm/fac_2_logvars_ds/W"], np.zeros((3, 3)))
    _close(P["LFADS/glm/fac_2_logvars_ds/b"], np.ones((1, 3)))


# ------------------------------------------------------------------ §7.2 variable selection
def _names(vs):
    return {v.name[:-2] for v in vs}


def test_train_io_only_selects_readins_and_readouts():
    info = _alignment()
    _, model = make_model(TINY + ["--co_dim=2", "--do_train_io_only=true"], info=info,
                          perturb=0)
    assert _names(model.trainable_variables_to_train()) == {
        "LFADS/x_2_infac_a/W", "LFADS/x_2_infac_a/b", "LFADS/x_2_infac_b/W",
        "LFADS/x_2_infac_b/b", "LFADS/glm/fac_2_logrates_a/W",
        "LFADS/glm/fac_2_logrates_a/b", "LFADS/glm/fac_2_logrates_b/W",
        "LFADS/glm/fac_2_logrates_b/b"}
    # io_only wins over encoder_only
    _, model = make_model(TINY + ["--co_dim=2", "--do_train_io_only=true",
                                  "--do_train_encoder_only=true"], info=info, perturb=0)
    assert all("glm" in n or "x_2_infac" in n
               for n in _names(model.trainable_variables_to_train()))


def test_train_io_only_without_readin_training():
    info = _alignment()
    _, model = make_model(TINY + ["--co_dim=2", "--do_train_io_only=true",
                                  "--do_train_readin=false"], info=info, perturb=0)
    assert _names(model.trainable_variables_to_train()) == {
        "LFADS/glm/fac_2_logrates_a/W", "LFADS/glm/fac_2_logrates_a/b",
        "LFADS/glm/fac_2_logrates_b/W", "LFADS/glm/fac_2_logrates_b/b"}
    readin = {n for n in params_of(model) if "x_2_infac" in n}
    assert len(readin) == 4
    assert not readin & _names(model.trainable_variables)
    # and the full selection excludes them too
    _, model = make_model(TINY + ["--co_dim=2", "--do_train_readin=false"], info=info,
                          perturb=0)
    assert not readin & _names(model.trainable_variables_to_train())


def test_train_encoder_only_selects_ic_encoder_and_posterior():
    info = _alignment()
    _, model = make_model(TINY + ["--co_dim=2", "--do_train_encoder_only=true"], info=info,
                          perturb=0)
    got = _names(model.trainable_variables_to_train())
    expected = set()
    for d in ("fwd", "rev"):
        s = "LFADS/ic_enc_%s/" % d
        expected |= {s + "ic_enc_t0_" + d, s + "GRU/Gates/xh_2_ru/W",
                     s + "GRU/Gates/xh_2_ru/b", s + "GRU/Candidate/xrh_2_c/W",
                     s + "GRU/Candidate/xrh_2_c/b"}
    for p in ("mean", "logvar"):
        expected |= {"LFADS/z/ic_enc_2_post_g0/%s/W" % p, "LFADS/z/ic_enc_2_post_g0/%s/b" % p}
    assert got == expected


def test_default_selection_is_all_trainable_variables():
    _, model = make_model(TINY + ["--co_dim=2"], info=_alignment(), perturb=0)
    got = _names(model.trainable_variables_to_train())
    assert got == _names(model.trainable_variables)
    assert "LFADS/z/prior_g0/logvar" not in got       # fixed prior variance
    assert "LFADS/x_2_infac_a/W" in got and "LFADS/ci_enc_rev/ci_enc_t0_rev" in got


@pytest.mark.parametrize("signature", [[None, 7, 5], [4, 7, 5], [None, None, 5],
                                       [None, 6, 7, 5]])
def test_matmul_last_matches_numpy_with_unknown_dims(signature):
    """x [..., n] @ w [n, m] under a trace where some leading dims are unknown (the
    batch, or more: the static-shape and the tf.shape path)."""
    rs = np.random.RandomState(0)
    shape = [4 if d is None else d for d in signature]
    x = rs.standard_normal(shape).astype(np.float32)
    w = rs.standard_normal((5, 3)).astype(np.float32)
    fn = tf.function(lambda x: layers.matmul_last(x, tf.constant(w)), autograph=False,
                     input_signature=[tf.TensorSpec(signature, tf.float32)])
    out = fn(x).numpy()
    assert out.shape == tuple(shape[:-1]) + (3,)
    np.testing.assert_allclose(out, x @ w, rtol=1e-5, atol=1e-5)
    if signature[0] is not None:
        return
    # an empty batch keeps its shape
    empty = fn(np.zeros([0] + shape[1:], np.float32)).numpy()
    assert empty.shape == (0,) + tuple(shape[1:-1]) + (3,)


def test_with_forget_bias_adds_to_the_update_half_only():
    b = tf.constant(np.arange(6, dtype=np.float32).reshape(1, 6))
    np.testing.assert_array_equal(layers.with_forget_bias(b, 1.5).numpy(),
                                  [[0, 1, 2, 4.5, 5.5, 6.5]])
