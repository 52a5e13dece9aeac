"""The model's building blocks: an affine map and the two GRU cells.

Each keeps the original's TF1 variable names (`<scope>/GRU/Gates/xh_2_ru/W`, ...),
which write_model_params and the import of original models rely on.
"""
import numpy as np
import tensorflow as tf


def init_normal(rng, shape, alpha):
    """N(0, alpha/sqrt(fan_in)) initial values (not truncated, as the original)."""
    return (rng.standard_normal(shape) * (alpha / np.sqrt(shape[0]))).astype(np.float32)


def matmul_last(x, w):
    """x [..., n] @ w [n, m] -> [..., m], as one 2-D matmul."""
    n, m, lead = x.shape[-1], w.shape[-1], x.shape[:-1].as_list()
    if (n is not None and m and sum(d is None for d in lead) <= 1
            and all(d is None or d > 0 for d in lead)):
        # shapes known but for the batch: no shape ops in the graph (this function is
        # called for every projection; its shape ops were a fifth of a traced step)
        out = tf.matmul(tf.reshape(x, [-1, n]), w)
        return tf.reshape(out, [-1 if d is None else d for d in lead] + [m])
    shape = tf.shape(x)
    out = tf.matmul(tf.reshape(x, [-1, shape[-1]]), w)
    return tf.reshape(out, tf.concat([shape[:-1], tf.shape(w)[-1:]], axis=0))


def with_forget_bias(b_ru_1x2n, forget_bias):
    """[1, 2n] gate bias with the forget bias added to the update (second) half."""
    n = b_ru_1x2n.shape[-1] // 2
    # a constant: one op, not five, each time a GRU is used
    return b_ru_1x2n + np.concatenate([np.zeros((1, n), np.float32),
                                       np.full((1, n), forget_bias, np.float32)], axis=1)


class Linear(tf.Module):
    """Affine map y = x W + b with the original's variables `<name>/W`, `<name>/b`.

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
            mat_init = init_normal(init_rng, (in_size, out_size), alpha)
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
        y = matmul_last(x, self.weight())
        return y + self.b if self.b is not None else y


class EncoderGRU(tf.Module):
    """The encoders' GRU (the original's `GRU`): one joint gate matrix over concat(x, h).

        [r, u] = sigmoid(concat(x, h) W_ru + b_ru + [0, forget_bias])
        c      = tanh(concat(x, r*h) W_c + b_c)
        h'     = clip(u*h + (1-u)*c, -clip_value, clip_value)

    Only the gate weights get `weight_scale`; the candidate weights use alpha=1,
    as in the original.
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
        return matmul_last(x_bxtxk, w_ru) + b_ru, matmul_last(x_bxtxk, w_c) + b_c

    def input_weights(self):
        """(W_x_ru [k, 2n], b_ru [1, 2n] with the forget bias, W_x_c [k, n], b_c [1, n])."""
        return (self.gates.W[:self.n_in], with_forget_bias(self.gates.b, self.forget_bias),
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
    """The controller's and generator's GRU (`GenGRU`): separate input/recurrent weights.

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
            xp = (matmul_last(x_pre, self.x_2_ru.W[pre_rows]) + b_ru,
                  matmul_last(x_pre, self.x_2_c.W[pre_rows]) + b_c)
        w_ru, w_c = self.h_2_ru.W, self.rh_2_c.W
        if loop_rows.stop > loop_rows.start:
            w_ru = tf.concat([self.x_2_ru.W[loop_rows], w_ru], 0)
            w_c = tf.concat([self.x_2_c.W[loop_rows], w_c], 0)
        return xp, (w_ru, w_c)

    def recurrent_bias(self):
        """[1, 2n] gate bias with the forget bias folded into the update half."""
        return with_forget_bias(self.h_2_ru.b, self.forget_bias)

    def step(self, h, x_ru, x_c, bias_ru):
        """One step given the input contributions x_ru [B, 2n], x_c [B, n] (or 0)."""
        n = self.n_units
        ru = tf.sigmoid(x_ru + tf.matmul(h, self.h_2_ru.W) + bias_ru)
        r, u = ru[:, :n], ru[:, n:]
        c = tf.tanh(x_c + tf.matmul(r * h, self.rh_2_c.W) + self.rh_2_c.b)
        return tf.clip_by_value(u * h + (1.0 - u) * c, -self.clip_value, self.clip_value)
