"""The encoders and the posterior over g0.

    enc_in_bxtxk -> IC encoder (bi-GRU over the first n_ic steps) -> q(g0 | x)
                 -> CI encoder (bi-GRU, or forward only) -> lagged controller inputs

Two implementations of the recurrences give the same numbers: `run_fused` (fast_rnn's
loops with hand-written gradients, stacking encoders of equal sizes) and
`run_autodiff` (element-wise cells in tf.scan, TensorFlow's automatic gradients).
"""
import tensorflow as tf

import distributions as dist
from lfads_tf2.model import fast_rnn
from lfads_tf2.model.layers import EncoderGRU, Linear


def run_fused(cells_and_inputs):
    """Runs EncoderGRUs over time (fast_rnn); cells of equal sizes, input lengths and
    clip values run stacked in one loop (one batched matmul per step for all).

    cells_and_inputs: list of (cell, x_bxtxk, h0_1xn). Returns, in input order,
    ([B, T, n] state sequences (state after consuming step t), [B, n] final states).
    """
    groups = {}
    for i, (cell, x, _) in enumerate(cells_and_inputs):
        groups.setdefault((cell.n_units, cell.n_in, x.shape[1], cell.clip_value),
                          []).append(i)
    states, finals = {}, {}
    for idx in groups.values():
        cells = [cells_and_inputs[i][0] for i in idx]
        T = cells_and_inputs[idx[0]][1].shape[1]
        batch = tf.shape(cells_and_inputs[idx[0]][1])[0]
        # each cell's input projection as one 2-D matmul over all steps, stacked time
        # first [T, k, B, .] (fast_rnn's layout; a batched matmul over [k, T*B, .] and
        # its gradient needed transposes that took longer than the matmuls)
        xp_ru, xp_c = [tf.stack(ps, axis=1) for ps in zip(*[
            cells_and_inputs[i][0].input_projection(
                tf.transpose(cells_and_inputs[i][1], [1, 0, 2])) for i in idx])]
        h0 = tf.stack([tf.tile(cells_and_inputs[i][2], tf.stack([batch, 1])) for i in idx])
        w_ru, w_c = [tf.stack(ws) for ws in zip(*[c.recurrent_weights() for c in cells])]
        hs_txkxbxn, final_kxbxn = fast_rnn.gru_stack(xp_ru, xp_c, h0, w_ru, w_c,
                                                     cells[0].clip_value, T)
        states.update(zip(idx, tf.unstack(tf.transpose(hs_txkxbxn, [1, 2, 0, 3]))))
        finals.update(zip(idx, tf.unstack(final_kxbxn)))
    order = range(len(cells_and_inputs))
    return [states[i] for i in order], [finals[i] for i in order]


def run_autodiff(cells_and_inputs):
    """The same as `run_fused` with element-wise cells and automatic gradients."""
    projections = [cell.input_projection(x) for cell, x, _ in cells_and_inputs]
    weights = [cell.recurrent_weights() for cell, _, _ in cells_and_inputs]
    batch = tf.shape(cells_and_inputs[0][1])[0]
    h0s = tuple(tf.tile(h0, tf.stack([batch, 1])) for _, _, h0 in cells_and_inputs)
    elems = tuple(tf.transpose(p, [1, 0, 2]) for pair in projections for p in pair)

    def step(hs, xs):
        return tuple(
            cell.step(h, xs[2 * i], xs[2 * i + 1], *weights[i])
            for i, ((cell, _, _), h) in enumerate(zip(cells_and_inputs, hs)))

    states = [tf.transpose(s, [1, 0, 2]) for s in tf.scan(step, elems, initializer=h0s)]
    return states, [s[:, -1] for s in states]


RUNNERS = {"fused": run_fused, "autodiff": run_autodiff}


def _bidirectional(fwd, rev, t0_fwd, t0_rev, x_bxtxk):
    """Encoder jobs (see run_fused) for a forward and a reverse pass over x."""
    jobs = [(fwd, x_bxtxk, t0_fwd)]
    if rev is not None:
        jobs.append((rev, tf.reverse(x_bxtxk, [1]), t0_rev))
    return jobs


class ICEncoder(tf.Module):
    """Bidirectional GRU over the first n_ic steps and the posterior q(g0 | x).

    jobs(enc_in [B, T, k]) -> encoder jobs; posterior(final states, mask) ->
    DiagonalGaussian with mean, logvar [B, Z] from concat(last fwd, last rev) [B, 2E].
    """

    def __init__(self, n_in, hps, init_rng):
        super().__init__(name=None)
        E, Z = hps.ic_enc_dim, hps.ic_dim
        cws, clip = hps.cell_weight_scale, hps.cell_clip_value
        self.n_steps = min(hps.num_steps_for_gen_ic, hps.num_steps)
        self.reads_all_steps = self.n_steps == hps.num_steps
        self.var_min = hps.ic_post_var_min
        self.ic_enc_fwd = EncoderGRU(n_in, E, "LFADS/ic_enc_fwd", init_rng, cws, clip)
        self.ic_enc_rev = EncoderGRU(n_in, E, "LFADS/ic_enc_rev", init_rng, cws, clip)
        self.ic_enc_t0_fwd = tf.Variable(tf.zeros([1, E]),
                                         name="LFADS/ic_enc_fwd/ic_enc_t0_fwd")
        self.ic_enc_t0_rev = tf.Variable(tf.zeros([1, E]),
                                         name="LFADS/ic_enc_rev/ic_enc_t0_rev")
        self.ic_post_mean = Linear(2 * E, Z, "LFADS/z/ic_enc_2_post_g0/mean", init_rng)
        self.ic_post_logvar = Linear(2 * E, Z, "LFADS/z/ic_enc_2_post_g0/logvar", init_rng)

    def jobs(self, enc_in_bxtxk):
        return _bidirectional(self.ic_enc_fwd, self.ic_enc_rev, self.ic_enc_t0_fwd,
                              self.ic_enc_t0_rev, enc_in_bxtxk[:, :self.n_steps])

    def posterior(self, finals, mask_bxe=None):
        # last forward state and last reverse state, both have seen steps 0..n-1
        ic_enc_bxe = tf.concat(finals, axis=-1)
        if mask_bxe is not None:
            ic_enc_bxe *= mask_bxe
        return dist.DiagonalGaussian(
            self.ic_post_mean(ic_enc_bxe),
            dist.logvar_with_floor(self.ic_post_logvar(ic_enc_bxe), self.var_min))


class CIEncoder(tf.Module):
    """GRU(s) over all T steps giving the controller's inputs [B, T, out_dim].

    Bidirectional unless causal; forward states at t - lag, reverse at t + lag.
    """

    def __init__(self, n_in, hps, init_rng):
        super().__init__(name=None)
        E, cws, clip = hps.ci_enc_dim, hps.cell_weight_scale, hps.cell_clip_value
        self.lag = hps.controller_input_lag
        self.ci_enc_fwd = EncoderGRU(n_in, E, "LFADS/ci_enc_fwd", init_rng, cws, clip)
        self.ci_enc_t0_fwd = tf.Variable(tf.zeros([1, E]),
                                         name="LFADS/ci_enc_fwd/ci_enc_t0_fwd")
        self.ci_enc_rev = self.ci_enc_t0_rev = None
        if not hps.do_causal_controller:
            self.ci_enc_rev = EncoderGRU(n_in, E, "LFADS/ci_enc_rev", init_rng, cws, clip)
            self.ci_enc_t0_rev = tf.Variable(tf.zeros([1, E]),
                                             name="LFADS/ci_enc_rev/ci_enc_t0_rev")
        self.out_dim = E * (1 if hps.do_causal_controller else 2)

    def jobs(self, enc_in_bxtxk):
        return _bidirectional(self.ci_enc_fwd, self.ci_enc_rev, self.ci_enc_t0_fwd,
                              self.ci_enc_t0_rev, enc_in_bxtxk)

    def inputs(self, states):
        """Controller inputs [B, T, out_dim] from the encoders' state sequences."""
        parts = [lag(states[0], self.lag, forward=True)]
        if len(states) > 1:
            rev = tf.reverse(states[1], [1])  # index by absolute time
            parts.append(lag(rev, self.lag, forward=False))
        return tf.concat(parts, axis=-1)


def lag(x_bxtxe, steps, forward):
    """Forward encoding at t-steps, or reverse encoding at t+steps; zeros outside."""
    if steps == 0:
        return x_bxtxe
    T = x_bxtxe.shape[1]
    steps = min(steps, T)
    # tf.split, not slicing: the gradient of a slice is a slow StridedSliceGrad
    if forward:
        kept, dropped = tf.split(x_bxtxe, [T - steps, steps], axis=1)
        return tf.concat([tf.zeros_like(dropped), kept], axis=1)
    dropped, kept = tf.split(x_bxtxe, [steps, T - steps], axis=1)
    return tf.concat([kept, tf.zeros_like(dropped)], axis=1)


def encode(ic_encoder, ci_encoder, enc_in_bxtxk, ic_enc_mask_bxe, rnn):
    """Runs both encoders -> (q(g0 | x) or None, controller inputs [B, T, e] or None).

    Encoders that read the same steps share one loop (one batched matmul a step).
    """
    ci_jobs = ci_encoder.jobs(enc_in_bxtxk) if ci_encoder is not None else []
    ic_jobs = ic_encoder.jobs(enc_in_bxtxk) if ic_encoder is not None else []
    same_steps = ic_encoder is None or ic_encoder.reads_all_steps
    states, finals = [], []
    for group in ([ci_jobs + ic_jobs] if same_steps else [ci_jobs, ic_jobs]):
        if group:
            group_states, group_finals = RUNNERS[rnn](group)
            states, finals = states + group_states, finals + group_finals
    ic_post = ci_bxtxe = None
    if ic_encoder is not None:
        ic_post = ic_encoder.posterior(finals[len(ci_jobs):], ic_enc_mask_bxe)
    if ci_encoder is not None:
        ci_bxtxe = ci_encoder.inputs(states[:len(ci_jobs)])
    return ic_post, ci_bxtxe
