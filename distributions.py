"""Probability pieces of LFADS: observation models, priors, posteriors, KL terms.

All functions are elementwise or vectorised over time; the caller sums. Shapes use
B = batch, T = time bins, D = channels, Z = latent size, U = controller outputs.
Random draws take an explicit source with `uniform(shape)` and `normal(shape)`: a
`tf.random.Generator` (whose state lives in the checkpoint, so a seeded run is
reproducible) or a `SeedStream` drawn from one.
"""
import collections
import math

import numpy as np
import tensorflow as tf

LOG_2PI = math.log(2.0 * math.pi)


def poisson_log_likelihood(counts, log_rates):
    """log Poisson(k | exp(log_rates)) = k*logr - exp(logr) - lgamma(k+1), elementwise.

    No clipping: the likelihood is computed from the unclipped log-rates, as the
    original's lfads.py (it clips only the reported rates, at its _clip_value = 80).
    """
    counts = tf.cast(counts, log_rates.dtype)
    return counts * log_rates - tf.exp(log_rates) - tf.math.lgamma(counts + 1.0)


def gaussian_log_likelihood(x, mean, logvar):
    """log N(x | mean, exp(logvar)), elementwise."""
    return -0.5 * (logvar + LOG_2PI + tf.square(x - mean) * tf.exp(-logvar))


def gaussian_log_likelihood_of_noise(logvar, noise):
    """log N(z | mu, exp(logvar)) at z = mu + exp(logvar/2) * noise, elementwise.

    The same density as `gaussian_log_likelihood` at the reparameterised sample,
    written with the standard-normal noise that produced it. The original used
    this form whenever a Gaussian was evaluated at its own sample (it relied on
    TF1's identity `==` between tensors, which TF2 does not have).
    """
    return -0.5 * (logvar + LOG_2PI + tf.square(noise))


class SeedStream:
    """Random draws from one seed [2], each draw a stateless op with its own sub-seed.

    Draws from one tf.random.Generator are chained by tf.function's automatic
    control dependencies (each reads and bumps the generator state), so the
    independent parts of a training step could not run in parallel and each
    dropout mask waited for the previous one. Draws from a stream have no such
    order; the stream's seed comes from the generator, so runs stay reproducible.
    """

    def __init__(self, seed_2):
        self.seed_2 = seed_2
        self.draws = 0

    def _next_seed(self):
        self.draws += 1
        return tf.random.experimental.stateless_fold_in(self.seed_2, self.draws)

    def uniform(self, shape, dtype=tf.float32):
        return tf.random.stateless_uniform(shape, self._next_seed(), dtype=dtype)

    def normal(self, shape, dtype=tf.float32):
        return tf.random.stateless_normal(shape, self._next_seed(), dtype=dtype)


def seed_pairs(generator, n):
    """n seeds [2] of independent SeedStreams from a tf.random.Generator (one state bump)."""
    seeds_2xn = generator.make_seeds(n)
    return [seeds_2xn[:, i] for i in range(n)]


class DiagonalGaussian(collections.namedtuple("DiagonalGaussian", "mean logvar")):
    """A diagonal Gaussian given by tensors `mean` and `logvar` of equal shape."""

    def sample(self, rng):
        """Returns (z, noise): z = mean + exp(logvar/2) * noise, noise ~ N(0, I)."""
        noise = rng.normal(tf.shape(self.logvar), dtype=self.logvar.dtype)
        return self.with_noise(noise), noise

    def with_noise(self, noise):
        """z = mean + exp(logvar/2) * noise for given noise ~ N(0, I)."""
        return self.mean + tf.exp(0.5 * self.logvar) * noise


def logvar_with_floor(raw_logvar, var_min):
    """Posterior log-variance with a floor: log(exp(raw) + var_min)."""
    if var_min > 0.0:
        return tf.math.log(tf.exp(raw_logvar) + var_min)
    return raw_logvar


class LearnableDiagonalGaussian(tf.Module):
    """The learnable IC prior N(mean, var) with variables `<name>/mean`, `<name>/logvar`.

    The mean is always trainable. The log-variance variable is trainable only if
    var_max > var_min; then the effective variance is
        var = var_min + (var_max - var_min) * sigmoid(exp(logvar_variable)).
    Quirk kept from the original's distributions.py: exp(.) > 0 makes sigmoid(.) > 0.5,
    so the variance can never go below the midpoint of [var_min, var_max] and it
    starts at var_min + (var_max - var_min) * sigmoid(var_init), not at var_init.
    Reproduced literally so models trained with the original behave the same.
    """

    def __init__(self, z_size, name, mean_init=0.0, var_init=1.0, var_min=0.0,
                 var_max=1e6):
        super().__init__(name=None)
        if not var_init > 0.0:
            raise ValueError("%s: var_init must be > 0, got %g" % (name, var_init))
        if not var_max >= var_min:
            raise ValueError("%s: var_max (%g) must be >= var_min (%g)"
                             % (name, var_max, var_min))
        if not var_min <= var_init <= var_max:
            raise ValueError("%s: var_init (%g) must lie in [var_min, var_max] = [%g, %g]"
                             % (name, var_init, var_min, var_max))
        self.var_min, self.var_max = float(var_min), float(var_max)
        self.trainable_var = var_max > var_min
        self.mean_var = tf.Variable(tf.fill([1, z_size], float(mean_init)),
                                    name=name + "/mean")
        self.logvar_var = tf.Variable(
            tf.fill([1, z_size], float(np.log(var_init))), name=name + "/logvar",
            trainable=self.trainable_var)

    def params(self, batch_size):
        """Returns DiagonalGaussian with mean/logvar tiled to [batch_size, Z]."""
        if self.trainable_var:
            var = self.var_min + (self.var_max - self.var_min) * tf.sigmoid(
                tf.exp(self.logvar_var))
            logvar = tf.math.log(var)
        else:
            logvar = self.logvar_var
        multiples = tf.stack([batch_size, 1])
        return DiagonalGaussian(tf.tile(self.mean_var, multiples),
                                tf.tile(logvar, multiples))


class LearnableAR1Prior(tf.Module):
    """Independent zero-mean AR(1) priors over the U controller outputs.

    Variables `<name>/logevars` = log(innovation variance) and `<name>/logatau` =
    log(tau in time bins), each [1, U].
        phi = exp(-1/tau),  pvar = evar / (1 - phi^2)  (stationary variance)
        z_0 ~ N(0, pvar),   z_t | z_{t-1} ~ N(phi * z_{t-1}, evar)
    """

    def __init__(self, u_size, tau, noise_var, train_tau, train_noise_var, name):
        super().__init__(name=None)
        self.logevars = tf.Variable(
            tf.fill([1, u_size], float(np.log(noise_var))), name=name + "/logevars",
            trainable=train_noise_var)
        self.logatau = tf.Variable(
            tf.fill([1, u_size], float(np.log(tau))), name=name + "/logatau",
            trainable=train_tau)

    def phi(self):
        """[1, U] autoregression coefficient exp(-1/tau)."""
        return tf.exp(-tf.exp(-self.logatau))

    def logpvar(self):
        """[1, U] log of the stationary process variance."""
        phi = self.phi()
        return self.logevars - tf.math.log(1.0 - phi) - tf.math.log(1.0 + phi)

    def log_prob(self, z_bxtxu):
        """[B, T, U] elementwise log-density of each z_t given z_{t-1} (z_0: stationary)."""
        phi = self.phi()
        first = gaussian_log_likelihood(z_bxtxu[:, :1], 0.0, self.logpvar())
        rest = gaussian_log_likelihood(z_bxtxu[:, 1:], phi * z_bxtxu[:, :-1],
                                       self.logevars)
        return tf.concat([first, rest], axis=1)

    def sample(self, rng, batch_size, num_steps):
        """Draws [batch_size, num_steps, U] from the AR(1) process.

        The recurrence z_t = phi z_{t-1} + e_t is a linear filter; it is run with
        tf.scan on pre-drawn noise so there is no Python work per time step.
        """
        u_size = tf.shape(self.logatau)[1]
        return self.with_noise(rng.normal(tf.stack([num_steps, batch_size, u_size])))

    def with_noise(self, noise_txbxu):
        """The [B, T, U] AR(1) sample driven by given noise [T, B, U] ~ N(0, I)."""
        phi = self.phi()
        z0 = noise_txbxu[0] * tf.exp(0.5 * self.logpvar())
        evar_std = tf.exp(0.5 * self.logevars)
        z_txbxu = tf.scan(lambda z_prev, e: phi * z_prev + evar_std * e,
                          noise_txbxu[1:], initializer=z0)
        z_txbxu = tf.concat([z0[None], z_txbxu], axis=0)
        return tf.transpose(z_txbxu, [1, 0, 2])


def kl_gaussian_gaussian(q, p):
    """Analytic KL(q || p) of diagonal Gaussians, summed over the last axis -> [B].

    KL = sum_d 0.5 * (lv_p - lv_q + exp(lv_q - lv_p) + (mu_q - mu_p)^2 / exp(lv_p) - 1)
    """
    return tf.reduce_sum(
        0.5 * (p.logvar - q.logvar + tf.exp(q.logvar - p.logvar)
               + tf.square(q.mean - p.mean) * tf.exp(-p.logvar) - 1.0), axis=-1)


def kl_ar1_sampled(z_bxtxu, noise_bxtxu, q_logvar_bxtxu, prior):
    """One-sample Monte-Carlo KL(q(u) || AR(1) prior) per example -> [B].

    Uses the posterior samples z_t that the model already drew (and the noise that
    made them): KL_b = sum_{t,u} log q(z_t) - log p(z_t | z_{t-1}). This is the
    corrected formula of the original's last version (earlier versions double-
    counted t=0 or conditioned every step on z_0).
    """
    log_q = gaussian_log_likelihood_of_noise(q_logvar_bxtxu, noise_bxtxu)
    log_p = prior.log_prob(z_bxtxu)
    return tf.reduce_sum(log_q - log_p, axis=[1, 2])


def kl_ar1_analytic(q_mean_bxtxu, q_logvar_bxtxu, prior):
    """Closed-form KL(q(u) || AR(1) prior) over the whole sequence, per example -> [B].

    q(u) = prod_t N(mu_t, s2_t) (diagonal, independent across t, as LFADS's
    controller posterior); p(u_0) = N(0, pvar), p(u_t | u_{t-1}) = N(phi u_{t-1}, nvar).
        KL = sum_{t,u} E_q[log q(u_t)] - E_q[log p(u_t | u_{t-1})]
        E_q[log q(u_t)] = -0.5 (log(2 pi s2_t) + 1)
        E_q[log p(u_0)] = -0.5 (log(2 pi pvar) + (mu_0^2 + s2_0) / pvar)
        E_q[log p(u_t | u_{t-1})] = -0.5 (log(2 pi nvar)
                                   + ((mu_t - phi mu_{t-1})^2 + s2_t + phi^2 s2_{t-1}) / nvar)
    The expectation of the squared innovation has no cross term because q makes u_t
    and u_{t-1} independent. Unlike `kl_ar1_sampled` it has no sampling noise.
    """
    phi = prior.phi()                     # [1, U]
    logpvar, lognvar = prior.logpvar(), prior.logevars
    s2_bxtxu = tf.exp(q_logvar_bxtxu)
    neg_entropy = -0.5 * (q_logvar_bxtxu + LOG_2PI + 1.0)
    first_sq = tf.square(q_mean_bxtxu[:, :1]) + s2_bxtxu[:, :1]
    rest_sq = (tf.square(q_mean_bxtxu[:, 1:] - phi * q_mean_bxtxu[:, :-1])
               + s2_bxtxu[:, 1:] + tf.square(phi) * s2_bxtxu[:, :-1])
    log_p_first = -0.5 * (logpvar + LOG_2PI + first_sq * tf.exp(-logpvar))
    log_p_rest = -0.5 * (lognvar + LOG_2PI + rest_sq * tf.exp(-lognvar))
    return (tf.reduce_sum(neg_entropy, axis=[1, 2])
            - tf.reduce_sum(log_p_first, axis=[1, 2])
            - tf.reduce_sum(log_p_rest, axis=[1, 2]))
