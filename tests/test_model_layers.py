"""The layers against NumPy on tiny sizes: Linear (initialisation, the identity
shortcut, normalised columns), one step of the encoder GRU and of the GenGRU with their
initial scales, and the matmul and forget-bias helpers the cells use."""
import math

import numpy as np
import pytest
import tensorflow as tf

from lfads_tf2.model import layers
from lfads_reference import assert_close as _close, np_encoder_gru_step, np_gengru_step


# ------------------------------------------------------------------ Linear
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


# ------------------------------------------------------------------ EncoderGRU
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
    """Gate weights use weight_scale/sqrt(n_x+n); candidate weights alpha=1: the
    original builds them with linear's default alpha, so cell_weight_scale does
    not reach them."""
    cell = layers.EncoderGRU(150, 250, "e", np.random.RandomState(0), weight_scale=3.0,
                            clip_value=5.0)
    assert cell.gates.W.numpy().std() == pytest.approx(3.0 / 20.0, rel=0.01)
    assert cell.candidate.W.numpy().std() == pytest.approx(1.0 / 20.0, rel=0.01)
    assert not np.any(cell.gates.b.numpy()) and not np.any(cell.candidate.b.numpy())


# ------------------------------------------------------------------ GenGRU
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


# ------------------------------------------------------------------ matmul and forget-bias helpers
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
