"""Adam as TF1's AdamOptimizer: the update against a NumPy reference, and the names."""
import numpy as np
import tensorflow as tf

from lfads_tf2.train.optimizer import Adam


def numpy_adam(w, grads, lr, beta1=0.9, beta2=0.999, eps=0.1):
    """TF1's AdamOptimizer, step by step: returns w, m, v after len(grads) steps.

    1 - beta is taken in float32, as TF1's kernel takes it (1 - 0.999 is then
    0.00099998713, a relative 1.3e-5 from 0.001: visible in v)."""
    one_minus_b1 = float(np.float32(1) - np.float32(beta1))
    one_minus_b2 = float(np.float32(1) - np.float32(beta2))
    m, v = np.zeros_like(w), np.zeros_like(w)
    b1p, b2p = beta1, beta2
    for g in grads:
        lr_t = lr * np.sqrt(1 - b2p) / (1 - b1p)
        m = m + (g - m) * one_minus_b1
        v = v + (g * g - v) * one_minus_b2
        w = w - lr_t * m / (np.sqrt(v) + eps)  # epsilon outside the square root
        b1p, b2p = b1p * beta1, b2p * beta2
    return w, m, v


def test_three_compiled_steps_match_numpy_reference():
    rs = np.random.RandomState(3)
    w0 = rs.standard_normal((4, 3)).astype(np.float32)
    b0 = rs.standard_normal(3).astype(np.float32)
    grads = [(rs.standard_normal((4, 3)).astype(np.float32),
              rs.standard_normal(3).astype(np.float32)) for _ in range(3)]
    with tf.name_scope("LFADS"):
        w = tf.Variable(w0, name="gen/W")
        b = tf.Variable(b0, name="gen/b")
    lr = tf.Variable(0.01, trainable=False)
    opt = Adam([w, b], lr)

    # as the training step calls it: compiled, inside a cond
    @tf.function(autograph=False)
    def step(gw, gb):
        def apply():
            opt.apply([(gw, w), (gb, b)])
            return tf.constant(True)
        return tf.cond(tf.constant(True), apply, lambda: tf.constant(False))

    for gw, gb in grads:
        step(gw, gb)
    ref_w, ref_m, ref_v = numpy_adam(w0, [g[0] for g in grads], 0.01)
    ref_b, _, _ = numpy_adam(b0, [g[1] for g in grads], 0.01)
    np.testing.assert_allclose(w.numpy(), ref_w, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(b.numpy(), ref_b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(opt.m["LFADS/gen/W"].numpy(), ref_m, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(opt.v["LFADS/gen/W"].numpy(), ref_v, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(opt.beta1_power.numpy(), 0.9 ** 4, rtol=1e-6)
    np.testing.assert_allclose(opt.beta2_power.numpy(), 0.999 ** 4, rtol=1e-6)
    # a step really moved the weights (the reference is not the start)
    assert np.abs(ref_w - w0).max() > 1e-3


def test_learning_rate_variable_is_read_at_each_step():
    w = tf.Variable(np.ones(2, np.float32), name="w")
    lr = tf.Variable(0.01, trainable=False)
    opt = Adam([w], lr)
    g = np.array([1.0, -2.0], np.float32)
    opt.apply([(g, w)])
    lr.assign(0.0)
    before = w.numpy()
    opt.apply([(g, w)])
    np.testing.assert_array_equal(w.numpy(), before)


def test_slots_carry_the_original_names():
    with tf.name_scope("LFADS"):
        w = tf.Variable(np.zeros(2, np.float32), name="gen/W")
    opt = Adam([w], 0.01)
    assert opt.m["LFADS/gen/W"].name == "LFADS/LFADS/gen/W/Adam:0"
    assert opt.v["LFADS/gen/W"].name == "LFADS/LFADS/gen/W/Adam_1:0"
    assert opt.beta1_power.name == "LFADS/beta1_power:0"
