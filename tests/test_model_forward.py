"""The whole forward pass against the NumPy reference (tests/lfads_reference.py): at the
posterior means for six architectures, in training and posterior sampling with the
model's own dropout masks and noise, sampling from the prior, the identity read-out, and
each trial's result not depending on the rest of its batch."""
import numpy as np
import pytest
import tensorflow as tf

from lfads_reference import (ATOL, D_CH, FORWARD_CONFIGS, RTOL, T_STEPS, TINY,
                             RecordingRng, assert_close as _close, make_inputs, make_model,
                             normalize_columns, np_forward_posterior_mean, np_gengru_step,
                             params_of)


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
    """train: dropout at the five places the original drops (data, external
    inputs, IC encoding, controller inputs, generator states) + posterior samples;
    the masks and the noise are taken from the (recorded) generator and fed to the
    reference."""
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
