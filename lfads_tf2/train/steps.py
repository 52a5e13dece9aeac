"""The compiled steps: one tf.function per step for every dataset.

`make_train_step` (forward, cost, clip, Adam) and `make_eval_step` (validation cost)
are built on `compile_step`, which fixes the input signature; `call_step` runs any of
them, and evaluation's posterior function, on one dataset's arrays.
"""
import os

import numpy as np
import tensorflow as tf

import distributions
from lfads_tf2.model import regularisers


def batch_parts():
    """Parts a batch is split into (see split_batch_costs): one per core this process
    may run on.

    The parts run at once, one per core, each op single-threaded: a recurrence is
    sequential in time and one small GRU step cannot keep two cores busy, parts of a
    batch can. Fewer parts than cores leave cores idle; more only add ops. (On an idle
    2-core machine 2 parts were faster than 1; with the cores busy with other jobs 1
    was as fast: scripts/benchmark_train.py --parts, see the README.)
    The count is the machine's, not the inter-op thread pool's, so that a search trial
    given fewer threads draws the same random numbers as a plain run on that machine
    (each part draws its own).
    """
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # (not on every platform)
        return max(1, os.cpu_count() or 1)


def split_batch_costs(model, dataset, batch, rng, state, mode, keep_prob, n_parts):
    """Batch means of the costs, the batch run as n_parts independent parts.

    batch: dict of [B, ...] tensors (see `batch_signature`), and, from the input
    regularisers (regularisers.Regularisers.apply), "recon" (what is reconstructed,
    when the encoders read another "data") and "cost_mask" (a regularisers.CostMask).

    The parts share no ops (each draws from its own SeedStream), so TensorFlow runs
    them in parallel, one per core: the recurrences are sequential in time and the
    ops of one small GRU step cannot use two cores well, two halves of a batch can.
    Each part is a call of one traced function (`part_sums`): the forward pass and
    its gradient are traced once, not once a part (half the time to trace a step).
    TensorFlow inlines the calls when it runs the step, so the step runs the same ops
    at the same speed; only the gradient of a weight is now summed within each part,
    then over the parts (float32 rounding differences, no change in the math).

    With SV entries in the cost mask, also the sums (not means) "sv_nll" (-log p of
    the SV entries) and "sv_trials" (the number of SV entries in trials of this data
    set's T x D entries, see regularisers.sv_trials); their ratio over an epoch is
    sv_recon (see regularisers.py).
    """
    rows = tf.shape(batch["data"])[0]
    sizes = [(rows + i) // n_parts for i in range(n_parts)]
    flat = tf.nest.flatten(batch)
    pieces = [None if x is None else
              [tf.ensure_shape(part, [None] + x.shape[1:]) for part in tf.split(x, sizes)]
              for x in flat]
    parts = [tf.nest.pack_sequence_as(batch, [None if p is None else p[i] for p in pieces])
             for i in range(n_parts)]
    part_fn = part_sums(model, state, mode, keep_prob)
    sums = {}
    for part, seed_2 in zip(parts, distributions.seed_pairs(rng, n_parts)):
        part_out = part_fn(dataset, part, seed_2)
        costs = part_out.pop("costs")
        for key, value in part_out.items():
            sums[key] = sums.get(key, 0.0) + value
    means = {key: sums[key] / tf.cast(rows, tf.float32)
             for key in ("total", "recon", "kl", "corr")}
    means.update(costs)
    means.update({key: sums[key] for key in ("sv_nll", "sv_trials") if key in sums})
    return means


def part_sums(model, state, mode, keep_prob):
    """Compiled: (dataset, part of a batch, seed [2]) -> the part's sums of the costs
    (see `split_batch_costs`), and under "costs" the batch-wide l2, kl_weight and
    l2_weight."""
    def sums_of_part(dataset, part, seed_2):
        data = part["data"]
        out = model.forward(dataset, data, part.get("ext"),
                            distributions.SeedStream(seed_2), mode, keep_prob=keep_prob,
                            recon_bxtxn=part.get("recon"),
                            cost_mask_bxtxn=part.get("cost_mask"))
        costs = model.costs(out, state.global_step)
        sums = {key: tf.reduce_sum(getattr(costs, key)) for key in ("total", "recon", "kl")}
        sums["corr"] = tf.cast(tf.shape(data)[0], tf.float32) * costs.corr
        if out.log_p_sv_b is not None:
            sums["sv_nll"] = -tf.reduce_sum(out.log_p_sv_b)
            sums["sv_trials"] = regularisers.sv_trials(part["cost_mask"])
        sums["costs"] = dict(l2=costs.l2, kl_weight=costs.kl_weight,
                             l2_weight=costs.l2_weight)
        return sums

    return tf.function(sums_of_part, autograph=False)


def make_train_step(bundle, hps):
    """Compiled training step: forward, cost, clip, Adam, step+1.

    Called as step(dataset index, batch) (see `compile_step`). A step whose cost
    or gradient norm is not finite is not applied (the original applied NaN
    updates); it is counted in state.bad_steps.

    The batch first goes through the run's input regularisers
    (lfads_tf2/model/regularisers.py: missing entries, coordinated dropout, sample
    validation; jitter ran on the host), which draw a seed from the generator only when
    one needs it: runs without them draw exactly what they drew before.
    """
    model, state, opt, rng = bundle.model, bundle.state, bundle.optimizer, bundle.rng
    train_vars = bundle.train_vars
    keep_prob = model.tunables.keep_prob  # a variable: a search may change it
    regs = regularisers.Regularisers(hps, bundle.cd_rate)
    parts = batch_parts()

    def train_step(dataset, batch):
        batch = regs.apply(batch, rng, training=True)
        with tf.GradientTape() as tape:
            costs = split_batch_costs(model, dataset, batch, rng, state, "train", keep_prob,
                                      parts)
            total = costs["total"]
        grads = tape.gradient(total, train_vars)
        grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, train_vars)]
        grads, norm = tf.clip_by_global_norm(grads, hps.max_grad_norm)
        ok = tf.math.is_finite(total) & tf.math.is_finite(norm)

        def apply():
            opt.apply(zip(grads, train_vars))
            state.global_step.assign_add(1)
            return tf.constant(True)

        def skip():
            state.bad_steps.assign_add(1)
            return tf.constant(False)

        applied = tf.cond(ok, apply, skip)
        return dict(costs, grad_norm=norm, applied=applied)

    return compile_step(train_step, hps, training=True)


def make_eval_step(bundle, hps):
    """Compiled validation cost (posterior samples, no dropout, no coordinated dropout
    or sample validation: every observed entry is read and counts), see `compile_step`."""
    model, state, rng = bundle.model, bundle.state, bundle.rng
    regs = regularisers.Regularisers(hps)
    parts = batch_parts()

    def eval_step(dataset, batch):
        batch = regs.apply(batch, rng, training=False)  # missing entries only
        costs = split_batch_costs(model, dataset, batch, rng, state, "posterior_sample", 1.0,
                                  parts)
        return {key: costs[key] for key in ("total", "recon", "kl")}

    return compile_step(eval_step, hps)


def recon_dims(hps):
    """{dataset: N} the read-out widths: held-in plus held-out neurons (D without
    held-out neurons; hps written before held-out neurons existed lack the key)."""
    return hps.get("dataset_recon_dims") or hps.dataset_dims


def uses_recon(hps):
    """Whether the likelihood target extends the data: held-out neurons (N > D) in some
    dataset or forward bins (--fp_bins from the data). Batches then carry "recon"."""
    dims = recon_dims(hps)
    return hps.get("fp_bins", 0) > 0 or any(dims[n] != hps.dataset_dims[n]
                                            for n in hps.dataset_names)


def batch_signature(hps, training=False, with_recon=True):
    """The TensorSpecs of a batch: dict key -> [B, ...] float32.

    data     [B, T, D]  the spikes the encoders read (D open when datasets differ in it)
    ext      [B, T, I]  external inputs, only when --ext_input_dim > 0
    recon    [B, T + fp_bins, N]  the likelihood target, all neurons over all bins
                        (`<split>_recon_data`), only when `uses_recon` and with_recon
                        (test data have none: their likelihood covers the data alone)
    sv_mask  [B, T, D]  1 for sample-validation entries, only for the training step
                        (training=True) and only when --sv_rate > 0
    """
    T, I = hps.num_steps, hps.ext_input_dim

    def width(dims):
        widths = {dims[n] for n in hps.dataset_names}
        return widths.pop() if len(widths) == 1 else None

    signature = {"data": tf.TensorSpec([None, T, width(hps.dataset_dims)], tf.float32)}
    if I > 0:
        signature["ext"] = tf.TensorSpec([None, T, I], tf.float32)
    if with_recon and uses_recon(hps):
        signature["recon"] = tf.TensorSpec(
            [None, T + hps.fp_bins, width(recon_dims(hps))], tf.float32)
    if training and regularisers.sv_enabled(hps):
        signature["sv_mask"] = tf.TensorSpec([None, T, width(hps.dataset_dims)], tf.float32)
    return signature


def compile_step(step_fn, hps, training=False, with_recon=True):
    """tf.function step(dataset index, batch) with a fixed input signature.

    One trace serves every dataset and every batch size: the index (int32 scalar,
    position in hps.dataset_names) selects the read-in and read-out inside the
    graph (lfads.LFADS._linear), and the data width is left open when the
    datasets differ in it (see `batch_signature`). A step traced per dataset took
    seconds each, and TensorFlow, which counts traces by the Python function's
    code, warned about "retracing" when several sessions traced in a row.

    with_recon=False leaves "recon" out of the signature (posterior sampling of
    test data, which have none).

    autograph=False: the model's loops are explicit tf.while_loops and its Python
    branches depend on hyperparameters only, so AutoGraph would only rewrite the
    source of every function it meets, which was 60 % of the time to trace a step.
    """
    signature = [tf.TensorSpec([], tf.int32), batch_signature(hps, training, with_recon)]
    return tf.function(step_fn, autograph=False, input_signature=signature)


def take(arrays, rows):
    """{key: x[rows]} of a dict of per-trial arrays (rows: indices or a slice)."""
    return {key: x[rows] for key, x in arrays.items()}


def call_step(step, hps, name, batch):
    """Runs a compiled step (see `compile_step`) on dataset `name`'s batch (a dict of
    arrays with at least the keys of the step's signature; other keys are left out).

    A step without an input signature (a plain function wrapping one) gets the keys
    of the training signature that the batch has.
    """
    index = hps.dataset_names.index(name)
    signature = getattr(step, "input_signature", None)
    keys = signature[1] if signature else [key for key in batch_signature(hps, True)
                                           if key in batch]
    return step(index, {key: np.asarray(batch[key], np.float32) for key in keys})
