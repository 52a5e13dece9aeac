"""The cost terms of the training objective and the bounds.

    total = recon + kl_weight * kl + l2_weight * l2 + co_mean_corr_scale * corr
with recon = -log p(x | z) and kl the KL terms, per trial [B] (averaged over the
samples of a trial), l2 and corr scalars, and the weights linear ramps in the step.
"""
import collections

import numpy as np
import tensorflow as tf

from lfads_tf2.model import tunables as tunables_lib

Costs = collections.namedtuple("Costs", [
    "total", "recon", "kl", "l2", "corr", "kl_weight", "l2_weight",
    "nll_bound_vae", "nll_bound_iwae"])


def ramp_weight(step, start_step, increase_steps):
    """Linear 0 -> 1 ramp: min(max(step - start, 0) / increase_steps, 1)."""
    x = tf.cast(step - start_step, tf.float32) / float(increase_steps)
    return tf.minimum(tf.maximum(x, 0.0), 1.0)


def corr_cost(co_mean_bxtxu):
    """mean over pairs i<j and batch of 0.5 * (sum_t mu_ti mu_tj)^2."""
    U = co_mean_bxtxu.shape[-1]
    s_bxuxu = tf.einsum("bti,btj->bij", co_mean_bxtxu, co_mean_bxtxu)
    iu, ju = np.triu_indices(U, k=1)
    pairs = tf.gather(tf.reshape(s_bxuxu, [-1, U * U]), iu * U + ju, axis=1)
    return tf.reduce_mean(0.5 * tf.square(pairs))


class CostTerms(tf.Module):
    """The L2 penalty on the recurrent weights and the objective from a pass's
    log-likelihood [B], KL terms [B] and controller-output means [B, T, U].

    tunables: the model's tunables.Tunables, whose l2_gen_scale and l2_con_scale
    variables scale the L2 terms (None: the scales of hps, as constants).
    """

    def __init__(self, hps, l2_gen_vars, l2_con_vars, tunables=None):
        super().__init__(name=None)
        self.hps = hps
        self.l2_gen_vars, self.l2_con_vars = list(l2_gen_vars), list(l2_con_vars)
        # the denominator counts both sets even if l2_con_scale == 0, as in the original
        self.l2_numel = float(sum(int(np.prod(v.shape))
                                  for v in self.l2_gen_vars + self.l2_con_vars))
        self.tunables = tunables

    def _l2_terms(self):
        """[(scale, variables)] of the L2 terms in the graph: a scale of 0 leaves its
        term out (as the original), unless a search may change it (lfads_tf2/model/tunables.py)."""
        hps, terms = self.hps, []
        for name, vs in (("l2_gen_scale", self.l2_gen_vars),
                         ("l2_con_scale", self.l2_con_vars)):
            if vs and (hps[name] > 0 or tunables_lib.searched(hps, name)):
                scale = hps[name] if self.tunables is None else getattr(self.tunables, name)
                terms.append((scale, vs))
        return terms

    def l2(self):
        """[0.5 l2_gen_scale sum ||v||^2 + 0.5 l2_con_scale sum ||v||^2] / numel."""
        terms = self._l2_terms()
        if not terms:
            return tf.constant(0.0)
        cost = 0.0
        for scale, vs in terms:
            # 0.5 * scale is exact in float32 as in float64, so a scale variable gives
            # the numbers the Python constant gave
            cost += 0.5 * scale * tf.add_n([tf.reduce_sum(tf.square(v)) for v in vs])
        return cost / self.l2_numel

    def __call__(self, log_p_xgz_b, kl_b, co_mean_bxtxu, step, num_samples=1):
        """Costs; with num_samples > 1 each group of num_samples rows is one trial."""
        hps = self.hps
        kl_weight = ramp_weight(step, hps.kl_start_step, hps.kl_increase_steps)
        l2_weight = ramp_weight(step, hps.l2_start_step, hps.l2_increase_steps)

        def per_trial(x_b):
            return tf.reshape(x_b, [-1, num_samples])

        recon = -tf.reduce_mean(per_trial(log_p_xgz_b), axis=1)
        kl = tf.reduce_mean(per_trial(kl_b), axis=1)
        l2 = self.l2()
        corr = tf.constant(0.0)
        if hps.co_mean_corr_scale > 0 and co_mean_bxtxu is not None:
            corr = corr_cost(co_mean_bxtxu)
        total = recon + kl_weight * kl + l2_weight * l2 + hps.co_mean_corr_scale * corr
        lb = per_trial(log_p_xgz_b - kl_b)
        nll_vae = -tf.reduce_mean(lb, axis=1)
        nll_iwae = -(tf.reduce_logsumexp(lb, axis=1) - tf.math.log(float(num_samples)))
        return Costs(total=total, recon=recon, kl=kl, l2=l2, corr=corr,
                     kl_weight=kl_weight, l2_weight=l2_weight,
                     nll_bound_vae=nll_vae, nll_bound_iwae=nll_iwae)
