"""The encoders' fused loop (encoders.run_fused) against a NumPy loop of encoder GRU
steps: cells of several sizes, and equal cells stacked into one."""
import numpy as np
import tensorflow as tf

from lfads_tf2.model import encoders, layers
from lfads_reference import assert_close as _close, np_encoder_gru_w


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
