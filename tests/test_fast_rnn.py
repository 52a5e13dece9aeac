"""The fused recurrences (fast_rnn) give the same values and gradients as the autodiff
ones (element-wise cells with TensorFlow's automatic gradients), in every mode that
uses them: LFADS(..., rnn="fused") against LFADS(..., rnn="autodiff")."""
import numpy as np
import pytest
import tensorflow as tf

import lfads
from lfads_tf2.train import hparams

T, D = 7, 6


def _model(argv, seed=0, rnn="fused"):
    sizes = ["--ic_dim=3", "--ic_enc_dim=5", "--ci_enc_dim=4", "--con_dim=5", "--gen_dim=6",
             "--factors_dim=3", "--cell_clip_value=0.25", "--seed=%d" % seed]
    # later flags win: a config may override the sizes
    hps = hparams.hps_from_argv(sizes + argv)
    datasets = {"d": {"data_dim": D, "num_steps": T}}
    hparams.add_derived_hps(hps, datasets)
    return hps, lfads.LFADS(hps, {"d": {"data_dim": D}}, init_seed=seed, rnn=rnn)


def _models(argv):
    """(hps, [fused model, autodiff model]) with the same initial weights."""
    hps, fused = _model(argv)
    return hps, [fused, _model(argv, rnn="autodiff")[1]]


def _values_and_grads(model, mode, data, ext):
    rng = tf.random.Generator.from_seed(5)
    with tf.GradientTape() as tape:
        out = model.forward("d", data, ext, rng, mode, keep_prob=0.8)
        costs = model.costs(out, tf.constant(10, tf.int64))
        # weight the outputs so every one of them gets a distinct gradient
        loss = tf.reduce_mean(costs.total) + tf.reduce_sum(tf.sin(out.factors_bxtxf))
        loss += tf.reduce_sum(tf.cos(out.gen_states_bxtxg))
        if out.co_bxtxu is not None:
            loss += tf.reduce_sum(tf.sin(out.co_bxtxu))
    variables = model.trainable_variables
    grads = tape.gradient(loss, variables)
    return loss.numpy(), out, {v.name: g for v, g in zip(variables, grads)}


CONFIGS = {
    "controller": ["--co_dim=2"],
    "controller_lag0_causal": ["--co_dim=1", "--controller_input_lag=0",
                               "--do_causal_controller=true"],
    "controller_no_feedback": ["--co_dim=2", "--do_feed_factors_to_controller=false"],
    "no_controller": ["--co_dim=0"],
    "ext_to_gen": ["--co_dim=1", "--ext_input_dim=2", "--inject_ext_input_to_gen=true"],
    "ext_to_gen_no_con": ["--co_dim=0", "--ext_input_dim=2",
                          "--inject_ext_input_to_gen=true"],
    "ext_to_enc": ["--co_dim=1", "--ext_input_dim=2"],
    # equal encoder sizes: all four encoders run as one stacked cell
    "encoders_stacked": ["--co_dim=1", "--ic_enc_dim=4"],
    # the IC encoder reads fewer steps than the CI encoder: two encoder loops
    "ic_steps_fewer": ["--co_dim=1", "--num_steps_for_gen_ic=4", "--cell_clip_value=0.05"],
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
@pytest.mark.parametrize("mode", ["train", "posterior_sample", "posterior_mean"])
def test_fused_equals_autodiff(config, mode):
    hps, models = _models(CONFIGS[config])
    out_r = _assert_fused_equals_autodiff(hps, models, mode)
    clipped = np.mean(np.abs(out_r.gen_states_bxtxg.numpy()) >= hps.cell_clip_value - 1e-6)
    assert clipped > 0.0, "the test should exercise the state clipping"


@pytest.mark.parametrize("mode", ["train", "posterior_mean"])
def test_fused_equals_autodiff_when_only_the_first_step_clips(mode):
    """With a clip >= 1 a GRU state can only be clipped at step 0, coming from an
    initial state beyond the clip; the fast backward loops then apply the clip's
    gradient masks at step 0 alone. Initial states are pushed beyond the clip here."""
    hps, models = _models(["--co_dim=2", "--cell_clip_value=1.0", "--ic_enc_dim=4"])
    beyond = np.where(np.arange(4) % 2 == 0, 3.0, -0.5).astype(np.float32)[None]
    for model in models:
        ic, ci = model.ic_encoder, model.ci_encoder
        for var in (ic.ic_enc_t0_fwd, ic.ic_enc_t0_rev, ci.ci_enc_t0_fwd, ci.ci_enc_t0_rev):
            var.assign(beyond)
        con_c0 = model.generator.con_c0
        con_c0.assign(np.full(con_c0.shape, -2.0, np.float32))
        b = model.initial_state.g0_2_gen_ic.b
        b.assign(b + np.where(np.arange(b.shape[1]) % 2 == 0, 4.0, 0.0).astype(np.float32))
    out_r = _assert_fused_equals_autodiff(hps, models, mode)
    gen = np.abs(out_r.gen_states_bxtxg.numpy())
    assert np.any(gen[:, 0] >= 1.0 - 1e-6), "step 0 should clip"
    assert np.all(gen[:, 1:] <= 1.0)


def _assert_fused_equals_autodiff(hps, models, mode):
    """Values and gradients of the fused loops equal the autodiff ones; returns the
    autodiff output."""
    rs = np.random.RandomState(1)
    data = rs.poisson(1.5, size=(4, T, D)).astype(np.float32)
    ext = rs.randn(4, T, 2).astype(np.float32) if hps.ext_input_dim else None
    loss_f, out_f, grads_f = _values_and_grads(models[0], mode, data, ext)
    loss_r, out_r, grads_r = _values_and_grads(models[1], mode, data, ext)
    np.testing.assert_allclose(out_f.gen_states_bxtxg, out_r.gen_states_bxtxg,
                               rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out_f.factors_bxtxf, out_r.factors_bxtxf, rtol=1e-5,
                               atol=1e-5)
    np.testing.assert_allclose(loss_f, loss_r, rtol=1e-5)
    for name, g_r in grads_r.items():
        g_f = grads_f[name]
        if g_r is None:
            assert g_f is None or np.allclose(g_f, 0.0), name
            continue
        g_r = tf.convert_to_tensor(g_r).numpy()
        g_f = tf.convert_to_tensor(g_f).numpy()
        scale = max(1.0, np.abs(g_r).max())
        np.testing.assert_allclose(g_f, g_r, rtol=1e-4, atol=1e-4 * scale, err_msg=name)
    return out_r


def test_prior_sample_fused_equals_autodiff():
    _, models = _models(["--co_dim=2"])
    outs = []
    for model in models:
        rng = tf.random.Generator.from_seed(3)
        outs.append(model.forward("d", None, None, rng, "prior_sample", batch_size=5))
    np.testing.assert_allclose(outs[0].gen_states_bxtxg, outs[1].gen_states_bxtxg,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(outs[0].co_bxtxu, outs[1].co_bxtxu, rtol=1e-6)
