"""LFADS's recurrences as fused GRU ops with hand-written backward passes.

Why this file exists: on a CPU, a TensorFlow while loop pays a fixed cost for every
op of every time step, and the automatic gradient of a loop stacks every
intermediate and accumulates weight gradients step by step. LFADS's GRUs are small
(tens to hundreds of units), so that overhead, not arithmetic, dominated training.
Here every GRU step is one `GRUBlockCell` op (TensorFlow's fused GRU kernel: both
matmuls, gates and candidate in one op) and every backward step one
`GRUBlockCellGrad` op; weight gradients are one matmul over all steps after the
loop. The functions take and return plain tensors (no variables), time-major.

The GRU of GRUBlockCell, with x_h = [x, h] and W, b in that row order:
    [r, u] = sigmoid(x_h W_ru + b_ru)          (LFADS adds forget bias 1 to b_u)
    c      = tanh([x, r*h] W_c + b_c)
    h'     = u*h + (1-u)*c,   then LFADS clips: h' <- clip(h', -clip, clip)
This is exactly the original's GRU (joint [x,h] matrix, spec §4.2) and, with
W = [W_x; W_h], its GenGRU (inputs without bias, §4.3). lfads.py keeps a plain
element-wise version of both cells; tests check these functions against it.
"""
import tensorflow as tf


def _zeros_if_none(grads, like):
    return [tf.zeros_like(y) if g is None else g for g, y in zip(grads, like)]


def _weight_grads(x_tbk, h_prev_tbn, r_tbn, d_rubar_tbx2n, d_cbar_tbn):
    """Gradients of W_ru, W_c, b_ru, b_c of one GRUBlockCell summed over T and B."""
    n = h_prev_tbn.shape[-1]
    k = x_tbk.shape[-1]
    xh = tf.reshape(tf.concat([x_tbk, h_prev_tbn], -1), [-1, k + n])
    xrh = tf.reshape(tf.concat([x_tbk, r_tbn * h_prev_tbn], -1), [-1, k + n])
    d_rubar = tf.reshape(d_rubar_tbx2n, [-1, 2 * n])
    d_cbar = tf.reshape(d_cbar_tbn, [-1, n])
    return (tf.matmul(xh, d_rubar, transpose_a=True),
            tf.matmul(xrh, d_cbar, transpose_a=True),
            tf.reduce_sum(d_rubar, 0), tf.reduce_sum(d_cbar, 0))


def _gru_step(x, h, w_ru, w_c, b_ru, b_c, clip):
    """One fused GRU step; returns (clipped h', r, u, c, clip mask)."""
    r, u, c, h_new = tf.raw_ops.GRUBlockCell(x=x, h_prev=h, w_ru=w_ru, w_c=w_c,
                                             b_ru=b_ru, b_c=b_c)
    # clip_by_value's gradient passes where min <= h' <= max
    mask = tf.cast(tf.abs(h_new) <= clip, h_new.dtype)
    return tf.clip_by_value(h_new, -clip, clip), r, u, c, mask


def _gru_grad(x, h_prev, w_ru, w_c, b_ru, b_c, r, u, c, mask, d_h):
    """Backward of `_gru_step`: returns (d_x, d_h_prev, d_cbar, d_rubar)."""
    return tf.raw_ops.GRUBlockCellGrad(x=x, h_prev=h_prev, w_ru=w_ru, w_c=w_c, b_ru=b_ru,
                                       b_c=b_c, r=r, u=u, c=c, d_h=d_h * mask)


def gru_sequences(x_list, h0_list, w_ru_list, w_c_list, b_ru_list, b_c_list, clip):
    """Independent GRUs over time in one loop; each cell has its own input.

    x_list: [T, B, k_i] inputs; h0_list: [B, n_i]; w_ru [k+n, 2n]; w_c [k+n, n];
    b_ru [2n] (forget bias included); b_c [n]. Returns a list of [T, B, n_i] states.
    """
    m = len(x_list)
    args = list(x_list) + list(h0_list) + list(w_ru_list) + list(w_c_list) \
        + list(b_ru_list) + list(b_c_list)

    @tf.custom_gradient
    def run(*args):
        xs, h0, w_ru, w_c, b_ru, b_c = (args[i * m:(i + 1) * m] for i in range(6))

        def step(carry, x_t):
            outs = tuple(_gru_step(x_t[i], carry[0][i], w_ru[i], w_c[i], b_ru[i], b_c[i],
                                   clip) for i in range(m))
            return tuple(tuple(o[j] for o in outs) for j in range(5))

        zeros = tuple(tf.zeros_like(h) for h in h0)
        hs, rs, us, cs, masks = tf.scan(step, tuple(xs),
                                        initializer=(tuple(h0),) + (zeros,) * 4)

        def grad(*d_hs):
            d_hs = _zeros_if_none(d_hs, hs)
            h_prev = [tf.concat([h0[i][None], hs[i][:-1]], 0) for i in range(m)]

            def back(carry, e):
                x_t, d_h, hp, r, u, c, mask = e
                outs = [_gru_grad(x_t[i], hp[i], w_ru[i], w_c[i], b_ru[i], b_c[i], r[i],
                                  u[i], c[i], mask[i], d_h[i] + carry[1][i])
                        for i in range(m)]
                return tuple(tuple(o[j] for o in outs) for j in (0, 1, 2, 3))

            init = (tuple(tf.zeros_like(x[0]) for x in xs), zeros, zeros,
                    tuple(tf.concat([h, h], -1) for h in zeros))
            d_x, d_hp, d_cbar, d_rubar = tf.scan(
                back, (tuple(xs), tuple(d_hs), tuple(h_prev), rs, us, cs, masks),
                initializer=init, reverse=True)
            wg = [_weight_grads(xs[i], h_prev[i], rs[i], d_rubar[i], d_cbar[i])
                  for i in range(m)]
            return (list(d_x) + [d[0] for d in d_hp] + [g[0] for g in wg]
                    + [g[1] for g in wg] + [g[2] for g in wg] + [g[3] for g in wg])

        return list(hs), grad

    return run(*args)


def controller_generator(ci_tbk, fb0_bxf, con_h0, gen_h0, con_w, co_w, gen_w, w_fac,
                         clip, u_size, eps_tbu, gen_ext_tbi=None, fb_mask_tbf=None,
                         gen_mask_tbg=None, use_mean=False):
    """The coupled controller -> inferred input -> generator -> factors loop (§4.8-4.9).

    At step t:
        con_x = [ci_t, fb_{t-1} * fb_mask_t]       (fb_{-1} = fb0, fb_t = factors_t)
        con_h = GRU_con(con_x, con_h);  [mean, logvar] = con_h W_co + b_co
        u_t   = mean (use_mean) or mean + exp(logvar/2) * eps_t
        gen_h = GRU_gen([u_t, ext_t], gen_h)
        factors_t = (gen_h * gen_mask_t) W_fac
    ci_tbk: [T, B, k] controller inputs from the encoders (already dropped out);
    fb0_bxf: [B, F] feedback before the first step (F may be 0: no feedback);
    con_w, gen_w: (w_ru, w_c, b_ru, b_c) of the two fused GRUs; co_w: (W_co [C, 2U],
    b_co [2U]); w_fac [G, F_out]; eps_tbu posterior noise; masks: inverted-dropout
    multipliers or None. Returns time-major (gen_states, factors, u, mean, logvar).
    Only factor feedback is handled here (F == F_out or F == 0); rate feedback uses
    the element-wise reference loop in lfads.py.
    """
    U = u_size
    F_fb = fb0_bxf.shape[-1]
    k = ci_tbk.shape[-1]
    T = tf.shape(ci_tbk)[0]
    B = tf.shape(ci_tbk)[1]
    if gen_ext_tbi is None:
        gen_ext_tbi = tf.zeros(tf.stack([T, B, 0]))
    if fb_mask_tbf is None:
        fb_mask_tbf = tf.ones(tf.stack([T, B, F_fb]))
    if gen_mask_tbg is None:
        gen_mask_tbg = tf.ones_like(ci_tbk[:, :, :1])  # broadcasts over G

    @tf.custom_gradient
    def run(ci, fb0, con_h0, gen_h0, cw_ru, cw_c, cb_ru, cb_c, w_co, b_co,
            gw_ru, gw_c, gb_ru, gb_c, w_fac):

        def step(carry, e):
            con_h, gen_h, fb = carry[:3]
            ci_t, fb_mask_t, eps_t, ext_t, gmask_t = e
            con_x = tf.concat([ci_t, fb * fb_mask_t], -1)
            con_h, cr, cu, cc, cm = _gru_step(con_x, con_h, cw_ru, cw_c, cb_ru, cb_c, clip)
            co = tf.matmul(con_h, w_co) + b_co
            mean, logvar = co[:, :U], co[:, U:]
            u = mean if use_mean else mean + tf.exp(0.5 * logvar) * eps_t
            gen_x = tf.concat([u, ext_t], -1)
            gen_h, gr, gu, gc, gm = _gru_step(gen_x, gen_h, gw_ru, gw_c, gb_ru, gb_c, clip)
            fac = tf.matmul(gen_h * gmask_t, w_fac)
            fb_new = fac if F_fb > 0 else fb
            return (con_h, gen_h, fb_new, fac, u, mean, logvar,
                    cr, cu, cc, cm, gr, gu, gc, gm)

        zc, zg = tf.zeros_like(con_h0), tf.zeros_like(gen_h0)
        zu = tf.zeros(tf.stack([B, U]))
        init = (con_h0, gen_h0, fb0, tf.zeros(tf.stack([B, w_fac.shape[-1]])), zu, zu, zu,
                zc, zc, zc, zc, zg, zg, zg, zg)
        elems = (ci, fb_mask_tbf, eps_tbu, gen_ext_tbi, gen_mask_tbg)
        (con_hs, gen_hs, _, facs, us, means, logvars,
         crs, cus, ccs, cms, grs, gus, gcs, gms) = tf.scan(step, elems, initializer=init)

        def grad(d_gen, d_fac, d_u, d_mean, d_logvar):
            d_gen, d_fac, d_u, d_mean, d_logvar = _zeros_if_none(
                (d_gen, d_fac, d_u, d_mean, d_logvar), (gen_hs, facs, us, means, logvars))
            con_prev = tf.concat([con_h0[None], con_hs[:-1]], 0)
            gen_prev = tf.concat([gen_h0[None], gen_hs[:-1]], 0)
            fb_prev = tf.concat([fb0[None], facs[:-1]], 0) if F_fb > 0 \
                else tf.zeros(tf.stack([T, B, 0]))
            con_xs = tf.concat([ci, fb_prev * fb_mask_tbf], -1)
            gen_xs = tf.concat([us, gen_ext_tbi], -1)
            std_eps = 0.5 * tf.exp(0.5 * logvars) * eps_tbu
            w_co_t = tf.transpose(w_co)
            w_fac_t = tf.transpose(w_fac)

            def back(carry, e):
                g_con, g_gen, g_fb = carry[:3]
                (d_gen_t, d_fac_t, d_u_t, d_mean_t, d_logvar_t, gen_x, gen_hp, gr, gu, gc,
                 gm, con_x, con_hp, cr, cu, cc, cm, gmask, fb_mask, se) = e
                g_fac = d_fac_t + g_fb if F_fb > 0 else d_fac_t
                g_gen = d_gen_t + g_gen + tf.matmul(g_fac, w_fac_t) * gmask
                dgx, dgh, dg_cbar, dg_rubar = _gru_grad(gen_x, gen_hp, gw_ru, gw_c, gb_ru,
                                                         gb_c, gr, gu, gc, gm, g_gen)
                g_u = d_u_t + dgx[:, :U]
                g_mean = d_mean_t + g_u
                g_logvar = d_logvar_t if use_mean else d_logvar_t + g_u * se
                g_co = tf.concat([g_mean, g_logvar], -1)
                g_con = g_con + tf.matmul(g_co, w_co_t)
                dcx, dch, dc_cbar, dc_rubar = _gru_grad(con_x, con_hp, cw_ru, cw_c, cb_ru,
                                                         cb_c, cr, cu, cc, cm, g_con)
                g_fb_prev = dcx[:, k:] * fb_mask
                return (dch, dgh, g_fb_prev, dcx[:, :k], g_fac, g_co,
                        dg_cbar, dg_rubar, dc_cbar, dc_rubar)

            zero_co = tf.zeros(tf.stack([B, 2 * U]))
            init_b = (zc, zg, tf.zeros_like(fb0), ci[0] * 0.0, facs[0] * 0.0, zero_co,
                      zg, tf.concat([zg, zg], -1), zc, tf.concat([zc, zc], -1))
            elems_b = (d_gen, d_fac, d_u, d_mean, d_logvar, gen_xs, gen_prev, grs, gus, gcs,
                       gms, con_xs, con_prev, crs, cus, ccs, cms, gen_mask_tbg, fb_mask_tbf,
                       std_eps)
            (g_con0, g_gen0, g_fb0, d_ci, g_facs, g_cos, dg_cbar, dg_rubar, dc_cbar,
             dc_rubar) = tf.scan(back, elems_b, initializer=init_b, reverse=True)
            d_cw = _weight_grads(con_xs, con_prev, crs, dc_rubar, dc_cbar)
            d_gw = _weight_grads(gen_xs, gen_prev, grs, dg_rubar, dg_cbar)
            C = con_h0.shape[-1]
            d_w_co = tf.matmul(tf.reshape(con_hs, [-1, C]), tf.reshape(g_cos, [-1, 2 * U]),
                               transpose_a=True)
            d_b_co = tf.reduce_sum(g_cos, [0, 1])
            G = gen_h0.shape[-1]
            gen_do = tf.reshape(gen_hs * gen_mask_tbg, [-1, G])
            d_w_fac = tf.matmul(gen_do, tf.reshape(g_facs, [-1, w_fac.shape[-1]]),
                                transpose_a=True)
            return ([d_ci, g_fb0[0], g_con0[0], g_gen0[0]]
                    + list(d_cw) + [d_w_co, d_b_co] + list(d_gw) + [d_w_fac])

        return (gen_hs, facs, us, means, logvars), grad

    return run(ci_tbk, fb0_bxf, con_h0, gen_h0, *con_w, *co_w, *gen_w, w_fac)
