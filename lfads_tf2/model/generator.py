"""The generative core: g0 -> generator initial state, and the controller/generator
loop that turns it into factors.

At step t (controller only with co_dim U > 0, feedback only if configured):
    con_h_t = GRU_con([ci_t, fb_{t-1}], con_h_{t-1});  q(u_t) = N(con_h_t W_co + b_co)
    u_t     = mean, or mean + exp(logvar / 2) * noise_t (posterior), or AR(1) (prior)
    gen_h_t = GRU_gen([u_t, ext_t], gen_h_{t-1});  factors_t = dropout(gen_h_t) W_fac
with fb_t the factors or, --feedback_factors_or_rates=rates, the rates of factors_t.

The loop runs T + fp_bins steps (forward prediction, `hps.fp_bins`, 0 by default),
while the encoders read T: after step T the controller's encoder inputs ci_t and the
generator's external inputs are zero (no data there); the factor or rate feedback and
the recurrences go on.

Two loops compute this: "fused" (fast_rnn.controller_generator, hand-written
gradients) and "autodiff" (element-wise cells in one tf.scan, automatic gradients).
Both take every random number from one `noise.Draws`, so they agree to round-off.
Only the autodiff loop can feed rates back (fast_rnn handles factor feedback only).
"""
import collections

import tensorflow as tf

import distributions as dist
from lfads_tf2.model import fast_rnn
from lfads_tf2.model.layers import GenGRU, Linear, matmul_last

LoopOutput = collections.namedtuple("LoopOutput", [
    "gen_states_bxtxg", "factors_bxtxf", "co_bxtxu", "co_mean_bxtxu", "co_logvar_bxtxu"])

RNN_CHOICES = ("fused", "autodiff")


def time_major(x):
    """[B, T, k] <-> [T, B, k]."""
    return tf.transpose(x, [1, 0, 2])


def pad_time(x_bxtxk, steps):
    """[B, T, k] -> [B, T + steps, k], zeros after T (None and steps == 0 pass through)."""
    if x_bxtxk is None or steps == 0:
        return x_bxtxk
    shape = tf.shape(x_bxtxk)
    zeros = tf.zeros(tf.stack([shape[0], steps, shape[2]]), x_bxtxk.dtype)
    return tf.concat([x_bxtxk, zeros], axis=1)


class InitialState(tf.Module):
    """The generator's initial state [B, G]: g0 [B, Z] mapped by g0_2_gen_ic (the
    identity when Z == G), with the learnable prior p(g0); without an IC (Z = 0) a
    learned vector [1, G] shared by all trials."""

    def __init__(self, hps, init_rng):
        super().__init__(name=None)
        Z, G = hps.ic_dim, hps.gen_dim
        self.ic_prior = self.g0_2_gen_ic = self.gen_g0 = None
        if Z > 0:
            self.ic_prior = dist.LearnableDiagonalGaussian(
                Z, "LFADS/z/prior_g0", mean_init=0.0, var_init=hps.ic_prior_var_scale,
                var_min=hps.ic_prior_var_min, var_max=hps.ic_prior_var_max)
            self.g0_2_gen_ic = Linear(Z, G, "LFADS/gen/g0_2_gen_ic", init_rng,
                                      identity=True)
        else:
            self.gen_g0 = tf.Variable(tf.zeros([1, G]), name="LFADS/gen/g0")

    def __call__(self, g0_bxz, rows):
        if self.g0_2_gen_ic is not None:
            return self.g0_2_gen_ic(g0_bxz)
        return tf.tile(self.gen_g0, tf.stack([rows, 1]))


class ControllerGenerator(tf.Module):
    """Controller (if co_dim > 0), inferred inputs u_t and generator -> factors.

    __call__(gen_ics [B, G], ci [B, T, E] or None, ext [B, T, I] or None, draws, mode,
    rnn, rates_fn) -> LoopOutput ([B, T + fp_bins, .] each; co_* None without u_t).
    rates_fn(factors, clip) -> rates: the read-out used for rate feedback.
    """

    def __init__(self, hps, ci_dim, feedback_dim, init_rng):
        super().__init__(name=None)
        U, C, G, F, I = hps.co_dim, hps.con_dim, hps.gen_dim, hps.factors_dim, \
            hps.ext_input_dim
        cws, clip = hps.cell_weight_scale, hps.cell_clip_value
        self.co_dim, self.ci_dim, self.feedback_dim = U, ci_dim, feedback_dim
        self.feeds_rates = feedback_dim > 0 and hps.feedback_factors_or_rates == "rates"
        # the encoders' T plus the forward bins (hps written before them lack the key)
        self.fp_bins = hps.get("fp_bins", 0)
        self.clip, self.num_steps = clip, hps.num_steps + self.fp_bins
        self.co_prior = self.con_c0 = self.controller = None
        self.co_post_mean = self.co_post_logvar = None
        if U > 0:
            self.co_prior = dist.LearnableAR1Prior(
                U, hps.prior_ar_atau, hps.prior_ar_nvar, hps.do_train_prior_ar_atau,
                hps.do_train_prior_ar_nvar, "LFADS/z/u_prior_ar1")
            self.con_c0 = tf.Variable(tf.zeros([1, C]), name="LFADS/con/c0")
            self.controller = GenGRU(ci_dim + feedback_dim, C, "LFADS/con", init_rng, cws,
                                     cws, clip)
            self.co_post_mean = Linear(C, U, "LFADS/con/con_to_post_co/mean", init_rng)
            self.co_post_logvar = Linear(C, U, "LFADS/con/con_to_post_co/logvar", init_rng)
        gen_in = U + (I if (I > 0 and hps.inject_ext_input_to_gen) else 0)
        self.generator = GenGRU(gen_in, G, "LFADS/gen", init_rng,
                                hps.gen_cell_input_weight_scale,
                                hps.gen_cell_rec_weight_scale, clip)
        self.gen_2_fac = Linear(G, F, "LFADS/gen/gen_2_fac", init_rng, do_bias=False,
                                normalized=True)

    def l2_variables(self):
        """(generator's, controller's) recurrent weights and biases (the L2-penalised ones)."""
        con = self.controller.l2_variables() if self.co_dim > 0 else []
        return self.generator.l2_variables(), con

    def __call__(self, gen_ics_bxg, ci_bxtxe, ext_bxtxi, draws, mode, rnn, rates_fn):
        # forward bins: no encoder inputs, no external inputs after T
        ci_bxtxe = pad_time(ci_bxtxe, self.fp_bins)
        ext_bxtxi = pad_time(ext_bxtxi, self.fp_bins)
        has_con = self.co_dim > 0 and mode != "prior_sample"
        if rnn == "autodiff" or (has_con and self.feeds_rates):
            return self._autodiff(gen_ics_bxg, ci_bxtxe, ext_bxtxi, draws, mode, rates_fn)
        if has_con:
            return self._fused_with_controller(gen_ics_bxg, ci_bxtxe, ext_bxtxi, draws,
                                               mode)
        return self._fused_generator_only(gen_ics_bxg, ext_bxtxi, draws)

    def _co_weights(self):
        """(W [C, 2U], b [1, 2U]) giving [mean, logvar] of q(u_t) in one matmul."""
        return (tf.concat([self.co_post_mean.W, self.co_post_logvar.W], axis=1),
                tf.concat([self.co_post_mean.b, self.co_post_logvar.b], axis=1))

    # ------------------------------------------------------------------ fused
    def _fused_generator_only(self, gen_ics_bxg, ext_bxtxi, draws):
        """No controller in this pass: the generator's inputs (AR(1) prior samples
        and/or external inputs) are known up front; one fast_rnn.gru_stack loop."""
        gen = self.generator
        parts, co_bxtxu = [], None
        if draws.co_prior_noise_txbxu is not None:
            co_bxtxu = self.co_prior.with_noise(draws.co_prior_noise_txbxu)
            parts.append(time_major(co_bxtxu))
        if ext_bxtxi is not None:
            parts.append(time_major(ext_bxtxi))
        gen_x = tf.concat(parts, -1) if parts else None
        xp, w = gen.fused_inputs(gen_x, slice(0, gen.n_in), slice(0, 0))
        # one stacked cell: [T, B, m] -> [T, 1, B, m], a bias [m] -> [1, 1, m]
        xp = [x[:, None] if x.shape.rank == 3 else tf.reshape(x, [1, 1, -1]) for x in xp]
        gen_states, _ = fast_rnn.gru_stack(xp[0], xp[1], gen_ics_bxg[None], w[0][None],
                                           w[1][None], self.clip, self.num_steps)
        gen_states = tf.squeeze(gen_states, 1)
        gen_do = gen_states if draws.gen_mask_txbxg is None \
            else gen_states * draws.gen_mask_txbxg
        factors = matmul_last(time_major(gen_do), self.gen_2_fac.weight())
        return LoopOutput(time_major(gen_states), factors, co_bxtxu, None, None)

    def _fused_with_controller(self, gen_ics_bxg, ci_bxtxe, ext_bxtxi, draws, mode):
        """The coupled loop of fast_rnn.controller_generator (factor feedback only)."""
        con, gen, k, U = self.controller, self.generator, self.ci_dim, self.co_dim
        rows = tf.shape(gen_ics_bxg)[0]
        w_fac = self.gen_2_fac.weight()
        ci, fb_mask = ci_bxtxe, None
        if draws.con_mask_bxtxk is not None:
            ci = ci * draws.con_mask_bxtxk[:, :, :k]
            fb_mask = time_major(draws.con_mask_bxtxk[:, :, k:])
        if self.feedback_dim > 0:
            # "t = -1" feedback: factors of the undropped initial state, as the original
            fb0 = tf.matmul(gen_ics_bxg, w_fac)
        else:
            fb0 = tf.zeros(tf.stack([rows, 0]))
        w_co, b_co = self._co_weights()
        con_h0 = tf.tile(self.con_c0, tf.stack([rows, 1]))
        con_xp, con_w = con.fused_inputs(time_major(ci), slice(0, k),
                                         slice(k, k + self.feedback_dim))
        ext = None if ext_bxtxi is None else time_major(ext_bxtxi)
        gen_xp, gen_w = gen.fused_inputs(ext, slice(U, gen.n_in), slice(0, U))
        outs = fast_rnn.controller_generator(
            con_xp, fb0, con_h0, gen_ics_bxg, con_w, (w_co, b_co[0]), gen_xp, gen_w,
            w_fac, self.clip, draws.co_noise_txbxu, fb_mask_tbf=fb_mask,
            gen_mask_tbg=draws.gen_mask_txbxg, use_mean=mode == "posterior_mean")
        return LoopOutput(*[time_major(x) for x in outs])

    # ------------------------------------------------------------------ autodiff
    def _autodiff(self, gen_ics_bxg, ci_bxtxe, ext_bxtxi, draws, mode, rates_fn):
        """Element-wise controller/generator loop in one tf.scan (automatic gradients)."""
        has_con = self.co_dim > 0 and mode != "prior_sample"
        feedback = has_con and self.feedback_dim > 0
        training = draws.gen_mask_txbxg is not None
        elems = self._autodiff_inputs(ci_bxtxe, ext_bxtxi, draws, has_con, feedback)
        w = self._autodiff_weights(has_con)
        if not feedback:
            feed = None
        elif self.feeds_rates:
            feed = rates_fn
        else:
            feed = lambda factors, clip: factors  # noqa: E731
        state = {"gen": gen_ics_bxg}
        if has_con:
            rows = tf.shape(gen_ics_bxg)[0]
            state["con"] = tf.tile(self.con_c0, tf.stack([rows, 1]))
        if feed is not None:
            # "t = -1" feedback: undropped initial state, unclipped rates, as the original
            state["fb"] = feed(tf.matmul(gen_ics_bxg, w["fac"]), False)
        step = self._autodiff_step(w, has_con, feed, training, mode == "posterior_mean")
        out0 = self._autodiff_template(gen_ics_bxg, has_con, feedback, training,
                                       "u_prior" in elems)
        if not elems:  # tf.scan needs something to iterate over
            elems["t"] = tf.range(self.num_steps)
        _, outs = tf.scan(step, elems, initializer=(state, out0))
        outs = {key: time_major(v) for key, v in outs.items()}
        if feedback:
            factors = outs["fac"]
        else:
            factors = matmul_last(outs["gen_do"] if training else outs["gen"], w["fac"])
        return LoopOutput(outs["gen"], factors, outs.get("co"), outs.get("co_mean"),
                          outs.get("co_logvar"))

    def _autodiff_inputs(self, ci_bxtxe, ext_bxtxi, draws, has_con, feedback):
        """Time-major per-step inputs that do not depend on the state: masks, noise,
        and the input projections of the external and the controller's inputs."""
        gen, U = self.generator, self.co_dim
        elems = {}
        if draws.gen_mask_txbxg is not None:
            elems["gen_mask"] = draws.gen_mask_txbxg
        if ext_bxtxi is not None:
            elems["gen_ext_ru"] = time_major(matmul_last(ext_bxtxi, gen.x_2_ru.W[U:]))
            elems["gen_ext_c"] = time_major(matmul_last(ext_bxtxi, gen.x_2_c.W[U:]))
        if draws.co_prior_noise_txbxu is not None:
            u_prior = self.co_prior.with_noise(draws.co_prior_noise_txbxu)
            elems["u_prior"] = time_major(u_prior)
        if has_con:
            con, k, ci = self.controller, self.ci_dim, ci_bxtxe
            if draws.con_mask_bxtxk is not None:
                ci = ci * draws.con_mask_bxtxk[:, :, :k]
                if feedback:
                    elems["fb_mask"] = time_major(draws.con_mask_bxtxk[:, :, k:])
            elems["con_x_ru"] = time_major(matmul_last(ci, con.x_2_ru.W[:k]))
            elems["con_x_c"] = time_major(matmul_last(ci, con.x_2_c.W[:k]))
            elems["co_noise"] = draws.co_noise_txbxu
        return elems

    def _autodiff_weights(self, has_con):
        """The weights the step uses, sliced and concatenated once outside the loop."""
        gen, U = self.generator, self.co_dim
        w = {"fac": self.gen_2_fac.weight(), "gen_bias": gen.recurrent_bias()}
        if U > 0:
            w["gen_u_ru"], w["gen_u_c"] = gen.x_2_ru.W[:U], gen.x_2_c.W[:U]
        if has_con:
            con, k = self.controller, self.ci_dim
            w["fb_ru"], w["fb_c"] = con.x_2_ru.W[k:], con.x_2_c.W[k:]
            w["con_bias"] = con.recurrent_bias()
            w["co"], w["co_b"] = self._co_weights()
        return w

    def _autodiff_step(self, w, has_con, feed, training, use_mean):
        """The tf.scan step: (state, outputs) x inputs -> (state, outputs)."""
        con, gen, U = self.controller, self.generator, self.co_dim

        def step(carry, x):
            state, _ = carry
            out, new_state = {}, {}
            gen_x_ru = gen_x_c = 0.0
            if has_con:
                x_ru, x_c = x["con_x_ru"], x["con_x_c"]
                if feed is not None:
                    fb = state["fb"] * x["fb_mask"] if training else state["fb"]
                    x_ru = x_ru + tf.matmul(fb, w["fb_ru"])
                    x_c = x_c + tf.matmul(fb, w["fb_c"])
                new_state["con"] = con.step(state["con"], x_ru, x_c, w["con_bias"])
                co_params = tf.matmul(new_state["con"], w["co"]) + w["co_b"]
                co_mean = co_params[:, :U]
                co_logvar = dist.logvar_with_floor(co_params[:, U:], 0.0)
                u = co_mean
                if not use_mean:
                    u = co_mean + tf.exp(0.5 * co_logvar) * x["co_noise"]
                out.update(co=u, co_mean=co_mean, co_logvar=co_logvar)
            elif "u_prior" in x:
                u = out["co"] = x["u_prior"]
            if U > 0:
                gen_x_ru, gen_x_c = tf.matmul(u, w["gen_u_ru"]), tf.matmul(u, w["gen_u_c"])
            if "gen_ext_ru" in x:
                gen_x_ru += x["gen_ext_ru"]
                gen_x_c += x["gen_ext_c"]
            gen_h = out["gen"] = new_state["gen"] = gen.step(state["gen"], gen_x_ru,
                                                             gen_x_c, w["gen_bias"])
            gen_do = gen_h * x["gen_mask"] if training else gen_h
            if feed is not None:
                out["fac"] = tf.matmul(gen_do, w["fac"])
                new_state["fb"] = feed(out["fac"], True)
            elif training:
                out["gen_do"] = gen_do
            return new_state, out

        return step

    def _autodiff_template(self, gen_ics_bxg, has_con, feedback, training, prior_u):
        """Zero per-step outputs [B, .] so that tf.scan knows their structure."""
        rows = tf.shape(gen_ics_bxg)[0]
        out0 = {"gen": gen_ics_bxg}
        zeros_u = tf.zeros(tf.stack([rows, self.co_dim])) if self.co_dim > 0 else None
        if has_con:
            out0.update(co=zeros_u, co_mean=zeros_u, co_logvar=zeros_u)
        elif prior_u:
            out0["co"] = zeros_u
        if feedback:
            out0["fac"] = tf.zeros(tf.stack([rows, self.gen_2_fac.out_size]))
        elif training:
            out0["gen_do"] = gen_ics_bxg
        return out0
