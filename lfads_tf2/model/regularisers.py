"""Input regularisers: everything between a batch of data and the model.

Four regularisers, one shape: each is a callable `(batch, seed) -> batch` on a dict
    data       [B, T, D]   the values the encoders read
    recon      [B, T', N]  what the read-out reconstructs, the likelihood's target (absent:
                           data; present whenever a regulariser ran)
    scale      [B, T, D]   the product of the encoder-input scales so far (absent: 1)
    cost_mask  CostMask    per entry: does it count in the cost, does its gradient pass
and the regulariser's own keys (sv_mask). `Regularisers(hps, cd_rate)` holds a run's,
in the order they apply; `Regularisers.apply` runs them and hands the model
data = the encoder input (values x scale), recon and cost_mask. The model
(lfads.LFADS.forward, keyword cost_mask_bxtxn) only applies the CostMask to its
per-entry log-likelihood (`objective_loglik`); it does not know which regulariser made
it.

  missing  --nan_is_missing: a NaN in the data marks an entry that was not observed
           (selective backpropagation through time: Zhu, Sedler et al. (2021), "Deep
           inference of latent dynamics with spatiotemporal super-resolution using
           selective backpropagation through time"). It is 0 at the encoders, the
           observed entries of the trial scaled by 1 / (its observed fraction) as
           dropout scales; it is left out of every cost (its log-likelihood term is
           0, so it has no gradient). Training and evaluation: the data are what they
           are.
  jitter   --temporal_spike_jitter_width: every spike of a training batch moves by a
           random shift in [-width, width] bins (count data only), so that the model
           cannot fit the exact bin of a spike.
  CD, SV   coordinated dropout and sample validation, below. Training only.

Where they run. Jitter runs on the host, on the numpy batch, before the compiled step
(`Regularisers.on_host`): its shifts come from the epoch's numpy RandomState, as they
always did, and the step is fed the jittered batch. The others run at the start of the
compiled step (`Regularisers.apply`), CD from a seed drawn from the step's generator.
Only regularisers that are on add ops or draw random numbers: a run without them has
exactly the graph and the numbers it had before they existed.

Their rates are tunables as every value a search may change (lfads_tf2/model/tunables.py):
cd_rate is a variable the step reads. sv_rate is not: the SV entries are drawn once and
kept in the checkpoint, so a new rate mid-run would not match them. The jitter width is
read from hps on the host at the start of every epoch, so no graph holds it.

Coordinated dropout and sample validation. Method: Keshtkaran & Pandarinath (2019),
"Enabling hyperparameter optimization in sequential autoencoders for spiking neural
data". A sequential autoencoder can lower its reconstruction cost by passing each input
entry straight through to its own output (an "identity" solution) instead of inferring
the dynamics. Both tools work on entries (trial x time bin x neuron) of a training
batch:

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
    trials of its own T x D (see `sv_trials`). With missing entries, SV entries that
    are missing do not count, and a trial's entries are its observed ones.
"""
import collections
import zlib

import numpy as np
import tensorflow as tf

from lfads_tf2.model import tunables

# Per-entry masks for the log-likelihood, each float32 or None (not used):
#   grad_bxtxd      the weight of the reconstruction gradient: 1 / p where it passes
#                   (hidden from the encoders by CD, or passed; p the chance of passing),
#                   0 where only the value counts (CD)
#   weight_bxtxd    weight of the entry in the training objective: 0 for SV entries,
#                   1 / (1 - sv_rate) for the others (SV)
#   sv_bxtxd        1 for SV entries, whose log-likelihood is reported apart (SV)
#   observed_bxtxn  1 for observed entries, 0 for missing ones, over the target's
#                   extent [B, T', N] (missing entries)
# The first three cover the data's extent [B, T, D].
CostMask = collections.namedtuple(
    "CostMask", "grad_bxtxd weight_bxtxd sv_bxtxd observed_bxtxn", defaults=(None,))

# The value each field takes for entries beyond the mask (see `pad_to`): entries the
# encoders never read (held-out neurons, forward-predicted bins) are ordinary
# reconstruction entries whose gradient always passes.
_PAD_VALUES = CostMask(grad_bxtxd=1.0, weight_bxtxd=1.0, sv_bxtxd=0.0, observed_bxtxn=1.0)


# ------------------------------------------------------------------ which are on
def cd_enabled(hps):
    """Whether the training step has coordinated dropout: --cd_rate > 0 at the start,
    or a search that may change cd_rate (hps.search_keys, see lfads_tf2/model/tunables.py).

    The rate itself is a variable the step reads (the model's tunables.cd_rate), so a
    search may change it between epochs without retracing, also to 0, which turns CD
    off (all gradients pass). A run started with --cd_rate=0 has no CD ops in its graph
    and draws no extra random numbers, so its numbers are those of a run before CD
    existed.
    """
    return hps.get("cd_rate", 0.0) > 0.0 or tunables.searched(hps, "cd_rate")


def sv_enabled(hps):
    """Whether training holds out sample-validation entries (--sv_rate > 0)."""
    return hps.get("sv_rate", 0.0) > 0.0


def missing_enabled(hps):
    """Whether a NaN in the data marks a missing entry (--nan_is_missing)."""
    return bool(hps.get("nan_is_missing", False))


def jitter_width(hps):
    """The spike-jitter width of the training batches: --temporal_spike_jitter_width
    for count data (the observation model's `counts`), else 0 (jitter moves counts)."""
    from lfads_tf2.model import observation
    if not observation.for_dist(hps.output_dist).counts:
        return 0
    return int(hps.get("temporal_spike_jitter_width", 0))


def enabled(hps):
    """Whether the training step masks its batch with CD or SV (and so draws a seed)."""
    return cd_enabled(hps) or sv_enabled(hps)


# ------------------------------------------------------------------ the regularisers
def _with(batch, scale=None, **mask_fields):
    """A copy of batch with its encoder scale multiplied by `scale` and the given
    CostMask fields set."""
    out = dict(batch)
    if scale is not None:
        before = out.get("scale")
        out["scale"] = scale if before is None else before * scale
    if mask_fields:
        mask = out.get("cost_mask") or CostMask(None, None, None)
        out["cost_mask"] = mask._replace(**mask_fields)
    return out


class MissingEntries:
    """--nan_is_missing: NaN entries of data and recon were not observed.

    encoder value = 0 where missing; scale = observed / (the trial's observed fraction
    of its [T, D] entries); CostMask.observed_bxtxn = 1 where the target was observed.
    target = 1 where missing: the entry is left out, but its log-likelihood is still
    computed, and its gradient is 0 only if the density is finite there (0 x inf is
    NaN); 1 is in the support of every observation model (a gamma's excludes 0).
    Deterministic: the seed is not used.
    """

    needs_seed = False

    def __call__(self, batch, seed_2=None):
        data = tf.cast(batch["data"], tf.float32)
        seen = tf.logical_not(tf.math.is_nan(data))
        seen_f = tf.cast(seen, tf.float32)
        # a trial without any observed entry reads zeros (0 / 1e-6)
        fraction_bx1x1 = tf.reduce_mean(seen_f, axis=[1, 2], keepdims=True)
        scale = seen_f / tf.maximum(fraction_bx1x1, 1e-6)
        values = tf.where(seen, data, tf.zeros_like(data))
        recon = batch.get("recon")
        if recon is None:
            target, observed = tf.where(seen, data, tf.ones_like(data)), seen_f
        else:
            recon = tf.cast(recon, tf.float32)
            seen_recon = tf.logical_not(tf.math.is_nan(recon))
            target = tf.where(seen_recon, recon, tf.ones_like(recon))
            observed = tf.cast(seen_recon, tf.float32)
        return _with(dict(batch, data=values, recon=target), scale, observed_bxtxn=observed)


class CoordinatedDropout:
    """CD (see the module's docstring): a fraction `rate` of the entries hidden from the
    encoders, the others scaled by 1 / (1 - rate); CostMask.grad_bxtxd.

    rate: scalar (tensor, variable or float). In-graph rate 0 turns CD off: nothing
    hidden, every gradient passes. pass_rate: fraction of the seen entries whose
    gradient passes anyway (float).
    """

    needs_seed = True

    def __init__(self, rate, pass_rate=0.0):
        self.rate, self.pass_rate = rate, pass_rate

    def __call__(self, batch, seed_2):
        shape = tf.shape(batch["data"])
        rate = tf.cast(self.rate, tf.float32)
        seeds = tf.random.experimental.stateless_split(tf.cast(seed_2, tf.int64), 2)
        hidden = tf.random.stateless_uniform(shape, seeds[0]) < rate
        passed = tf.random.stateless_uniform(shape, seeds[1]) < self.pass_rate
        scale = tf.cast(tf.logical_not(hidden), tf.float32) / (1.0 - rate)
        off = rate <= 0.0  # a search set the rate to 0: plain training
        p_pass = tf.where(off, 1.0, rate + (1.0 - rate) * self.pass_rate)
        grad = tf.cast(hidden | passed | off, tf.float32) / p_pass
        return _with(batch, scale, grad_bxtxd=grad)


class SampleValidationEntries:
    """SV (see the module's docstring): the batch's SV entries (batch["sv_mask"], 1 = SV
    entry, from SampleValidation) are 0 at the encoders and out of the objective, the
    others scaled and weighted by 1 / (1 - rate); CostMask.weight_bxtxd and sv_bxtxd.

    Uses no random numbers; its seed is drawn all the same (`needs_seed`), as runs with
    SV always did, so that their numbers stay what they were.
    """

    needs_seed = True

    def __init__(self, rate):
        self.rate = rate

    def __call__(self, batch, seed_2=None):
        sv = tf.cast(batch["sv_mask"], tf.float32)
        weight = (1.0 - sv) / (1.0 - self.rate)
        mask = batch.get("cost_mask")
        if mask is not None and mask.observed_bxtxn is not None:
            # a missing SV entry is in no cost, sv_recon included
            shape = tf.shape(sv)
            sv = sv * mask.observed_bxtxn[:, :shape[1], :shape[2]]
        out = _with(batch, weight, weight_bxtxd=weight, sv_bxtxd=sv)
        del out["sv_mask"]  # in the cost mask now
        return out


class SpikeJitter:
    """Spike jitter on the host (numpy): (batch, rs) -> batch, every spike of "recon"
    (when the batch has it, "data" then its held-in part, as without held-out neurons,
    where one array is both) or of "data" moved by `jitter_spikes`.

    SV entries take no part in the jitter, nor do missing (NaN) entries, which stay NaN.
    rs: the epoch's numpy RandomState, the seed of this regulariser.
    """

    def __init__(self, width, nan_is_missing=False):
        self.width, self.nan_is_missing = width, nan_is_missing

    def __call__(self, batch, rs):
        batch = dict(batch)
        fixed = batch.get("sv_mask")
        key = "recon" if "recon" in batch else "data"
        counts = batch[key]
        if key == "recon" and fixed is not None:
            T, D = batch["data"].shape[1:]
            fixed = np.pad(fixed, [(0, 0), (0, counts.shape[1] - T), (0, counts.shape[2] - D)])
        missing = np.isnan(counts) if self.nan_is_missing else None
        if missing is not None and missing.any():
            fixed = missing if fixed is None else (fixed > 0) | missing
            counts = np.where(missing, 0.0, counts)
        else:
            missing = None
        moved = jitter_spikes(counts, self.width, rs, fixed_bxtxd=fixed)
        if missing is not None:
            moved[missing] = np.nan
        batch[key] = moved
        if key == "recon":
            T, D = batch["data"].shape[1:]
            batch["data"] = np.ascontiguousarray(moved[:, :T, :D])
        return batch


def jitter_spikes(counts_bxtxd, width, rs, fixed_bxtxd=None):
    """Moves every spike by a random shift in [-width, width] bins.

    Shifts reflect at the edges, so each (trial, neuron) keeps its total count.
    Differences from the original, kept on purpose: the shift range is symmetric
    (the original's randint(-w, w) never shifted by +w) and only the batch is
    jittered, not the whole split before every batch (same distribution, far less
    work).

    fixed_bxtxd: entries left out of the jitter (sample validation, missing entries):
    their spikes stay, and a spike that would land on one stays where it was, so their
    counts are the data's and no other spike mixes with them.
    """
    counts = np.asarray(counts_bxtxd).astype(np.int64)
    B, T, D = counts.shape
    b, t, d = np.nonzero(counts)
    reps = counts[b, t, d]
    b, t, d = np.repeat(b, reps), np.repeat(t, reps), np.repeat(d, reps)
    t_new = t + rs.randint(-width, width + 1, size=t.shape)
    t_new = np.where(t_new < 0, -t_new, t_new)
    t_new = np.where(t_new > T - 1, 2 * (T - 1) - t_new, t_new)
    t_new = np.clip(t_new, 0, T - 1)  # a shift larger than T could still escape
    if fixed_bxtxd is not None:
        fixed = np.asarray(fixed_bxtxd) > 0
        t_new = np.where(fixed[b, t, d] | fixed[b, t_new, d], t, t_new)
    out = np.zeros_like(counts)
    np.add.at(out, (b, t_new, d), 1)
    return out.astype(np.float32)


# ------------------------------------------------------------------ a run's
class Regularisers:
    """A run's input regularisers, in the order they apply.

    host        [SpikeJitter] or []: training batches, numpy, before the step
    training    [MissingEntries, CoordinatedDropout, SampleValidationEntries], those on
    evaluation  [MissingEntries] or []: validation and evaluation read every entry
                there is, so only the missing ones are left out

    hps: the run's. cd_rate: the CD rate variable (the model's tunables.cd_rate; None
    without CD).
    """

    def __init__(self, hps, cd_rate=None):
        missing = [MissingEntries()] if missing_enabled(hps) else []
        width = jitter_width(hps)
        self.host = [SpikeJitter(width, missing_enabled(hps))] if width > 0 else []
        self.evaluation = list(missing)
        self.training = list(missing)
        if cd_rate is not None:
            self.training.append(CoordinatedDropout(cd_rate, hps.get("cd_pass_rate", 0.0)))
        if sv_enabled(hps):
            self.training.append(SampleValidationEntries(hps.sv_rate))

    def on_host(self, batch, rs):
        """A training batch (dict of numpy arrays) after the host regularisers."""
        for regulariser in self.host:
            batch = regulariser(batch, rs)
        return batch

    def apply(self, batch, rng, training):
        """The batch the model reads, in the compiled step: "data" the encoder input,
        "recon" the target, "cost_mask" a CostMask (unchanged when none is on).

        rng: the step's tf.random.Generator; a seed [2] is drawn from it only when a
        regulariser needs one.
        """
        regs = self.training if training else self.evaluation
        needs_seed = any(reg.needs_seed for reg in regs)
        return run(regs, batch, rng.make_seeds(1)[:, 0] if needs_seed else None)


def run(regs, batch, seed_2):
    """Applies regularisers in order; then data = values x scale, and recon defaults
    to the data as given (the unmasked data). Unchanged when regs is empty."""
    if not regs:
        return batch
    out = dict(batch, data=tf.cast(batch["data"], tf.float32))
    for reg in regs:
        out = reg(out, seed_2)
    scale = out.pop("scale", None)
    if scale is not None:
        out["data"] = out["data"] * scale
    out.setdefault("recon", batch["data"])
    return out


def apply(data_bxtxd, seed_2, cd_rate=None, cd_pass_rate=0.0, sv_mask_bxtxd=None,
          sv_rate=0.0):
    """The encoder input and the cost masks of one training batch with CD and SV.

    data_bxtxd: the batch's data [B, T, D].
    seed_2: int32/int64 [2], the seed of the stateless draws (same seed, same masks).
    cd_rate: scalar (tensor or float) or None (no CD). cd_pass_rate: see
    CoordinatedDropout. sv_mask_bxtxd: the batch's rows of the SV mask [B, T, D]
    (1 = SV entry) or None. sv_rate: the run's SV fraction, for the rescaling (float).

    encoder input = data * (1 - hidden) / (1 - cd_rate) * (1 - sv) / (1 - sv_rate)
    Returns (encoder input [B, T, D] float32, CostMask).
    """
    regs, batch = [], {"data": data_bxtxd}
    if cd_rate is not None:
        regs.append(CoordinatedDropout(cd_rate, cd_pass_rate))
    if sv_mask_bxtxd is not None:
        regs.append(SampleValidationEntries(sv_rate))
        batch["sv_mask"] = sv_mask_bxtxd
    out = run(regs, batch, seed_2)
    return (tf.cast(out["data"], tf.float32),
            out.get("cost_mask") or CostMask(None, None, None))


# ------------------------------------------------------------------ the cost side
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
    the summed log-likelihood of the SV entries per trial [B] or None). The first is
    0 on missing entries (no value, no gradient), keeps every other value but
    multiplies the gradient by mask.grad (CD: 0 blocks it), and is 0 on SV entries and
    weighted elsewhere (SV); the second has no gradient.
    """
    mask = pad_to(mask, tf.shape(loglik_bxtxn))
    ll = loglik_bxtxn
    if mask.observed_bxtxn is not None:
        # where, not a product: the entry's term must be 0 whatever the model predicts
        ll = tf.where(mask.observed_bxtxn > 0, ll, tf.zeros_like(ll))
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


def sv_trials(mask):
    """The SV entries of a batch counted in trials: sum over trials of (SV entries /
    the trial's entries), its [T, D] entries, or its observed ones with missing
    entries. sv_recon = (-log p summed over the SV entries) / this (see the module)."""
    sv_bxtxd = mask.sv_bxtxd
    if mask.observed_bxtxn is None:
        entries = tf.cast(tf.reduce_prod(tf.shape(sv_bxtxd)[1:]), tf.float32)
        return tf.reduce_sum(sv_bxtxd) / entries
    shape = tf.shape(sv_bxtxd)
    observed_b = tf.reduce_sum(mask.observed_bxtxn[:, :shape[1], :shape[2]], axis=[1, 2])
    return tf.reduce_sum(tf.reduce_sum(sv_bxtxd, axis=[1, 2]) / tf.maximum(observed_b, 1.0))


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
