"""The optimizer: Adam as TF1's AdamOptimizer, with the original's variable names (§7)."""
import tensorflow as tf


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
        with tf.name_scope("adam"):  # (names the ops in a profile)
            self._apply(grads_and_vars)

    def _apply(self, grads_and_vars):
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
