"""The optimizer: Adam as TF1's AdamOptimizer, with the original's variable names."""
import tensorflow as tf


class Adam(tf.Module):
    """Adam exactly as TF1's AdamOptimizer, with the original's slot names.

        lr_t = lr * sqrt(1 - beta2^t) / (1 - beta1^t)
        m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;  w <- w - lr_t m / (sqrt(v) + eps)

    Not keras.optimizers.Adam, because LFADS uses
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
        # One fused ResourceApplyAdam per variable: the kernel TF1's AdamOptimizer ran,
        # so the update is the original's to the last bit of its arithmetic (it
        # computes m += (g - m)(1 - b1), v += (g^2 - v)(1 - b2), then the step above),
        # and a step has one op per variable instead of a dozen (fewer ops to trace
        # and optimize at start-up).
        lr = tf.convert_to_tensor(self.learning_rate, tf.float32)
        beta1_power = tf.convert_to_tensor(self.beta1_power)
        beta2_power = tf.convert_to_tensor(self.beta2_power)
        beta1, beta2, epsilon = (tf.constant(x, tf.float32)
                                 for x in (self.beta1, self.beta2, self.epsilon))
        for g, var in grads_and_vars:
            base = var.name[:-2]
            tf.raw_ops.ResourceApplyAdam(
                var=var.handle, m=self.m[base].handle, v=self.v[base].handle,
                beta1_power=beta1_power, beta2_power=beta2_power, lr=lr, beta1=beta1,
                beta2=beta2, epsilon=epsilon, grad=g)
        # (automatic control dependencies run these after the reads above)
        self.beta1_power.assign(beta1_power * beta1)
        self.beta2_power.assign(beta2_power * beta2)
