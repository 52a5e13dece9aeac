"""The LFADS network on TensorFlow 2 (spec §4-§7).

    data_bxtxd -> read-in[d] -> IC encoder (bi-GRU) -> g0 -> generator initial state
                            \-> CI encoder (bi-GRU) -> controller (GenGRU) -> u_t
    generator (GenGRU, input u_t) -> dropout -> unit-norm factors -> read-out[d] -> rates

Every variable carries the original's TF1 name (e.g. `LFADS/gen/GenGRU/Gates/h_2_ru/W`)
so that `write_model_params` writes the original's keys and original checkpoints can
be imported by name. Recurrences run in the graph with `tf.scan`; everything that does
not depend on the recurrent state (encoder input projections, dropout masks, posterior
noise, the controller's encoder inputs) is computed for all time steps before the loop.

This module never reads flags or files: it takes an `hps` object (attribute access)
and a dict of per-dataset information.
"""
import collections

import numpy as np
import tensorflow as tf

import distributions as dist
import fast_rnn

# Reported rates / variances are exp(clip(log value, -80, 80)) (spec §16.1); the
# likelihood itself always uses the unclipped values.
CLIP_VALUE = 80.0

MODES = ("train", "posterior_sample", "posterior_mean", "prior_sample")


def _init_normal(rng, shape, alpha):
    """N(0, alpha/sqrt(fan_in)) initial values (plain normal, not truncated; §4.1)."""
    return (rng.standard_normal(shape) * (alpha / np.sqrt(shape[0]))).astype(np.float32)


def _matmul_last(x, w):
    """x [..., n] @ w [n, m] -> [..., m], as one 2-D matmul."""
    shape = tf.shape(x)
    out = tf.matmul(tf.reshape(x, [-1, shape[-1]]), w)
    return tf.reshape(out, tf.concat([shape[:-1], tf.shape(w)[-1:]], axis=0))


def _with_forget_bias(b_ru_1x2n, forget_bias):
    """[1, 2n] gate bias with the forget bias added to the update (second) half."""
    n = b_ru_1x2n.shape[-1] // 2
    return b_ru_1x2n + tf.concat([tf.zeros([1, n]), tf.fill([1, n], forget_bias)], axis=1)


class Linear(tf.Module):
    """Affine map y = x W + b with the original's variables `<name>/W`, `<name>/b` (§4.1).

    identity=True makes a parameter-free identity (the original's
    identity_if_possible shortcut); normalized=True rescales every column of W
    (each output unit's weights) to unit L2 norm at every use.
    """

    def __init__(self, in_size, out_size, name, init_rng, do_bias=True, alpha=1.0,
                 mat_init=None, bias_init=None, normalized=False, trainable=True,
                 identity=False):
        super().__init__(name=None)
        self.in_size, self.out_size = in_size, out_size
        self.identity = identity and in_size == out_size
        self.normalized = normalized
        self.W = self.b = None
        if self.identity:
            return
        if mat_init is None:
            mat_init = _init_normal(init_rng, (in_size, out_size), alpha)
        mat_init = np.asarray(mat_init, np.float32)
        if mat_init.shape != (in_size, out_size):
            raise ValueError("%s/W: initial value has shape %s, expected %s"
                             % (name, mat_init.shape, (in_size, out_size)))
        self.W = tf.Variable(mat_init, name=name + "/W", trainable=trainable)
        if do_bias:
            if bias_init is None:
                bias_init = np.zeros((1, out_size), np.float32)
            bias_init = np.asarray(bias_init, np.float32).reshape(1, -1)
            if bias_init.shape != (1, out_size):
                raise ValueError("%s/b: initial value has shape %s, expected %s"
                                 % (name, bias_init.shape, (1, out_size)))
            self.b = tf.Variable(bias_init, name=name + "/b", trainable=trainable)

    def weight(self):
        """The matrix actually used: W, or W with unit-norm columns."""
        if self.normalized:
            return tf.nn.l2_normalize(self.W, axis=0)
        return self.W

    def __call__(self, x):
        if self.identity:
            return x
        y = _matmul_last(x, self.weight())
        return y + self.b if self.b is not None else y


class EncoderGRU(tf.Module):
    """The encoders' GRU (§4.2): one joint matrix over concat(x, h) for the gates.

        [r, u] = sigmoid(concat(x, h) W_ru + b_ru + [0, forget_bias])
        c      = tanh(concat(x, r*h) W_c + b_c)
        h'     = clip(u*h + (1-u)*c, -clip_value, clip_value)

    Only the gate weights get `weight_scale`; the candidate weights use alpha=1,
    as in the original (spec Q11).
    """

    def __init__(self, n_in, n_units, scope, init_rng, weight_scale, clip_value,
                 forget_bias=1.0):
        super().__init__(name=None)
        self.n_in, self.n_units = n_in, n_units
        self.clip_value, self.forget_bias = clip_value, forget_bias
        self.gates = Linear(n_in + n_units, 2 * n_units, scope + "/GRU/Gates/xh_2_ru",
                            init_rng, alpha=weight_scale)
        self.candidate = Linear(n_in + n_units, n_units,
                                scope + "/GRU/Candidate/xrh_2_c", init_rng)

    def input_projection(self, x_bxtxk):
        """The state-independent part of both matmuls for all steps at once.

        x [..., k] -> ([..., 2n] gate pre-activations with biases and forget bias
        folded in, [..., n] candidate pre-activations with bias).
        """
        w_ru, b_ru, w_c, b_c = self.input_weights()
        return _matmul_last(x_bxtxk, w_ru) + b_ru, _matmul_last(x_bxtxk, w_c) + b_c

    def input_weights(self):
        """(W_x_ru [k, 2n], b_ru [1, 2n] with the forget bias, W_x_c [k, n], b_c [1, n])."""
        return (self.gates.W[:self.n_in], _with_forget_bias(self.gates.b, self.forget_bias),
                self.candidate.W[:self.n_in], self.candidate.b)

    def recurrent_weights(self):
        return self.gates.W[self.n_in:], self.candidate.W[self.n_in:]

    def step(self, h, x_ru, x_c, w_h_ru, w_h_c):
        n = self.n_units
        ru = tf.sigmoid(x_ru + tf.matmul(h, w_h_ru))
        r, u = ru[:, :n], ru[:, n:]
        c = tf.tanh(x_c + tf.matmul(r * h, w_h_c))
        return tf.clip_by_value(u * h + (1.0 - u) * c, -self.clip_value, self.clip_value)


class GenGRU(tf.Module):
    """The controller's and generator's GRU (§4.3): separate input/recurrent weights.

        r = sigmoid(x W_xr + h W_hr + b_r),  u = sigmoid(x W_xu + h W_hu + b_u + 1)
        c = tanh(x W_xc + (r*h) W_hc + b_c), h' = clip(u*h + (1-u)*c)
    Inputs have no bias and their own init scale; only the recurrent weights and
    biases are L2-regularised (that is why they are separate).
    """

    def __init__(self, n_in, n_units, scope, init_rng, input_weight_scale,
                 rec_weight_scale, clip_value, forget_bias=1.0):
        super().__init__(name=None)
        self.n_in, self.n_units = n_in, n_units
        self.clip_value, self.forget_bias = clip_value, forget_bias
        self.x_2_ru = self.x_2_c = None
        if n_in > 0:
            self.x_2_ru = Linear(n_in, 2 * n_units, scope + "/GenGRU/Gates/x_2_ru",
                                 init_rng, do_bias=False, alpha=input_weight_scale)
            self.x_2_c = Linear(n_in, n_units, scope + "/GenGRU/Candidate/x_2_c",
                                init_rng, do_bias=False, alpha=input_weight_scale)
        self.h_2_ru = Linear(n_units, 2 * n_units, scope + "/GenGRU/Gates/h_2_ru",
                             init_rng, alpha=rec_weight_scale)
        self.rh_2_c = Linear(n_units, n_units, scope + "/GenGRU/Candidate/rh_2_c",
                             init_rng, alpha=rec_weight_scale)

    def l2_variables(self):
        return [self.h_2_ru.W, self.h_2_ru.b, self.rh_2_c.W, self.rh_2_c.b]

    def fused_inputs(self, x_pre, pre_rows, loop_rows):
        """Inputs and weights for fast_rnn, the input x split by its rows (slices).

        Rows `pre_rows` arrive before the loop as x_pre [..., k] (or None) and are
        projected here for all steps at once, with the biases: returns
        (xp_ru [..., 2n], xp_c [..., n]), or the two bias vectors without x_pre.
        Rows `loop_rows` are computed inside the loop: returns their weights stacked
        on the recurrent ones, (W_ru [kz + n, 2n], W_c [kz + n, n]).
        """
        b_ru, b_c = self.recurrent_bias()[0], self.rh_2_c.b[0]
        xp = (b_ru, b_c)
        if x_pre is not None:
            xp = (_matmul_last(x_pre, self.x_2_ru.W[pre_rows]) + b_ru,
                  _matmul_last(x_pre, self.x_2_c.W[pre_rows]) + b_c)
        w_ru, w_c = self.h_2_ru.W, self.rh_2_c.W
        if loop_rows.stop > loop_rows.start:
            w_ru = tf.concat([self.x_2_ru.W[loop_rows], w_ru], 0)
            w_c = tf.concat([self.x_2_c.W[loop_rows], w_c], 0)
        return xp, (w_ru, w_c)

    def recurrent_bias(self):
        """[1, 2n] gate bias with the forget bias folded into the update half."""
        return _with_forget_bias(self.h_2_ru.b, self.forget_bias)

    def step(self, h, x_ru, x_c, bias_ru):
        """One step given the input contributions x_ru [B, 2n], x_c [B, n] (or 0)."""
        n = self.n_units
        ru = tf.sigmoid(x_ru + tf.matmul(h, self.h_2_ru.W) + bias_ru)
        r, u = ru[:, :n], ru[:, n:]
        c = tf.tanh(x_c + tf.matmul(r * h, self.rh_2_c.W) + self.rh_2_c.b)
        return tf.clip_by_value(u * h + (1.0 - u) * c, -self.clip_value, self.clip_value)


def run_encoders(cells_and_inputs):
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
        x_ktbk = tf.stack([tf.transpose(cells_and_inputs[i][1], [1, 0, 2]) for i in idx])
        k, T, n_in, n = len(idx), x_ktbk.shape[1], cells[0].n_in, cells[0].n_units
        batch = tf.shape(x_ktbk)[2]
        x_flat = tf.reshape(x_ktbk, [k, -1, n_in])

        def project(ws, biases, width):
            out = tf.matmul(x_flat, tf.stack(ws))
            return tf.reshape(out, [k, T, batch, width]) + tf.stack(biases)[:, None]

        w_in = [c.input_weights() for c in cells]
        xp_ru = project([w[0] for w in w_in], [w[1] for w in w_in], 2 * n)
        xp_c = project([w[2] for w in w_in], [w[3] for w in w_in], n)
        h0 = tf.stack([tf.tile(cells_and_inputs[i][2], tf.stack([batch, 1])) for i in idx])
        w_ru, w_c = [tf.stack(ws) for ws in zip(*[c.recurrent_weights() for c in cells])]
        hs_txkxbxn, final_kxbxn = fast_rnn.gru_stack(xp_ru, xp_c, h0, w_ru, w_c,
                                                     cells[0].clip_value, T)
        states.update(zip(idx, tf.unstack(tf.transpose(hs_txkxbxn, [1, 2, 0, 3]))))
        finals.update(zip(idx, tf.unstack(final_kxbxn)))
    order = range(len(cells_and_inputs))
    return [states[i] for i in order], [finals[i] for i in order]


def run_encoders_reference(cells_and_inputs):
    """The same as `run_encoders` with element-wise cells and automatic gradients."""
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


ModelOutput = collections.namedtuple("ModelOutput", [
    "factors_bxtxf", "gen_states_bxtxg", "gen_ics_bxg", "rates_bxtxd",
    "output_params_bxtxp", "log_p_xgz_b", "kl_ic_b", "kl_co_b",
    "ic_post_mean_bxz", "ic_post_logvar_bxz", "ic_prior_mean_bxz",
    "ic_prior_logvar_bxz", "co_bxtxu", "co_post_mean_bxtxu", "co_post_logvar_bxtxu",
])

Costs = collections.namedtuple("Costs", [
    "total", "recon", "kl", "l2", "corr", "kl_weight", "l2_weight",
    "nll_bound_vae", "nll_bound_iwae"])


def ramp_weight(step, start_step, increase_steps):
    """Linear 0 -> 1 ramp: min(max(step - start, 0) / increase_steps, 1) (§6.2)."""
    x = tf.cast(step - start_step, tf.float32) / float(increase_steps)
    return tf.minimum(tf.maximum(x, 0.0), 1.0)


class LFADS(tf.Module):
    """The LFADS model: all variables and the forward pass; no I/O, no flags.

    hps: object with the run_lfads hyperparameters as attributes (see spec §2).
    datasets_info: dict name -> dict with `data_dim` and optionally
      `alignment_matrix_cxf` [D, F], `alignment_bias_c` [D].
    init_seed: seed of the numpy generator for initial weights (None: random).
    """

    def __init__(self, hps, datasets_info, init_seed=None):
        super().__init__(name=None)
        self.hps = hps
        init_rng = np.random.RandomState(init_seed)
        self.dataset_names = sorted(datasets_info)
        ndatasets = len(self.dataset_names)
        self.num_steps = hps.num_steps
        self.n_ic_steps = min(hps.num_steps_for_gen_ic, hps.num_steps)
        self.output_dist = hps.output_dist
        F, I = hps.factors_dim, hps.ext_input_dim

        # Read-in: identity for a single dataset without an alignment matrix; a
        # learned D -> F map for every dataset otherwise (§4.4).
        has_alignment = any(
            datasets_info[n].get("alignment_matrix_cxf") is not None
            for n in self.dataset_names)
        self.readin_identity = ndatasets == 1 and not has_alignment
        if self.readin_identity:
            self.readin_dim = datasets_info[self.dataset_names[0]]["data_dim"]
        else:
            self.readin_dim = F
        self.readins, self.readouts = {}, {}
        for name in self.dataset_names:
            info = datasets_info[name]
            D = info["data_dim"]
            matrix = info.get("alignment_matrix_cxf")
            bias = info.get("alignment_bias_c")
            in_bias = None
            if matrix is not None and bias is not None:
                # realises (x - bias) W as x W - bias W
                in_bias = -(np.asarray(bias, np.float32)[None, :]
                            @ np.asarray(matrix, np.float32))
            self.readins[name] = Linear(
                D, self.readin_dim, "LFADS/x_2_infac_" + name, init_rng,
                mat_init=matrix, bias_init=in_bias, trainable=hps.do_train_readin,
                identity=self.readin_identity)
            out_w = None if matrix is None else np.asarray(matrix, np.float32).T
            # Each dataset gets its own alignment bias only (fixes the original's
            # leak of the previous dataset's bias, spec Q6).
            out_b = None if bias is None else np.asarray(bias, np.float32)[None, :]
            if hps.output_dist == "poisson":
                self.readouts[name] = Linear(
                    F, D, "LFADS/glm/fac_2_logrates_" + name, init_rng, mat_init=out_w,
                    bias_init=out_b, identity=(ndatasets == 1 and F == D))
            else:
                means = Linear(F, D, "LFADS/glm/fac_2_means_" + name, init_rng,
                               mat_init=out_w, bias_init=out_b)
                logvars = Linear(F, D, "LFADS/glm/fac_2_logvars_" + name, init_rng,
                                 mat_init=np.zeros((F, D), np.float32),
                                 bias_init=np.ones((1, D), np.float32))
                self.readouts[name] = (means, logvars)

        enc_in = self.readin_dim + (I if (I > 0 and not hps.inject_ext_input_to_gen) else 0)
        Z, Eic, Eci = hps.ic_dim, hps.ic_enc_dim, hps.ci_enc_dim
        U, C, G = hps.co_dim, hps.con_dim, hps.gen_dim
        cws, clip = hps.cell_weight_scale, hps.cell_clip_value

        if Z > 0:
            self.ic_enc_fwd = EncoderGRU(enc_in, Eic, "LFADS/ic_enc_fwd", init_rng, cws, clip)
            self.ic_enc_rev = EncoderGRU(enc_in, Eic, "LFADS/ic_enc_rev", init_rng, cws, clip)
            self.ic_enc_t0_fwd = tf.Variable(tf.zeros([1, Eic]),
                                             name="LFADS/ic_enc_fwd/ic_enc_t0_fwd")
            self.ic_enc_t0_rev = tf.Variable(tf.zeros([1, Eic]),
                                             name="LFADS/ic_enc_rev/ic_enc_t0_rev")
            self.ic_prior = dist.LearnableDiagonalGaussian(
                Z, "LFADS/z/prior_g0", mean_init=0.0, var_init=hps.ic_prior_var_scale,
                var_min=hps.ic_prior_var_min, var_max=hps.ic_prior_var_max)
            self.ic_post_mean = Linear(2 * Eic, Z, "LFADS/z/ic_enc_2_post_g0/mean", init_rng)
            self.ic_post_logvar = Linear(2 * Eic, Z, "LFADS/z/ic_enc_2_post_g0/logvar",
                                         init_rng)
            self.g0_2_gen_ic = Linear(Z, G, "LFADS/gen/g0_2_gen_ic", init_rng, identity=True)
        else:
            self.gen_g0 = tf.Variable(tf.zeros([1, G]), name="LFADS/gen/g0")

        con_in = 0
        if U > 0:
            self.ci_enc_fwd = EncoderGRU(enc_in, Eci, "LFADS/ci_enc_fwd", init_rng, cws, clip)
            self.ci_enc_t0_fwd = tf.Variable(tf.zeros([1, Eci]),
                                             name="LFADS/ci_enc_fwd/ci_enc_t0_fwd")
            if not hps.do_causal_controller:
                self.ci_enc_rev = EncoderGRU(enc_in, Eci, "LFADS/ci_enc_rev", init_rng,
                                             cws, clip)
                self.ci_enc_t0_rev = tf.Variable(tf.zeros([1, Eci]),
                                                 name="LFADS/ci_enc_rev/ci_enc_t0_rev")
            self.co_prior = dist.LearnableAR1Prior(
                U, hps.prior_ar_atau, hps.prior_ar_nvar, hps.do_train_prior_ar_atau,
                hps.do_train_prior_ar_nvar, "LFADS/z/u_prior_ar1")
            self.ci_dim = Eci * (1 if hps.do_causal_controller else 2)
            self.feedback_dim = 0
            if hps.do_feed_factors_to_controller:
                # The original feeds factors back even to a "causal" controller
                # (spec Q5); kept, since that is what trained models expect.
                self.feedback_dim = (F if hps.feedback_factors_or_rates == "factors"
                                     else datasets_info[self.dataset_names[0]]["data_dim"])
            con_in = self.ci_dim + self.feedback_dim
            self.con_c0 = tf.Variable(tf.zeros([1, C]), name="LFADS/con/c0")
            self.controller = GenGRU(con_in, C, "LFADS/con", init_rng, cws, cws, clip)
            self.co_post_mean = Linear(C, U, "LFADS/con/con_to_post_co/mean", init_rng)
            self.co_post_logvar = Linear(C, U, "LFADS/con/con_to_post_co/logvar", init_rng)

        gen_in = U + (I if (I > 0 and hps.inject_ext_input_to_gen) else 0)
        self.generator = GenGRU(gen_in, G, "LFADS/gen", init_rng,
                                hps.gen_cell_input_weight_scale,
                                hps.gen_cell_rec_weight_scale, clip)
        self.gen_2_fac = Linear(G, F, "LFADS/gen/gen_2_fac", init_rng, do_bias=False,
                                normalized=True)

        # L2 penalty variables (§6.3): generator and controller recurrent weights
        # and biases; the denominator counts both sets even if l2_con_scale == 0.
        self.l2_gen_vars = self.generator.l2_variables()
        self.l2_con_vars = self.controller.l2_variables() if U > 0 else []
        self.l2_numel = float(sum(int(np.prod(v.shape))
                                  for v in self.l2_gen_vars + self.l2_con_vars))
        # True: element-wise cells with TensorFlow's automatic gradients instead of
        # fast_rnn's loops (same numbers; used by tests as the reference).
        self.use_reference_rnn = False

    # ------------------------------------------------------------------ naming
    def variables_by_name(self):
        """dict original TF1 name (without ':0') -> tf.Variable, for every variable."""
        out = {}
        for v in self.variables:
            name = v.name[:-2] if v.name.endswith(":0") else v.name
            if name in out:
                raise ValueError("duplicate variable name %s" % name)
            out[name] = v
        return out

    def trainable_variables_to_train(self):
        """The variables the optimizer updates, chosen as the original (§7.2)."""
        hps = self.hps
        all_vars = [v for v in self.trainable_variables]
        if hps.do_train_io_only:
            io = []
            for name in self.dataset_names:
                ro = self.readouts[name]
                for lin in (ro if isinstance(ro, tuple) else (ro,)):
                    io += [v for v in (lin.W, lin.b) if v is not None]
                ri = self.readins[name]
                if hps.do_train_readin:
                    io += [v for v in (ri.W, ri.b) if v is not None]
            return io
        if hps.do_train_encoder_only:
            return [v for v in all_vars
                    if v.name.startswith("LFADS/ic_enc_")
                    or v.name.startswith("LFADS/z/ic_enc_")]
        return all_vars

    # ------------------------------------------------------------------ forward
    def _dropout_mask(self, rng, shape, keep_prob):
        """Inverted-dropout multiplier: 1/keep with probability keep, else 0."""
        u = rng.uniform(shape)
        return tf.cast(u < keep_prob, tf.float32) / keep_prob

    # ------------------------------------------------------------------ datasets
    # `dataset` is a dataset name (a Python string: that dataset's read-in and
    # read-out are built into the graph) or an int32 scalar tensor indexing
    # self.dataset_names: then a tf.switch_case picks that dataset's read-in or
    # read-out weights in the graph, and one traced step serves every session
    # (tracing a step with a controller takes seconds; one trace per session made a
    # five-session run start slowly). Only the weights are picked inside the switch;
    # the affine map itself is the same op on the same values in both forms, so
    # outputs and gradients are bit-identical. (Switching the whole affine map
    # instead changed the last bits of some generator gradients in training: the
    # graph around the switch let Grappler's arithmetic optimizer sum them in
    # another order.)
    def _linear(self, dataset, pick):
        """The affine map pick(name) (a Linear) of dataset `dataset`, as a function."""
        if isinstance(dataset, str):
            return pick(dataset)
        if len(self.dataset_names) == 1:
            return pick(self.dataset_names[0])

        def weights(n):
            lin = pick(n)
            return tf.identity(lin.weight()), tf.identity(lin.b)

        w, b = tf.switch_case(dataset, [lambda n=n: weights(n) for n in self.dataset_names])
        return lambda x: _matmul_last(x, w) + b

    def _readin(self, dataset, x_bxtxd):
        return self._linear(dataset, lambda n: self.readins[n])(x_bxtxd)

    def _readout_linear(self, dataset, factors, part=0):
        """The read-out affine map (part 1: the Gaussian log-variances) of factors."""
        def pick(n):
            ro = self.readouts[n]
            return ro[part] if isinstance(ro, tuple) else ro
        return self._linear(dataset, pick)(factors)

    def _readout(self, name, factors):
        """Returns (log-rates or [means, logvars] parameters, reported params, rates)."""
        if self.output_dist == "poisson":
            logr = self._readout_linear(name, factors)
            rates = tf.exp(tf.clip_by_value(logr, -CLIP_VALUE, CLIP_VALUE))
            return logr, rates, rates
        means = self._readout_linear(name, factors)
        logvars = self._readout_linear(name, factors, part=1)
        variances = tf.exp(tf.clip_by_value(logvars, -CLIP_VALUE, CLIP_VALUE))
        return (means, logvars), tf.concat([means, variances], axis=-1), means

    def forward(self, name, data_bxtxd, ext_input_bxtxi, rng, mode, keep_prob=1.0,
                num_samples=1, batch_size=None):
        """The LFADS forward pass for one dataset `name`.

        name: the dataset's name (a Python string), or an int32 scalar tensor
          indexing self.dataset_names (one graph for all datasets, see _linear).

        mode: "train" (posterior samples, dropout with keep_prob),
          "posterior_sample" (samples, no dropout), "posterior_mean" (g0 and u_t at
          their posterior means, no dropout), "prior_sample" (g0 and u_t from the
          priors; data not used, batch_size trials are generated).
        num_samples: the encoders run once per trial, then every trial is repeated
          num_samples times (rows trial-major) before sampling g0 and u_t.
        Returns a ModelOutput whose batch dimension is B * num_samples.
        """
        hps = self.hps
        T = self.num_steps
        U, Z, I = hps.co_dim, hps.ic_dim, hps.ext_input_dim
        training = mode == "train"
        prior = mode == "prior_sample"
        use_mean = mode == "posterior_mean"

        if prior:
            batch = tf.constant(batch_size, tf.int32)
        else:
            data_bxtxd = tf.cast(data_bxtxd, tf.float32)
            batch = tf.shape(data_bxtxd)[0]
        rows = batch * num_samples

        def repeat(x):
            return x if num_samples == 1 else tf.repeat(x, num_samples, axis=0)

        ext_do = None
        if I > 0 and ext_input_bxtxi is not None:
            ext_do = tf.cast(ext_input_bxtxi, tf.float32)
            if training:
                ext_do *= self._dropout_mask(rng, tf.shape(ext_do), keep_prob)

        # ---- encoders (not run when sampling from the prior)
        ic_post = None
        ci_bxtxe = None
        if not prior:
            data_do = data_bxtxd
            if training:  # one mask shared by the IC and CI encoders (§4.5)
                data_do = data_bxtxd * self._dropout_mask(rng, tf.shape(data_bxtxd),
                                                          keep_prob)
            enc_in = self._readin(name, data_do)
            if ext_do is not None and not hps.inject_ext_input_to_gen:
                enc_in = tf.concat([enc_in, ext_do], axis=-1)
            jobs = []
            n_ic = self.n_ic_steps
            if U > 0:
                jobs.append((self.ci_enc_fwd, enc_in, self.ci_enc_t0_fwd))
                if not hps.do_causal_controller:
                    jobs.append((self.ci_enc_rev, tf.reverse(enc_in, [1]),
                                 self.ci_enc_t0_rev))
            ic_jobs = []
            if Z > 0:
                ic_in = enc_in[:, :n_ic]
                ic_jobs = [(self.ic_enc_fwd, ic_in, self.ic_enc_t0_fwd),
                           (self.ic_enc_rev, tf.reverse(ic_in, [1]), self.ic_enc_t0_rev)]
            run = run_encoders_reference if self.use_reference_rnn else run_encoders
            states, finals = [], []
            for group in ([jobs + ic_jobs] if n_ic == T else [jobs, ic_jobs]):
                if group:  # one loop for all encoders reading the same steps
                    group_states, group_finals = run(group)
                    states, finals = states + group_states, finals + group_finals
            ci_states, ic_finals = states[:len(jobs)], finals[len(jobs):]
            if Z > 0:
                # last forward state and last reverse state, both have seen 0..n-1
                ic_enc = tf.concat(ic_finals, axis=-1)
                if training:
                    ic_enc *= self._dropout_mask(rng, tf.shape(ic_enc), keep_prob)
                ic_post = dist.DiagonalGaussian(
                    self.ic_post_mean(ic_enc),
                    dist.logvar_with_floor(self.ic_post_logvar(ic_enc),
                                           hps.ic_post_var_min))
            if U > 0:
                ci_fwd = ci_states[0]
                ci_parts = [self._lag(ci_fwd, hps.controller_input_lag, forward=True)]
                if not hps.do_causal_controller:
                    ci_rev = tf.reverse(ci_states[1], [1])  # index by absolute time
                    ci_parts.append(self._lag(ci_rev, hps.controller_input_lag,
                                              forward=False))
                ci_bxtxe = repeat(tf.concat(ci_parts, axis=-1))

        # ---- initial condition g0 and generator initial state
        ic_prior = kl_ic_b = g0 = None
        if Z > 0:
            ic_prior = self.ic_prior.params(rows)
            if prior:
                g0, _ = ic_prior.sample(rng)
            else:
                ic_post = dist.DiagonalGaussian(repeat(ic_post.mean), repeat(ic_post.logvar))
                g0 = ic_post.mean if use_mean else ic_post.sample(rng)[0]
                kl_ic_b = hps.kl_ic_weight * dist.kl_gaussian_gaussian(ic_post, ic_prior)
            gen_ics = self.g0_2_gen_ic(g0)
        else:
            gen_ics = tf.tile(self.gen_g0, tf.stack([rows, 1]))

        # ---- controller / generator loop
        gen_ext = None
        if ext_do is not None and hps.inject_ext_input_to_gen:
            gen_ext = repeat(ext_do)
        if self.use_reference_rnn or (mode != "train" and num_samples > 1):
            # Without gradients and with many rows (posterior sampling), the element-
            # wise loop is faster: its input projections are one big matmul before
            # the loop (9.2 s instead of 11.9 s for 1,000 trials x 50 samples, C1).
            loop_fn = self._generator_loop_reference
        else:
            loop_fn = self._generator_loop
        loop = loop_fn(name, gen_ics, ci_bxtxe, gen_ext, rng, mode, keep_prob, rows)
        gen_states, factors, co, co_mean, co_logvar, co_noise = loop

        # ---- observation model and costs
        params, output_params, rates = self._readout(name, factors)
        log_p_xgz_b = kl_co_b = None
        if not prior:
            targets = repeat(data_bxtxd)
            if self.output_dist == "poisson":
                loglik = dist.poisson_log_likelihood(targets, params)
            else:
                loglik = dist.gaussian_log_likelihood(targets, params[0], params[1])
            log_p_xgz_b = tf.reduce_sum(loglik, axis=[1, 2])
            if U > 0:
                # The KL uses posterior samples even in posterior_mean mode, as the
                # original (its push-mean costs are a diagnostic only, spec Q21).
                if use_mean:
                    z_co = co_mean + tf.exp(0.5 * co_logvar) * co_noise
                else:
                    z_co = co
                kl_co_b = hps.kl_co_weight * dist.kl_ar1_sampled(
                    z_co, co_noise, co_logvar, self.co_prior)

        return ModelOutput(
            factors_bxtxf=factors, gen_states_bxtxg=gen_states, gen_ics_bxg=gen_ics,
            rates_bxtxd=rates, output_params_bxtxp=output_params,
            log_p_xgz_b=log_p_xgz_b, kl_ic_b=kl_ic_b, kl_co_b=kl_co_b,
            ic_post_mean_bxz=None if ic_post is None else ic_post.mean,
            ic_post_logvar_bxz=None if ic_post is None else ic_post.logvar,
            ic_prior_mean_bxz=None if ic_prior is None else ic_prior.mean,
            ic_prior_logvar_bxz=None if ic_prior is None else ic_prior.logvar,
            co_bxtxu=co, co_post_mean_bxtxu=co_mean, co_post_logvar_bxtxu=co_logvar)

    @staticmethod
    def _lag(x_bxtxe, lag, forward):
        """Forward encoding at t-lag, or reverse encoding at t+lag; zeros outside."""
        if lag == 0:
            return x_bxtxe
        T = x_bxtxe.shape[1]
        lag = min(lag, T)
        # tf.split, not slicing: the gradient of a slice is a slow StridedSliceGrad
        if forward:
            kept, dropped = tf.split(x_bxtxe, [T - lag, lag], axis=1)
            return tf.concat([tf.zeros_like(dropped), kept], axis=1)
        dropped, kept = tf.split(x_bxtxe, [lag, T - lag], axis=1)
        return tf.concat([kept, tf.zeros_like(dropped)], axis=1)

    def _generator_loop(self, name, gen_ics, ci_bxtxe, gen_ext_bxtxi, rng, mode,
                        keep_prob, rows):
        """Runs controller (if any) and generator over T steps (fast_rnn's loop).

        Returns gen_states [B,T,G], factors [B,T,F], and for a controller u_t, its
        posterior mean/logvar and the posterior noise, each [B,T,U] (else None).
        Rate feedback to the controller uses the element-wise reference loop.
        """
        hps = self.hps
        T, U, G = self.num_steps, hps.co_dim, hps.gen_dim
        training = mode == "train"
        prior = mode == "prior_sample"
        has_con = U > 0 and not prior
        feed_rates = (has_con and self.feedback_dim > 0
                      and hps.feedback_factors_or_rates == "rates")
        if feed_rates:
            return self._generator_loop_reference(name, gen_ics, ci_bxtxe, gen_ext_bxtxi,
                                                  rng, mode, keep_prob, rows)
        w_fac = self.gen_2_fac.weight()
        gen = self.generator
        clip = hps.cell_clip_value

        def time_major(x):
            return tf.transpose(x, [1, 0, 2])

        gen_mask = None
        if training:
            gen_mask = self._dropout_mask(rng, tf.stack([T, rows, G]), keep_prob)
        ext = None if gen_ext_bxtxi is None else time_major(gen_ext_bxtxi)
        if not has_con:
            # No controller in this pass: the generator's inputs (AR(1) prior samples
            # and/or external inputs) are known up front.
            parts = []
            co = None
            if prior and U > 0:
                co = self.co_prior.sample(rng, rows, T)
                parts.append(time_major(co))
            if ext is not None:
                parts.append(ext)
            gen_x = tf.concat(parts, -1) if parts else None
            xp, w = gen.fused_inputs(gen_x, slice(0, gen.n_in), slice(0, 0))
            # one stacked cell: [T, B, m] -> [1, T, B, m], a bias [m] -> [1, 1, m]
            xp = [x[None] if x.shape.rank == 3 else tf.reshape(x, [1, 1, -1]) for x in xp]
            gen_states, _ = fast_rnn.gru_stack(xp[0], xp[1], gen_ics[None], w[0][None],
                                               w[1][None], clip, T)
            gen_states = tf.squeeze(gen_states, 1)
            gen_do = gen_states if gen_mask is None else gen_states * gen_mask
            factors = _matmul_last(time_major(gen_do), w_fac)
            return time_major(gen_states), factors, co, None, None, None

        con = self.controller
        k = self.ci_dim
        ci = ci_bxtxe
        fb_mask = None
        if training:
            con_mask = self._dropout_mask(rng, tf.stack([rows, T, k + self.feedback_dim]),
                                          keep_prob)
            ci = ci * con_mask[:, :, :k]
            fb_mask = time_major(con_mask[:, :, k:])
        eps = rng.normal(tf.stack([T, rows, U]))
        if self.feedback_dim > 0:
            # "t = -1" feedback: factors of the undropped initial state (spec Q29)
            fb0 = tf.matmul(gen_ics, w_fac)
        else:
            fb0 = tf.zeros(tf.stack([rows, 0]))
        co_w = (tf.concat([self.co_post_mean.W, self.co_post_logvar.W], axis=1),
                tf.concat([self.co_post_mean.b, self.co_post_logvar.b], axis=1)[0])
        con_h0 = tf.tile(self.con_c0, tf.stack([rows, 1]))
        con_xp, con_w = con.fused_inputs(time_major(ci), slice(0, k),
                                         slice(k, k + self.feedback_dim))
        gen_xp, gen_w = gen.fused_inputs(ext, slice(U, gen.n_in), slice(0, U))
        outs = fast_rnn.controller_generator(
            con_xp, fb0, con_h0, gen_ics, con_w, co_w, gen_xp, gen_w, w_fac, clip, eps,
            fb_mask_tbf=fb_mask, gen_mask_tbg=gen_mask, use_mean=mode == "posterior_mean")
        gen_states, factors, co, co_mean, co_logvar = [time_major(x) for x in outs]
        return gen_states, factors, co, co_mean, co_logvar, time_major(eps)

    def _generator_loop_reference(self, name, gen_ics, ci_bxtxe, gen_ext_bxtxi, rng, mode,
                                  keep_prob, rows):
        """Element-wise controller/generator loop in one tf.scan (automatic gradients).

        Returns gen_states [B,T,G], factors [B,T,F], and for a controller u_t, its
        posterior mean/logvar and the posterior noise, each [B,T,U] (else None).
        """
        hps = self.hps
        T, U, G, F = self.num_steps, hps.co_dim, hps.gen_dim, hps.factors_dim
        training = mode == "train"
        prior = mode == "prior_sample"
        use_mean = mode == "posterior_mean"
        has_con = U > 0 and not prior
        feedback = has_con and self.feedback_dim > 0
        w_fac = self.gen_2_fac.weight()
        gen = self.generator

        def time_major(x):
            return tf.transpose(x, [1, 0, 2])

        elems = {}
        if training:
            elems["gen_mask"] = self._dropout_mask(rng, tf.stack([T, rows, G]), keep_prob)
        # Generator input contributions that do not depend on the state.
        if gen_ext_bxtxi is not None:
            w_ru_ext, w_c_ext = gen.x_2_ru.W[U:], gen.x_2_c.W[U:]
            elems["gen_ext_ru"] = time_major(_matmul_last(gen_ext_bxtxi, w_ru_ext))
            elems["gen_ext_c"] = time_major(_matmul_last(gen_ext_bxtxi, w_c_ext))
        if U > 0:
            w_gen_u_ru, w_gen_u_c = gen.x_2_ru.W[:U], gen.x_2_c.W[:U]
        if prior and U > 0:
            elems["u_prior"] = time_major(self.co_prior.sample(rng, rows, T))
        if has_con:
            con = self.controller
            k = self.ci_dim
            ci = ci_bxtxe
            if training:
                con_mask = self._dropout_mask(rng, tf.stack([rows, T, k + self.feedback_dim]),
                                              keep_prob)
                ci = ci * con_mask[:, :, :k]
                if feedback:
                    elems["fb_mask"] = time_major(con_mask[:, :, k:])
            elems["con_x_ru"] = time_major(_matmul_last(ci, con.x_2_ru.W[:k]))
            elems["con_x_c"] = time_major(_matmul_last(ci, con.x_2_c.W[:k]))
            elems["co_noise"] = rng.normal(tf.stack([T, rows, U]))
            w_fb_ru, w_fb_c = con.x_2_ru.W[k:], con.x_2_c.W[k:]
            con_bias = con.recurrent_bias()
            w_co = tf.concat([self.co_post_mean.W, self.co_post_logvar.W], axis=1)
            b_co = tf.concat([self.co_post_mean.b, self.co_post_logvar.b], axis=1)
        gen_bias = gen.recurrent_bias()
        feed_rates = feedback and hps.feedback_factors_or_rates == "rates"

        def feedback_value(fac):
            if not feed_rates:
                return fac
            if self.output_dist == "poisson":
                return tf.exp(tf.clip_by_value(self._readout_linear(name, fac),
                                               -CLIP_VALUE, CLIP_VALUE))
            return self._readout_linear(name, fac)

        state = {"gen": gen_ics}
        if has_con:
            state["con"] = tf.tile(self.con_c0, tf.stack([rows, 1]))
            if feedback:
                # "t = -1" feedback: from the undropped initial state, unclipped
                # rates (spec Q29).
                fac0 = tf.matmul(gen_ics, w_fac)
                if feed_rates and self.output_dist == "poisson":
                    state["fb"] = tf.exp(self._readout_linear(name, fac0))
                else:
                    state["fb"] = feedback_value(fac0)

        def step(carry, x):
            state, _ = carry
            out = {}
            gen_x_ru = gen_x_c = 0.0
            if has_con:
                x_ru, x_c = x["con_x_ru"], x["con_x_c"]
                if feedback:
                    fb = state["fb"] * x["fb_mask"] if training else state["fb"]
                    x_ru = x_ru + tf.matmul(fb, w_fb_ru)
                    x_c = x_c + tf.matmul(fb, w_fb_c)
                con_h = con.step(state["con"], x_ru, x_c, con_bias)
                co_params = tf.matmul(con_h, w_co) + b_co
                co_mean, co_logvar = co_params[:, :U], co_params[:, U:]
                co_logvar = dist.logvar_with_floor(co_logvar, 0.0)
                if use_mean:
                    u = co_mean
                else:
                    u = co_mean + tf.exp(0.5 * co_logvar) * x["co_noise"]
                out.update(co=u, co_mean=co_mean, co_logvar=co_logvar)
            elif prior and U > 0:
                u = x["u_prior"]
                out["co"] = u
            if U > 0:
                gen_x_ru = tf.matmul(u, w_gen_u_ru)
                gen_x_c = tf.matmul(u, w_gen_u_c)
            if "gen_ext_ru" in x:
                gen_x_ru += x["gen_ext_ru"]
                gen_x_c += x["gen_ext_c"]
            gen_h = gen.step(state["gen"], gen_x_ru, gen_x_c, gen_bias)
            gen_do = gen_h * x["gen_mask"] if training else gen_h
            new_state = {"gen": gen_h}
            out["gen"] = gen_h
            if has_con:
                new_state["con"] = con_h
            if feedback:
                fac = tf.matmul(gen_do, w_fac)
                out["fac"] = fac
                new_state["fb"] = feedback_value(fac)
            elif training:
                out["gen_do"] = gen_do
            return new_state, out

        # Template of the per-step outputs so tf.scan knows their structure.
        out0 = {"gen": gen_ics}
        zeros_u = tf.zeros(tf.stack([rows, U])) if U > 0 else None
        if has_con:
            out0.update(co=zeros_u, co_mean=zeros_u, co_logvar=zeros_u)
        elif prior and U > 0:
            out0["co"] = zeros_u
        if feedback:
            out0["fac"] = tf.zeros(tf.stack([rows, F]))
        elif training:
            out0["gen_do"] = gen_ics
        if not elems:  # tf.scan needs something to iterate over
            elems["t"] = tf.range(T)
        _, outs = tf.scan(step, elems, initializer=(state, out0))
        outs = {k: tf.transpose(v, [1, 0, 2]) for k, v in outs.items()}
        gen_states = outs["gen"]
        if feedback:
            factors = outs["fac"]
        else:
            factors = _matmul_last(outs["gen_do"] if training else gen_states, w_fac)
        co_noise = None
        if has_con:
            co_noise = tf.transpose(elems["co_noise"], [1, 0, 2])
        return (gen_states, factors, outs.get("co"), outs.get("co_mean"),
                outs.get("co_logvar"), co_noise)

    # ------------------------------------------------------------------ costs
    def l2_cost(self):
        """[0.5 l2_gen_scale sum ||v||^2 + 0.5 l2_con_scale sum ||v||^2] / numel (§6.3)."""
        hps = self.hps
        if not (hps.l2_gen_scale > 0 or hps.l2_con_scale > 0):
            return tf.constant(0.0)
        cost = 0.0
        for scale, vs in ((hps.l2_gen_scale, self.l2_gen_vars),
                          (hps.l2_con_scale, self.l2_con_vars)):
            if scale > 0:
                cost += 0.5 * scale * tf.add_n([tf.reduce_sum(tf.square(v)) for v in vs])
        return cost / self.l2_numel

    def corr_cost(self, co_mean_bxtxu):
        """mean over pairs i<j and batch of 0.5 * (sum_t mu_ti mu_tj)^2 (§6.4)."""
        U = self.hps.co_dim
        s_bxuxu = tf.einsum("bti,btj->bij", co_mean_bxtxu, co_mean_bxtxu)
        iu, ju = np.triu_indices(U, k=1)
        pairs = tf.gather(tf.reshape(s_bxuxu, [-1, U * U]), iu * U + ju, axis=1)
        return tf.reduce_mean(0.5 * tf.square(pairs))

    def costs(self, out, step, num_samples=1):
        """The training objective and bounds (§6) from a ModelOutput.

        With num_samples > 1 each group of num_samples rows is one trial; the
        returned per-trial vectors ([B]) average over its samples.
        """
        hps = self.hps
        kl_weight = ramp_weight(step, hps.kl_start_step, hps.kl_increase_steps)
        l2_weight = ramp_weight(step, hps.l2_start_step, hps.l2_increase_steps)
        kl_b = tf.zeros_like(out.log_p_xgz_b)
        if out.kl_ic_b is not None:
            kl_b += out.kl_ic_b
        if out.kl_co_b is not None:
            kl_b += out.kl_co_b

        def per_trial(x_b):
            return tf.reshape(x_b, [-1, num_samples])

        recon = -tf.reduce_mean(per_trial(out.log_p_xgz_b), axis=1)
        kl = tf.reduce_mean(per_trial(kl_b), axis=1)
        l2 = self.l2_cost()
        corr = tf.constant(0.0)
        if hps.co_mean_corr_scale > 0 and out.co_post_mean_bxtxu is not None:
            corr = self.corr_cost(out.co_post_mean_bxtxu)
        total = recon + kl_weight * kl + l2_weight * l2 + hps.co_mean_corr_scale * corr
        lb = per_trial(out.log_p_xgz_b - kl_b)
        nll_vae = -tf.reduce_mean(lb, axis=1)
        nll_iwae = -(tf.reduce_logsumexp(lb, axis=1) - tf.math.log(float(num_samples)))
        return Costs(total=total, recon=recon, kl=kl, l2=l2, corr=corr,
                     kl_weight=kl_weight, l2_weight=l2_weight,
                     nll_bound_vae=nll_vae, nll_bound_iwae=nll_iwae)


class Adam(tf.Module):
    """Adam exactly as TF1's AdamOptimizer, with the original's slot names.

        lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
        m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  w <- w - lr_t m / (sqrt(v) + eps)

    Written out (14 lines) rather than using keras.optimizers.Adam because LFADS uses
    epsilon = 0.1, where the exact placement of epsilon matters, and because the
    slots and beta powers must carry the original's names (`LFADS/LFADS/<var>/Adam`,
    `LFADS/beta1_power`) to export and import models of the original.
    """

    def __init__(self, variables, learning_rate, beta1=0.9, beta2=0.999, epsilon=0.1):
        super().__init__(name=None)
        self.learning_rate = learning_rate
        self.beta1, self.beta2, self.epsilon = beta1, beta2, epsilon
        self.beta1_power = tf.Variable(beta1, name="LFADS/beta1_power", trainable=False)
        self.beta2_power = tf.Variable(beta2, name="LFADS/beta2_power", trainable=False)
        self.m = {}
        self.v = {}
        for var in variables:
            base = var.name[:-2]
            self.m[base] = tf.Variable(tf.zeros_like(var), trainable=False,
                                       name="LFADS/" + base + "/Adam")
            self.v[base] = tf.Variable(tf.zeros_like(var), trainable=False,
                                       name="LFADS/" + base + "/Adam_1")

    def apply(self, grads_and_vars):
        lr_t = (self.learning_rate * tf.sqrt(1.0 - self.beta2_power)
                / (1.0 - self.beta1_power))
        for g, var in grads_and_vars:
            base = var.name[:-2]
            m, v = self.m[base], self.v[base]
            m.assign(self.beta1 * m + (1.0 - self.beta1) * g)
            v.assign(self.beta2 * v + (1.0 - self.beta2) * tf.square(g))
            var.assign_sub(lr_t * m / (tf.sqrt(v) + self.epsilon))
        self.beta1_power.assign(self.beta1_power * self.beta1)
        self.beta2_power.assign(self.beta2_power * self.beta2)
