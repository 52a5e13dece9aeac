"""The tiny model of the equation tests, and a float64 NumPy reference of its equations.

The reference is written independently in NumPy from the original LFADS
(tensorflow/models research/lfads: lfads.py, distributions.py): the encoder GRU and
the GenGRU cells, the KL terms and the whole forward pass. The tests compare the model
with it on tiny sizes. `make_model` perturbs every variable first (biases, initial
states and prior means start at zero and would otherwise hide mistakes in how they are
used); `RecordingRng` keeps the model's random draws, so that the reference can use the
same noise.
"""
import math

import numpy as np
import tensorflow as tf

import lfads
from lfads_tf2.train import hparams


RTOL = 1e-5

ATOL = 1e-5

LOG_2PI = math.log(2.0 * math.pi)

lgamma = np.vectorize(math.lgamma, otypes=[np.float64])

# Tiny sizes: Eic=4, Eci=3, Z=3, F=3, G=4, C=5; data D=5, T=6 unless stated.
TINY = ["--ic_dim=3", "--factors_dim=3", "--gen_dim=4", "--con_dim=5",
        "--ci_enc_dim=3", "--ic_enc_dim=4"]

T_STEPS = 6

D_CH = 5


def assert_close(actual, expected, rtol=RTOL, atol=ATOL, msg=""):
    np.testing.assert_allclose(np.asarray(actual, np.float64), expected,
                               rtol=rtol, atol=atol, err_msg=msg)


def make_hps(argv, datasets=None):
    datasets = datasets or {"ds": {"data_dim": D_CH, "num_steps": T_STEPS}}
    hps = hparams.hps_from_argv(list(argv))
    return hparams.add_derived_hps(hps, datasets)


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


# Architectures the forward-pass tests run (and the variable-name test builds).
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


# ------------------------------------------------------------------ NumPy reference
def np_encoder_gru(P, scope, x_bxtxk, h0_1xn, clip, reverse=False):
    """The original's encoder GRU: one joint [x, h] matrix each for the gates and the
    candidate; states indexed by absolute time."""
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
    """The original's GenGRU (controller and generator): separate input (no bias) and
    recurrent (with bias) matrices."""
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
    """The whole LFADS forward pass, as the original's lfads.py builds it.

    fp_bins: forward bins, the generator runs T + fp_bins steps with zero encoder and
    external inputs after T (the masks "con" and "gen" and co_noise then cover T +
    fp_bins steps); recon: the likelihood's target [B, T + fp_bins, N] (default x).

    Default: g0 and u_t at their posterior means (co_noise only enters the KL).
    sample=True: u_t = mean + exp(logvar/2) * co_noise; g0 likewise when
    g0_noise_bxz is given. masks: inverted-dropout multipliers by place
    ("data" [B,T,D], "ext" [B,T,I], "ic_enc" [B,2Eic], "con" [B,T,Cin],
    "gen" [B,T,G]: the five places the original drops); missing places are not
    dropped.
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

    # read-in (identity when the model has no read-in variables)
    ri = "LFADS/x_2_infac_%s" % name
    enc_in = x_do @ P[ri + "/W"] + P[ri + "/b"] if ri + "/W" in P else x_do
    if I > 0 and not hps.inject_ext_input_to_gen:
        enc_in = np.concatenate([enc_in, ext], axis=-1)

    # IC encoder, g0 posterior and prior
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

    # read-out
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

    # controller inputs
    feed = U > 0 and hps.do_feed_factors_to_controller
    if U > 0:
        lag = hps.controller_input_lag
        ci_f = np_encoder_gru(P, "LFADS/ci_enc_fwd", enc_in,
                              P["LFADS/ci_enc_fwd/ci_enc_t0_fwd"], clip)
        if not hps.do_causal_controller:
            ci_r = np_encoder_gru(P, "LFADS/ci_enc_rev", enc_in,
                                  P["LFADS/ci_enc_rev/ci_enc_t0_rev"], clip, reverse=True)
        con = np.repeat(P["LFADS/con/c0"], B, axis=0)
        if feed:  # "t = -1" value from the initial state: the original does not clip
            # these rates (nor drop out these factors)
            fb = feedback(gen_ic @ w_fac, clip_rates=False)

    # the controller/generator loop
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
        loglik = x * logr - np.exp(logr) - lgamma(x + 1.0)
    res["log_p_xgz_b"] = loglik.sum(axis=(1, 2))

    if U > 0:
        m, lv = np.stack(co_m, axis=1), np.stack(co_lv, axis=1)
        co = m + np.exp(0.5 * lv) * co_noise_bxtxu if sample else m
        res.update(co_bxtxu=co, co_post_mean_bxtxu=m, co_post_logvar_bxtxu=lv)
        if co_noise_bxtxu is not None:
            # one-sample KL at z = m + exp(lv/2) eps vs the AR(1) prior (the original's
            # distributions.KLCost_GaussianGaussianProcessSampled)
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
