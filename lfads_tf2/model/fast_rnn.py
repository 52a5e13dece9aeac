"""LFADS's recurrences as in-graph loops with hand-written backward passes.

Why this file exists: on a CPU, the automatic gradient of a TensorFlow while loop
stacks every intermediate, accumulates the weight gradients step by step and pays a
fixed cost for every op of every step. LFADS's GRUs are small (tens to hundreds of
units), so that overhead, not arithmetic, dominated training. Here:
  * everything a step's input contributes that does not depend on the loop (an
    encoder's data, the controller's encoder outputs, external inputs, biases) is
    projected for all steps at once by the caller, as one large matmul;
  * a step does one matmul for the gates and one for the candidate (oneDNN matmuls:
    measured faster here than TensorFlow's fused GRUBlockCell, whose Eigen kernels
    do not use this CPU's AVX-512);
  * the backward pass is a hand-written loop, and the weight gradients are one
    matmul over all steps after it;
  * loop inputs are read with one gather per step (no up-front unstacking).

The GRU, with z the part of the input computed inside the loop (may be absent),
xp_ru / xp_c the precomputed rest (input projection plus biases, the forget bias
folded into the update half):
    [r, u] = sigmoid(xp_ru + [z, h] W_ru)
    c      = tanh(xp_c + [z, r*h] W_c)
    h'     = clip(u*h + (1-u)*c, -clip, clip)       (computed as c + u*(h - c))
These are the original's GRU (encoders) and GenGRU (controller, generator) with their
weight matrices split by rows. The "autodiff" loops (lfads_tf2.model.encoders.run_autodiff and
ControllerGenerator._autodiff) compute the same with element-wise cells and automatic
gradients; tests compare the two. Functions take time-major tensors [T, B, .].
"""
import collections

import tensorflow as tf


def _at(x, t, state_rank):
    """Step t of a precomputed input, or a bias as it is.

    With states [B, n] (state_rank 2) inputs are [T, B, m] or biases [m]; with
    stacked states [k, B, n] they are [T, k, B, m] or biases [k, 1, m]. (Time first
    in both: a step is one contiguous block, and the gradient of an input comes out
    of the backward loop in the input's layout.)
    """
    if x.shape.rank == state_rank + 1:
        return tf.gather(x, t)
    return x


def _grad_of_input(d_txx, x, state_rank):
    """The gradient of a precomputed input (see `_at`) from its per-step gradients
    d [T, B, m] or [T, k, B, m]: d itself, or summed for a bias."""
    if x.shape.rank == state_rank + 1:
        return d_txx
    return tf.reshape(tf.reduce_sum(d_txx, [0, state_rank - 1]), tf.shape(x))


def num_steps_of(x_txbxk):
    """T of a time-major tensor: a Python int when static (keeps outputs' shapes)."""
    return x_txbxk.shape[0] if x_txbxk.shape[0] is not None else tf.shape(x_txbxk)[0]


def _loop(num_steps, body, carry, output_shapes, reverse=False, stack=True,
          peel_step0=False):
    """Runs carry, outs = body(t, carry, at_step0) for t = 0..T-1 (or T-1..0).

    Returns (final carry, [stacked outputs, each [T, ...]] in time order), or with
    stack=False the outputs' TensorArrays: a backward loop reads step t of those
    with ta.read(t), which copies nothing (stacking copies every step, and a gather
    from the stack copies it again).
    peel_step0: step 0 runs outside the in-graph loop, with at_step0=True (before
    the loop, or after it when reverse), so that the loop body can leave out what
    only step 0 needs (see `clips_only_at_step0`); otherwise at_step0 is False.
    """
    # clear_after_read=False: read in the backward loop, then stacked (eager mode
    # would otherwise empty an element on reading it)
    tas = [tf.TensorArray(tf.float32, size=num_steps, element_shape=s,
                          clear_after_read=False) for s in output_shapes]

    def peeled(carry, tas):
        carry, outs = body(0, carry, True)
        return carry, [ta.write(0, o) for ta, o in zip(tas, outs)]

    first = 1 if peel_step0 else 0
    if peel_step0 and not reverse:
        carry, tas = peeled(carry, tas)

    def loop_body(i, carry, tas):
        t = num_steps - 1 - i if reverse else i + first
        carry, outs = body(t, carry, False)
        return i + 1, carry, [ta.write(t, o) for ta, o in zip(tas, outs)]

    # (the names tell the forward and backward loops apart in a profile)
    _, carry, tas = tf.while_loop(lambda i, *_: i < num_steps - first, loop_body,
                                  (tf.constant(0), carry, tas),
                                  name="backward_loop" if reverse else "forward_loop")
    if peel_step0 and reverse:
        carry, tas = peeled(carry, tas)
    return carry, [ta.stack() for ta in tas] if stack else tas


def _named(grad):
    """grad with its ops under the name "fast_rnn_grad" (tells them apart in a profile:
    tape.gradient calls it in the scope of the forward ops)."""
    def named_grad(*d_outputs):
        with tf.name_scope("fast_rnn_grad"):
            return grad(*d_outputs)
    return named_grad


def clips_only_at_step0(clip):
    """True when only step 0 of a GRU can hit the state clip (clip >= 1).

    A GRU's new state c + u*(h - c) is a convex combination of its old state and
    c = tanh(.) in (-1, 1); with clip >= 1 a state within [-clip, clip] stays there.
    Only step 0, from an initial state beyond the clip, can clip. The loops then
    clip step 0 alone and apply the clip's gradient mask at step 0 alone: two or
    three ops a step fewer, and exactly the same numbers.
    """
    return clip >= 1.0


def _unclipped(h, clip):
    """1 where the clip passed the gradient (|h| < clip), else 0, from clipped states
    alone (a state that landed exactly on +-clip unclipped has probability zero)."""
    return tf.cast(tf.abs(h) < clip, h.dtype)


def _through_clip(g, t, at_step0, hs_txx, clip):
    """The gradient g of step t's clipped state, passed back through the clip: times
    the mask of step t of the states hs [T, ...] (not needed where nothing clips)."""
    if at_step0:
        return g * _unclipped(hs_txx[0], clip)
    if clips_only_at_step0(clip):
        return g
    return g * _unclipped(tf.gather(hs_txx, t), clip)


def _cell_forward(xp_ru, xp_c, z, h, w_ru, w_c, clip):
    """One GRU step; returns (h' clipped unless clip is None, [r, u] as one [..., 2n]
    tensor, c, r*h).

    States h [B, n] with weights [kz + n, 2n] etc., or k stacked cells: h [k, B, n],
    weights [k, kz + n, 2n] (batched matmuls).
    """
    zh = h if z is None else tf.concat([z, h], -1)
    ru = tf.sigmoid(xp_ru + tf.matmul(zh, w_ru))
    r, u = tf.split(ru, 2, axis=-1)
    rh = r * h
    zrh = rh if z is None else tf.concat([z, rh], -1)
    c = tf.tanh(xp_c + tf.matmul(zrh, w_c))
    h_new = c + u * (h - c)
    return (h_new if clip is None else tf.clip_by_value(h_new, -clip, clip)), ru, c, rh


def _transposed(w):
    """A weight matrix [..., m, n] transposed to [..., n, m] (for the backward loops:
    measured here, a batched matmul by a transposed operand, transpose_b=True, took
    up to twice as long as one by the matrix transposed once before the loop)."""
    return tf.linalg.matrix_transpose(w)


def _cell_backward(g, h, ru, c, w_ru_t, w_c_t, kz):
    """Backward of `_cell_forward` given g = dL/dh' (already through the clip) and the
    weights transposed (`_transposed`: W_ru^T [..., 2n, kz + n], W_c^T [..., n, kz + n]).

    Returns (dL/dh, dL/dz or None, dL/d a_ru [..., 2n], dL/d a_c [..., n]), where
    a_ru, a_c are the gate and candidate pre-activations.
    """
    r, u = tf.split(ru, 2, axis=-1)
    d_ac = g * (1.0 - u) * (1.0 - tf.square(c))
    d_zrh = tf.matmul(d_ac, w_c_t)
    d_z = None
    if kz:
        d_z, d_rh = tf.split(d_zrh, [kz, -1], axis=-1)
    else:
        d_rh = d_zrh
    d_aru = tf.concat([d_rh * h, g * (h - c)], -1) * ru * (1.0 - ru)
    d_zh = tf.matmul(d_aru, w_ru_t)
    if kz:
        d_z_ru, d_zh = tf.split(d_zh, [kz, -1], axis=-1)
        d_z += d_z_ru
    return g * u + d_rh * r + d_zh, d_z, d_aru, d_ac


def _weight_grads(z_txk, h_prev_txn, rh_prev_txn, d_aru_txx2n, d_ac_txn):
    """Gradients of W_ru = [W_z; W_h] and W_c summed over all steps and trials.

    rh_prev is r * h_prev of each step, as the forward loop computed it (recomputing
    it from stacked [r, u] would copy twice as much).
    Time-major [T, B, .] tensors give [kz + n, .] gradients; stacked cells
    [T, k, B, .] give [k, kz + n, .].
    """
    zh, zrh = h_prev_txn, rh_prev_txn
    if z_txk is not None:
        zh, zrh = tf.concat([z_txk, zh], -1), tf.concat([z_txk, zrh], -1)

    def rows(x):
        """[T, B, m] -> [T*B, m]."""
        return tf.reshape(x, [-1, x.shape[-1]])

    def grad(x, d):
        """x^T d over all steps and trials: [m, p], or stacked [k, m, p]."""
        if x.shape.rank == 3:
            return tf.matmul(rows(x), rows(d), transpose_a=True)
        # stacked cells [T, k, B, .]: one 2-D matmul per cell, measured twice as fast
        # as a batched matmul after transposing to [k, T*B, .] (that transpose was most
        # of the time; the numbers are the same). (tf.einsum: several times slower.)
        return tf.stack([tf.matmul(rows(xi), rows(di), transpose_a=True)
                         for xi, di in zip(tf.unstack(x, axis=1), tf.unstack(d, axis=1))])

    return grad(zh, d_aru_txx2n), grad(zrh, d_ac_txn)


def gru_stack(xp_ru, xp_c, h0_kxbxn, w_ru, w_c, clip, num_steps):
    """k independent GRUs of one size over time, stacked: one loop, batched matmuls.

    xp_ru [T, k, B, 2n], xp_c [T, k, B, n]: precomputed inputs with biases (or, for
    cells without input, the biases [k, 1, 2n], [k, 1, n]); h0 [k, B, n];
    w_ru [k, n, 2n], w_c [k, n, n] recurrent weights.
    Returns (states [T, k, B, n], final states [k, B, n]).
    """
    @tf.custom_gradient
    def run(xp_ru, xp_c, h0, w_ru, w_c):

        only_step0 = clips_only_at_step0(clip)

        def step(t, h_prev, at_step0):
            step_clip = clip if at_step0 or not only_step0 else None
            h, ru, c, rh = _cell_forward(_at(xp_ru, t, 3), _at(xp_c, t, 3), None, h_prev,
                                         w_ru, w_c, step_clip)
            return h, [h, h_prev, ru, c, rh]

        shape = h0.shape
        shape_ru = shape[:2] + [2 * shape[2]]
        h_final, (hs, prev_ta, ru_ta, c_ta, rh_ta) = _loop(
            num_steps, step, h0, [shape, shape, shape_ru, shape, shape], stack=False,
            peel_step0=only_step0)
        hs = hs.stack()

        def grad(d_hs, d_final):
            d_final = tf.zeros_like(h0) if d_final is None else d_final
            w_ru_t, w_c_t = _transposed(w_ru), _transposed(w_c)

            def back(t, d_h, at_step0):
                # d_hs is None where only the final states are used (the IC encoders)
                g = d_h if d_hs is None else tf.gather(d_hs, t) + d_h
                g = _through_clip(g, t, at_step0, hs, clip)
                d_h_prev, _, d_aru, d_ac = _cell_backward(
                    g, prev_ta.read(t), ru_ta.read(t), c_ta.read(t), w_ru_t, w_c_t, 0)
                return d_h_prev, [d_aru, d_ac]

            d_h0, (d_aru, d_ac) = _loop(num_steps, back, d_final, [shape_ru, shape],
                                        reverse=True, peel_step0=only_step0)
            d_w_ru, d_w_c = _weight_grads(None, prev_ta.stack(), rh_ta.stack(), d_aru, d_ac)
            return (_grad_of_input(d_aru, xp_ru, 3), _grad_of_input(d_ac, xp_c, 3), d_h0,
                    d_w_ru, d_w_c)

        return (hs, h_final), _named(grad)

    return run(xp_ru, xp_c, h0_kxbxn, w_ru, w_c)


# What each step of controller_generator's forward loop keeps for the backward loop,
# in this order (each [B, .]): the first five are also the loop's outputs, the rest
# are each cell's previous state, gates [r, u], candidate c and r * h_prev.
StepSaved = collections.namedtuple("StepSaved", [
    "con_h", "co", "u", "gen_h", "fac",
    "con_prev", "con_ru", "con_c", "con_rh", "gen_prev", "gen_ru", "gen_c", "gen_rh"])

# What controller_generator's loop differentiates, in the order its gradient returns
# theirs: precomputed input parts (xp_ru, xp_c) [T, B, .] or biases, the feedback
# before the first step fb0 [B, F], the initial states [B, C] and [B, G], and the
# weights (W_ru, W_c of each cell, W_co [C, 2U], b_co [2U], W_fac [G, F_out]).
_LoopInputs = collections.namedtuple("_LoopInputs", [
    "con_xp_ru", "con_xp_c", "fb0", "con_h0", "gen_h0", "con_w_ru", "con_w_c", "w_co",
    "b_co", "gen_xp_ru", "gen_xp_c", "gen_w_ru", "gen_w_c", "w_fac"])

# What controller_generator's loop takes as given (no gradient): the state clip,
# whether only step 0 can clip (`clips_only_at_step0`), the posterior noise eps
# [T, B, U], the inverted-dropout multipliers fb_mask [T, B, F] and gen_mask
# [T, B, G] (or None), and whether u is the posterior mean.
_LoopSettings = collections.namedtuple("_LoopSettings", [
    "clip", "only_step0", "eps_tbu", "fb_mask_tbf", "gen_mask_tbg", "use_mean"])


def _saved_shapes(x, U):
    """StepSaved of the shapes [B, .] of what a step keeps (B as static as con_h0's);
    x: _LoopInputs, U the inferred inputs' size."""
    b = x.con_h0.shape[:1]
    C, G = x.con_h0.shape[1], x.gen_h0.shape[1]
    return StepSaved(
        con_h=b + [C], co=b + [2 * U], u=b + [U], gen_h=b + [G], fac=b + [x.w_fac.shape[1]],
        con_prev=b + [C], con_ru=b + [2 * C], con_c=b + [C], con_rh=b + [C],
        gen_prev=b + [G], gen_ru=b + [2 * G], gen_c=b + [G], gen_rh=b + [G])


def _forward_step(x, s):
    """The body of controller_generator's forward loop (for `_loop`), one step of the
    equations in its docstring: step(t, (con_h [B, C], gen_h [B, G], fb [B, F]),
    at_step0) -> (the carry after step t, StepSaved of step t as a list).
    x: _LoopInputs, s: _LoopSettings."""
    F = x.fb0.shape[-1]

    def step(t, carry, at_step0):
        step_clip = s.clip if at_step0 or not s.only_step0 else None
        con_prev, gen_prev, fb = carry
        z_con = None
        if F:
            z_con = fb if s.fb_mask_tbf is None else fb * tf.gather(s.fb_mask_tbf, t)
        con_h, con_ru, con_c, con_rh = _cell_forward(
            _at(x.con_xp_ru, t, 2), _at(x.con_xp_c, t, 2), z_con, con_prev, x.con_w_ru,
            x.con_w_c, step_clip)
        co = tf.matmul(con_h, x.w_co) + x.b_co
        mean, logvar = tf.split(co, 2, axis=1)
        u = mean if s.use_mean else mean + tf.exp(0.5 * logvar) * tf.gather(s.eps_tbu, t)
        gen_h, gen_ru, gen_c, gen_rh = _cell_forward(
            _at(x.gen_xp_ru, t, 2), _at(x.gen_xp_c, t, 2), u, gen_prev, x.gen_w_ru,
            x.gen_w_c, step_clip)
        gen_do = gen_h if s.gen_mask_tbg is None else gen_h * tf.gather(s.gen_mask_tbg, t)
        fac = tf.matmul(gen_do, x.w_fac)
        return ((con_h, gen_h, fac if F else fb),
                list(StepSaved(con_h, co, u, gen_h, fac, con_prev, con_ru, con_c,
                               con_rh, gen_prev, gen_ru, gen_c, gen_rh)))

    return step


def _du_dco(logvars_txbxu, eps_txbxu, use_mean):
    """d u / d [mean, logvar] [T, B, 2U] for u = mean + exp(logvar/2) * eps: a gradient
    g_u of u reaches [mean, logvar] as g_u * [1, exp(logvar/2) * eps / 2] (eps's
    factor is 0 at the mean, use_mean)."""
    return tf.concat([tf.ones_like(logvars_txbxu), tf.zeros_like(logvars_txbxu) if use_mean
                      else 0.5 * tf.exp(0.5 * logvars_txbxu) * eps_txbxu], -1)


def _backward_step(x, s, saved, con_hs, gen_hs, d_gen, d_fac, d_co_out, du_dco):
    """The body of controller_generator's backward loop (for `_loop`), step t of
    `_forward_step` backwards: back(t, (g_con [B, C], g_gen [B, G], g_fb [B, F]),
    at_step0) -> (the gradients of step t's previous states and fed-back factors,
    [d_con_aru [B, 2C], d_con_ac [B, C], d_gen_aru [B, 2G], d_gen_ac [B, G],
    g_fac [B, F_out], g_co [B, 2U]] of step t).

    saved: StepSaved of TensorArrays over time; con_hs [T, B, C], gen_hs [T, B, G] the
    stacked states (for the clip's mask); the gradients from outside the loop: d_gen
    [T, B, G] or None, d_fac [T, B, F_out], d_co_out [T, B, 2U] (of [mean, logvar],
    u's included); du_dco [T, B, 2U] (`_du_dco`).
    """
    F, U = x.fb0.shape[-1], s.eps_tbu.shape[-1]
    w_fac_t, w_co_t = _transposed(x.w_fac), _transposed(x.w_co)
    con_w_ru_t, con_w_c_t = _transposed(x.con_w_ru), _transposed(x.con_w_c)
    gen_w_ru_t, gen_w_c_t = _transposed(x.gen_w_ru), _transposed(x.gen_w_c)

    def back(t, carry, at_step0):
        g_con, g_gen, g_fb = carry
        g_fac = tf.gather(d_fac, t) + g_fb if F else tf.gather(d_fac, t)
        g_gen_do = tf.matmul(g_fac, w_fac_t)
        if s.gen_mask_tbg is not None:
            g_gen_do *= tf.gather(s.gen_mask_tbg, t)
        g = g_gen + g_gen_do
        if d_gen is not None:  # (gen_states are not in the training cost)
            g += tf.gather(d_gen, t)
        g = _through_clip(g, t, at_step0, gen_hs, s.clip)
        d_gen_prev, d_u_gen, d_gen_aru, d_gen_ac = _cell_backward(
            g, saved.gen_prev.read(t), saved.gen_ru.read(t), saved.gen_c.read(t),
            gen_w_ru_t, gen_w_c_t, U)
        g_co = tf.gather(d_co_out, t) + tf.tile(d_u_gen, [1, 2]) * tf.gather(du_dco, t)
        g = _through_clip(g_con + tf.matmul(g_co, w_co_t), t, at_step0, con_hs, s.clip)
        d_con_prev, d_z_con, d_con_aru, d_con_ac = _cell_backward(
            g, saved.con_prev.read(t), saved.con_ru.read(t), saved.con_c.read(t),
            con_w_ru_t, con_w_c_t, F)
        g_fb_prev = g_fb
        if F:
            g_fb_prev = d_z_con if s.fb_mask_tbf is None \
                else d_z_con * tf.gather(s.fb_mask_tbf, t)
        return ((d_con_prev, d_gen_prev, g_fb_prev),
                [d_con_aru, d_con_ac, d_gen_aru, d_gen_ac, g_fac, g_co])

    return back


def _input_and_weight_grads(x, s, saved, con_hs, us, gen_hs, facs, d_steps):
    """The gradients of the precomputed inputs and the weights (a dict by _LoopInputs'
    fields but fb0, con_h0, gen_h0), the weights' summed over all steps and trials in
    one matmul each, from the backward loop's stacked outputs d_steps [d_con_aru,
    d_con_ac, d_gen_aru, d_gen_ac, g_fac, g_co] (each [T, B, .]) and the forward
    loop's: saved (StepSaved of TensorArrays), con_hs [T, B, C], us [T, B, U],
    gen_hs [T, B, G], facs [T, B, F_out]."""
    d_con_aru, d_con_ac, d_gen_aru, d_gen_ac, g_facs, g_cos = d_steps
    C, G = x.con_h0.shape[1], x.gen_h0.shape[1]
    U2, F_out = 2 * s.eps_tbu.shape[-1], x.w_fac.shape[1]
    z_con = None
    if x.fb0.shape[-1]:  # the controller's input z: the factors fed back
        z_con = tf.concat([x.fb0[None], facs[:-1]], 0)
        if s.fb_mask_tbf is not None:
            z_con *= s.fb_mask_tbf
    d_con_w = _weight_grads(z_con, saved.con_prev.stack(), saved.con_rh.stack(),
                            d_con_aru, d_con_ac)
    d_gen_w = _weight_grads(us, saved.gen_prev.stack(), saved.gen_rh.stack(),
                            d_gen_aru, d_gen_ac)
    d_w_co = tf.matmul(tf.reshape(con_hs, [-1, C]), tf.reshape(g_cos, [-1, U2]),
                       transpose_a=True)
    gen_do = gen_hs if s.gen_mask_tbg is None else gen_hs * s.gen_mask_tbg
    d_w_fac = tf.matmul(tf.reshape(gen_do, [-1, G]), tf.reshape(g_facs, [-1, F_out]),
                        transpose_a=True)
    return dict(
        con_xp_ru=_grad_of_input(d_con_aru, x.con_xp_ru, 2),
        con_xp_c=_grad_of_input(d_con_ac, x.con_xp_c, 2),
        con_w_ru=d_con_w[0], con_w_c=d_con_w[1], w_co=d_w_co,
        b_co=tf.reduce_sum(g_cos, [0, 1]),
        gen_xp_ru=_grad_of_input(d_gen_aru, x.gen_xp_ru, 2),
        gen_xp_c=_grad_of_input(d_gen_ac, x.gen_xp_c, 2),
        gen_w_ru=d_gen_w[0], gen_w_c=d_gen_w[1], w_fac=d_w_fac)


def controller_generator(con_xp, fb0_bxf, con_h0, gen_h0, con_w, co_w, gen_xp, gen_w,
                         w_fac, clip, eps_tbu, fb_mask_tbf=None, gen_mask_tbg=None,
                         use_mean=False):
    """The coupled controller -> inferred input -> generator -> factors loop (the
    original's per-time-step loop in its lfads.py).

    At step t:
        z_con = fb_{t-1} * fb_mask_t                (fb_{-1} = fb0, fb_t = factors_t)
        con_h = GRU_con(con_xp_t, z_con, con_h);  [mean, logvar] = con_h W_co + b_co
        u_t   = mean (use_mean) or mean + exp(logvar/2) * eps_t
        gen_h = GRU_gen(gen_xp_t, u_t, gen_h)
        factors_t = (gen_h * gen_mask_t) W_fac
    con_xp, gen_xp: (xp_ru, xp_c) precomputed input parts ([T, B, .] or biases):
      the controller's encoder inputs, the generator's external inputs;
    fb0_bxf: [B, F] feedback before the first step (F = 0: no feedback);
    con_w: (W_ru, W_c) with rows [fb; h]; gen_w: (W_ru, W_c) with rows [u; h];
    co_w: (W_co [C, 2U], b_co [2U]); w_fac [G, F_out]; eps_tbu posterior noise;
    masks: inverted-dropout multipliers or None.
    Returns time-major (gen_states, factors, u, mean, logvar).
    Only factor feedback is handled here (F == F_out or F == 0); rate feedback uses
    the autodiff loop (lfads_tf2.model.generator).
    """
    num_steps = num_steps_of(eps_tbu)
    s = _LoopSettings(clip, clips_only_at_step0(clip), eps_tbu, fb_mask_tbf, gen_mask_tbg,
                      use_mean)

    @tf.custom_gradient
    def run(*inputs):
        x = _LoopInputs(*inputs)
        shapes = _saved_shapes(x, eps_tbu.shape[-1])
        _, tas = _loop(num_steps, _forward_step(x, s), (x.con_h0, x.gen_h0, x.fb0),
                       list(shapes), stack=False, peel_step0=s.only_step0)
        saved = StepSaved(*tas)  # TensorArrays over time
        con_hs, cos, us, gen_hs, facs = [
            ta.stack() for ta in (saved.con_h, saved.co, saved.u, saved.gen_h, saved.fac)]
        means, logvars = tf.split(cos, 2, axis=2)

        def grad(d_gen, d_fac, d_u, d_mean, d_logvar):
            d_fac, d_u, d_mean, d_logvar = [
                tf.zeros_like(out) if d is None else d for d, out in
                zip((d_fac, d_u, d_mean, d_logvar), (facs, us, means, logvars))]
            du_dco = _du_dco(logvars, eps_tbu, use_mean)
            # the gradients of [mean, logvar] from outside the loop, u's included
            d_co_out = tf.concat([d_mean, d_logvar], -1) + tf.tile(d_u, [1, 1, 2]) * du_dco
            back = _backward_step(x, s, saved, con_hs, gen_hs, d_gen, d_fac, d_co_out,
                                  du_dco)
            (d_con_h0, d_gen_h0, d_fb0), d_steps = _loop(
                num_steps, back, (tf.zeros_like(x.con_h0), tf.zeros_like(x.gen_h0),
                                  tf.zeros_like(x.fb0)),
                [shapes.con_ru, shapes.con_c, shapes.gen_ru, shapes.gen_c, shapes.fac,
                 shapes.co], reverse=True, peel_step0=s.only_step0)
            rest = _input_and_weight_grads(x, s, saved, con_hs, us, gen_hs, facs, d_steps)
            return list(_LoopInputs(fb0=d_fb0, con_h0=d_con_h0, gen_h0=d_gen_h0, **rest))

        return (gen_hs, facs, us, means, logvars), _named(grad)

    return run(*_LoopInputs(con_xp[0], con_xp[1], fb0_bxf, con_h0, gen_h0, con_w[0],
                            con_w[1], co_w[0], co_w[1], gen_xp[0], gen_xp[1], gen_w[0],
                            gen_w[1], w_fac))
