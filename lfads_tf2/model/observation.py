"""Observation models: what the read-out's parameters mean for the data (§4.10, §6.1).

One small class per distribution, chosen once by `for_dist`; the forward pass never
branches on the name. Each builds its own read-out maps (one `Linear` per parameter,
named as in the original) and turns their outputs `params` (a tuple of [B, T, D]
tensors) into a log-likelihood, the reported values and, for rate feedback to the
controller, rates.
"""
import numpy as np
import tensorflow as tf

import distributions as dist
from lfads_tf2.model.layers import Linear

# Reported rates / variances are exp(clip(log value, -80, 80)) (spec §16.1); the
# likelihood itself always uses the unclipped values.
CLIP_VALUE = 80.0


def _exp_clipped(x):
    return tf.exp(tf.clip_by_value(x, -CLIP_VALUE, CLIP_VALUE))


class Poisson(tf.Module):
    """counts ~ Poisson(exp(log_rates)); params = (log_rates [B, T, D],)."""

    def readout(self, dataset, F, D, init_rng, mat_init, bias_init, single_dataset):
        """(F -> D log-rates,): the identity when there is one dataset and F == D."""
        return (Linear(F, D, "LFADS/glm/fac_2_logrates_" + dataset, init_rng,
                       mat_init=mat_init, bias_init=bias_init,
                       identity=single_dataset and F == D),)

    def log_likelihood(self, x_bxtxd, params):
        return dist.poisson_log_likelihood(x_bxtxd, params[0])

    def reported(self, params):
        """(output params [B, T, D] = rates, rates [B, T, D]), rates clipped."""
        rates = _exp_clipped(params[0])
        return rates, rates

    def feedback(self, params, clip=True):
        """Rates fed back to the controller. The "t = -1" feedback is unclipped (Q29)."""
        return _exp_clipped(params[0]) if clip else tf.exp(params[0])


class Gaussian(tf.Module):
    """x ~ N(means, exp(logvars)); params = (means, logvars), each [B, T, D]."""

    def readout(self, dataset, F, D, init_rng, mat_init, bias_init, single_dataset):
        """(F -> D means, F -> D log-variances); the latter start at W = 0, b = 1."""
        means = Linear(F, D, "LFADS/glm/fac_2_means_" + dataset, init_rng,
                       mat_init=mat_init, bias_init=bias_init)
        logvars = Linear(F, D, "LFADS/glm/fac_2_logvars_" + dataset, init_rng,
                         mat_init=np.zeros((F, D), np.float32),
                         bias_init=np.ones((1, D), np.float32))
        return means, logvars

    def log_likelihood(self, x_bxtxd, params):
        return dist.gaussian_log_likelihood(x_bxtxd, params[0], params[1])

    def reported(self, params):
        """(output params [B, T, 2D] = [means, variances], "rates" = means [B, T, D])."""
        means, logvars = params
        return tf.concat([means, _exp_clipped(logvars)], axis=-1), means

    def feedback(self, params, clip=True):
        return params[0]


def for_dist(output_dist):
    """The observation model of --output_dist ("poisson" or "gaussian")."""
    return {"poisson": Poisson, "gaussian": Gaussian}[output_dist]()
