"""Coordinated dropout (CD) and sample validation (SV): masks between batch and model.

Method: Keshtkaran & Pandarinath (2019), "Enabling hyperparameter optimization in
sequential autoencoders for spiking neural data". A sequential autoencoder can lower
its reconstruction cost by passing each input entry straight through to its own
output (an "identity" solution) instead of inferring the dynamics. Both tools work on
entries (trial x time bin x neuron) of a training batch:

  CD  At every training step a random fraction cd_rate of the entries is hidden from
      the encoders (set to 0; the others scaled by 1 / (1 - cd_rate), as dropout).
      The reconstruction gradient flows only from the hidden entries, so no weight is
      rewarded for copying an entry it saw to the output. Optionally a fraction
      cd_pass_rate of the *seen* entries lets its gradient pass as well.
  SV  A fixed fraction sv_rate of the training entries, drawn once per data set
      (SampleValidation, kept in the checkpoint), is never shown to the encoders and
      never enters the training objective. Their reconstruction cost (sv_recon) then
      measures how well the model predicts data it has never seen, within the
      training trials: unlike the validation cost it rises when the model overfits
      by passing entries through.

`apply` is the one function between "batch" and "model": stateless (its randomness
comes from a seed [2], tf.random stateless ops), it returns the encoder input and a
CostMask. The model (lfads.LFADS.forward, keyword cost_mask_bxtxn) only applies the
CostMask to its per-entry log-likelihood (`objective_loglik`); it does not know
whether CD, SV or both made it.

Cost values (decisions):
  * CD keeps the *value* of the reconstruction cost over all entries and only blocks
    the gradient of the entries the encoders saw. The training recon in the fitlog
    stays the full-entry cost, comparable with runs without CD and with the
    validation recon.
  * CD weights the gradient of each entry that passes by 1 / p, where
    p = cd_rate + (1 - cd_rate) * cd_pass_rate is the chance that an entry's gradient
    passes. The reconstruction gradient is then an unbiased estimate of the full-entry
    gradient, as for SV below, so the KL and L2 weights keep their meaning. Without
    the weight, a CD rate of 0.3 would shrink the reconstruction gradient to 30 %
    and so act as a 3.3-fold KL and L2 weight: measured on the 200-trial NLB-style
    set, that posterior carried half the KL of the run without CD and scored lower.
  * SV entries are left out of the objective; the other entries are weighted by
    1 / (1 - sv_rate), so the training recon still estimates the full per-trial cost
    (comparable with the validation recon) and the KL and L2 weights keep their
    meaning.
  * sv_recon = (sum of -log p over the SV entries) / (number of SV entries) x T x D:
    the mean cost of an SV entry times the entries of a trial, i.e. the per-trial
    recon cost the model would have on entries it never saw. Normalising by the
    entries actually drawn (not by sv_rate) keeps batches with more or fewer SV
    entries comparable. With several data sets, each batch counts its SV entries in
    trials of its own T x D (see steps.split_batch_costs).
"""
import collections
import zlib

import numpy as np
import tensorflow as tf

from lfads_tf2.model import tunables

# Per-entry masks for the log-likelihood, each [B, T, D] float32 or None (not used):
#   grad_bxtxd    the weight of the reconstruction gradient: 1 / p where it passes
#                 (hidden from the encoders by CD, or passed; p the chance of passing),
#                 0 where only the value counts (CD)
#   weight_bxtxd  weight of the entry in the training objective: 0 for SV entries,
#                 1 / (1 - sv_rate) for the others (SV)
#   sv_bxtxd      1 for SV entries, whose log-likelihood is reported apart (SV)
CostMask = collections.namedtuple("CostMask", "grad_bxtxd weight_bxtxd sv_bxtxd")

# The value each field takes for entries beyond the mask (see `pad_to`): entries the
# encoders never read (held-out neurons, forward-predicted bins) are ordinary
# reconstruction entries whose gradient always passes.
_PAD_VALUES = CostMask(grad_bxtxd=1.0, weight_bxtxd=1.0, sv_bxtxd=0.0)


def cd_enabled(hps):
    """Whether the training step has coordinated dropout: --cd_rate > 0 at the start,
    or a search that may change cd_rate (hps.search_keys, see lfads_tf2/model/tunables.py).

    The rate itself is a variable the step reads (bundle.cd_rate), so a search may
    change it between epochs without retracing, also to 0, which turns CD off (all
    gradients pass). A run started with --cd_rate=0 has no CD ops in its graph and
    draws no extra random numbers, so its numbers are those of a run before CD existed.
    """
    return hps.get("cd_rate", 0.0) > 0.0 or tunables.searched(hps, "cd_rate")


def sv_enabled(hps):
    """Whether training holds out sample-validation entries (--sv_rate > 0)."""
    return hps.get("sv_rate", 0.0) > 0.0


def enabled(hps):
    return cd_enabled(hps) or sv_enabled(hps)


def apply(data_bxtxd, seed_2, cd_rate=None, cd_pass_rate=0.0, sv_mask_bxtxd=None,
          sv_rate=0.0):
    """The encoder input and the cost masks of one training batch.

    data_bxtxd: the batch's data [B, T, D].
    seed_2: int32/int64 [2], the seed of the stateless draws (same seed, same masks).
    cd_rate: scalar (tensor or float) or None (no CD). In-graph rate 0 turns CD off:
      nothing hidden, every gradient passes.
    cd_pass_rate: fraction of the seen entries whose gradient passes anyway (float).
    sv_mask_bxtxd: the batch's rows of the SV mask [B, T, D] (1 = SV entry) or None.
    sv_rate: the run's SV fraction, for the rescaling (float).

    encoder input = data * (1 - hidden) / (1 - cd_rate) * (1 - sv) / (1 - sv_rate)
    Returns (encoder input [B, T, D] float32, CostMask).
    """
    data = tf.cast(data_bxtxd, tf.float32)
    shape = tf.shape(data)
    scale = grad = weight = sv = None
    if cd_rate is not None:
        rate = tf.cast(cd_rate, tf.float32)
        seeds = tf.random.experimental.stateless_split(tf.cast(seed_2, tf.int64), 2)
        hidden = tf.random.stateless_uniform(shape, seeds[0]) < rate
        passed = tf.random.stateless_uniform(shape, seeds[1]) < cd_pass_rate
        scale = tf.cast(tf.logical_not(hidden), tf.float32) / (1.0 - rate)
        off = rate <= 0.0  # a search set the rate to 0: plain training
        p_pass = tf.where(off, 1.0, rate + (1.0 - rate) * cd_pass_rate)
        grad = tf.cast(hidden | passed | off, tf.float32) / p_pass
    if sv_mask_bxtxd is not None:
        sv = tf.cast(sv_mask_bxtxd, tf.float32)
        weight = (1.0 - sv) / (1.0 - sv_rate)
        scale = weight if scale is None else scale * weight
    enc_in = data if scale is None else data * scale
    return enc_in, CostMask(grad, weight, sv)


def pad_to(mask, shape_3):
    """The CostMask padded at the end of time and neurons to shape_3 ([B, T', N],
    T' >= T, N >= D), with the values of entries the encoders never read."""
    def pad(x, value):
        if x is None:
            return None
        extra = tf.cast(shape_3, tf.int32) - tf.shape(x)
        paddings = tf.stack([tf.zeros([3], tf.int32), extra], axis=1)
        return tf.pad(x, paddings, constant_values=value)
    return CostMask(*[pad(x, v) for x, v in zip(mask, _PAD_VALUES)])


def objective_loglik(loglik_bxtxn, mask):
    """Applies a CostMask to a per-entry log-likelihood [B, T', N].

    Returns (the log-likelihood terms of the training objective [B, T', N],
    the summed log-likelihood of the SV entries per trial [B] or None). The first
    keeps every value but multiplies the gradient by mask.grad (CD: 0 blocks it),
    and is 0 on SV entries and weighted elsewhere (SV); the second has no gradient.
    """
    mask = pad_to(mask, tf.shape(loglik_bxtxn))
    ll = loglik_bxtxn
    if mask.grad_bxtxd is not None:
        fixed = tf.stop_gradient(ll)
        # value: fixed + g * 0 = ll exactly; gradient: g * d ll
        ll = tf.where(mask.grad_bxtxd > 0, fixed + mask.grad_bxtxd * (ll - fixed), fixed)
    sv_loglik_b = None
    if mask.sv_bxtxd is not None:
        is_sv = mask.sv_bxtxd > 0
        zeros = tf.zeros_like(ll)
        # where, not a product: a non-finite SV entry must not reach the objective
        ll = tf.where(is_sv, zeros, ll * mask.weight_bxtxd)
        sv_loglik_b = tf.reduce_sum(
            tf.where(is_sv, tf.stop_gradient(loglik_bxtxn), zeros), axis=[1, 2])
    return ll, sv_loglik_b


def repeat(mask, num_samples):
    """Every row of a CostMask repeated num_samples times (rows trial-major)."""
    if mask is None or num_samples == 1:
        return mask
    return CostMask(*[None if x is None else tf.repeat(x, num_samples, 0) for x in mask])


# ------------------------------------------------------------------ the SV mask (data)
def draw_sv_mask(shape, sv_rate, sv_seed, name):
    """The SV mask of one data set's training trials: bool [E, T, D] with exactly
    round(sv_rate * E*T*D) (at least one) True entries, chosen uniformly.

    Seeded by (sv_seed, a CRC of the data set's name), so each data set's mask does
    not depend on which other data sets are in the run.
    """
    n = int(np.prod(shape))
    k = min(n, max(1, int(round(sv_rate * n))))
    rng = np.random.default_rng([int(sv_seed), zlib.crc32(name.encode("utf-8"))])
    flat = np.zeros(n, bool)
    flat[rng.choice(n, size=k, replace=False)] = True
    return flat.reshape(shape)


class SampleValidation(tf.Module):
    """The SV masks of a run, one non-trainable bool variable [E, T, D] per data set.

    Part of the checkpoint (child `sv`) when --sv_rate > 0: the mask is data, so a
    resumed run or an evaluation uses the one training used, whatever the flags.

    shapes: {data set name: (E train trials, T, D)}.
    """

    def __init__(self, shapes, sv_rate, sv_seed):
        super().__init__(name=None)
        self.sv_rate = float(sv_rate)
        self.masks = {name: tf.Variable(draw_sv_mask(shape, sv_rate, sv_seed, name),
                                        trainable=False, name="sv_mask_" + name)
                      for name, shape in sorted(shapes.items())}

    def arrays(self):
        """{name: float32 [E, T, D]} (1 = SV entry), for the training split."""
        return {name: v.numpy().astype(np.float32) for name, v in self.masks.items()}
