"""The training loop of an LFADS model.

`train(hps, datasets, make_plotter)` is the epoch loop of the original: batches ->
compiled train step (see steps.py) -> validation -> lowest-validation checkpoint
(see checkpoints.py) -> learning-rate plateau rule. Its helpers here: batching
(the input regularisers between batch and step are lfads_tf2/model/regularisers.py's),
the KL/L2 ramps, the plateau rule, fitlog and stdout lines,
TensorBoard summaries and recovery from non-finite steps.

With --sv_rate > 0 each epoch also reports sv_recon, the reconstruction cost of the
sample-validation entries (lfads_tf2/model/regularisers.py). It is accumulated from the epoch's
training steps, which compute every entry's likelihood anyway (no extra pass), so it
is measured as the training recon is: with dropout, coordinated dropout and the
weights of each step.
"""
import collections
import os

import numpy as np
import tensorflow as tf

import utils
from lfads_tf2.errors import LfadsError
from lfads_tf2.model import regularisers
from lfads_tf2.train import build, checkpoints, steps
# ------------------------------------------------------------------ data handling
def split_arrays(datasets, hps, split, names=None, sv_masks=None):
    """{name: {"data": float32 [E,T,D], "ext": [E,T,I], "recon": [E,T+fp,N]}} for a split.

    The keys are those of steps.batch_signature ("ext" only with --ext_input_dim > 0,
    "recon" only when steps.uses_recon and for the train and valid splits: it is
    `<split>_recon_data`, or the data of a dataset without held-out keys, which then
    have as many neurons and bins). Split "test" (test_data) has no "recon".
    names: the datasets to take (default: all of hps.dataset_names); datasets
    without this split are left out.
    sv_masks: {name: float32 [E,T,D]} (SampleValidation.arrays(), training split
    only): added as "sv_mask".
    """
    out = {}
    with_recon = split in ("train", "valid") and steps.uses_recon(hps)
    for name in hps.dataset_names if names is None else names:
        d = datasets[name]
        data = d.get(split + "_data")
        if data is None:
            continue
        arrays = {"data": np.asarray(data, np.float32)}
        ext = d.get(split + "_ext_input") if hps.ext_input_dim > 0 else None
        if ext is not None:
            arrays["ext"] = np.asarray(ext, np.float32)
        if with_recon:
            recon = d.get(split + "_recon_data")
            arrays["recon"] = arrays["data"] if recon is None \
                else np.asarray(recon, np.float32)
        if sv_masks is not None:
            arrays["sv_mask"] = sv_masks[name]
        out[name] = arrays
    return out


def epoch_batches(split, batch_size, rs):
    """Shuffled (name, trial indices) batches of one epoch.

    Each dataset's trials are shuffled and, when their number is not a multiple of
    the batch size, filled up with distinct randomly chosen repeats; the batches of
    all datasets are then interleaved in random order.
    """
    batches = []
    for name in sorted(split):
        n = split[name]["data"].shape[0]
        idx = np.arange(n)
        rem = n % batch_size
        if rem:
            extra = rs.choice(n, batch_size - rem, replace=batch_size - rem > n)
            idx = np.concatenate([idx, extra])
        idx = rs.permutation(idx).reshape(-1, batch_size)
        batches += [(name, row) for row in idx]
    order = rs.permutation(len(batches))
    return [batches[i] for i in order]


# ------------------------------------------------------------------ loop helpers
def ramp_value(step, start, increase):
    return float(min(max(step - start, 0) / float(increase), 1.0))


def plateau_rule(train_costs, current, n_to_compare):
    """The original's learning-rate plateau rule. Returns (decay?, new history).

    Decay when more than n costs are recorded and the current total is greater than
    the max of the last n; a decay records +inf so the next n epochs cannot decay.
    """
    history = list(train_costs)
    if len(history) > n_to_compare and current > max(history[-n_to_compare:]):
        return True, history + [np.inf]
    return False, history + [current]


def csv_line(i, step, tr, va, l2, kl_w, l2_w, nonfinite=0):
    """One fitlog line with the original's token sequence.

    Tokens beyond the original's come at the end: `sv_recon,<value>` in runs with
    sample validation (tr["sv_recon"]), then `nonfinite,<count>` in epochs with
    skipped non-finite steps; other lines are exactly the original's.
    """
    extra = ""
    if tr.get("sv_recon") is not None:
        extra += ", sv_recon,%.2f" % tr["sv_recon"]
    if nonfinite:
        extra += ", nonfinite,%d" % nonfinite
    if va is not None:
        return ("epoch,%d, step,%d, total,%.2f,%.2f,       recon,%.2f,%.2f, "
                "kl,%.2f,%.2f, l2,%.5f,       klweight,%.2f, l2weight,%.2f%s\n"
                % (i, step, tr["total"], va["total"], tr["recon"], va["recon"],
                   tr["kl"], va["kl"], l2, kl_w, l2_w, extra))
    return ("epoch,%d, step,%d, total,%.2f,       recon,%.2f, kl,%.2f, "
            "l2,%.5f, klweight,%.2f, l2weight,%.2f%s\n"
            % (i, step, tr["total"], tr["recon"], tr["kl"], l2, kl_w, l2_w, extra))


def stdout_line(i, step, tr, va, l2, kl_w, l2_w):
    """The original's epoch line; `\tsv_recon: <value>` appended with sample validation."""
    extra = "" if tr.get("sv_recon") is None else "\tsv_recon: %.2f" % tr["sv_recon"]
    if va is not None:
        return ("Epoch:%d, step:%d (TRAIN, VALID): total: %.2f, %.2f\trecon: %.2f, %.2f,"
                "\tkl: %.2f, %.2f,\tl2: %.5f,\tkl weight: %.2f,\tl2 weight: %.2f%s"
                % (i, step, tr["total"], va["total"], tr["recon"], va["recon"],
                   tr["kl"], va["kl"], l2, kl_w, l2_w, extra))
    return ("Epoch:%d, step:%d TRAIN: total: %.2f\trecon: %.2f\tkl: %.2f\tl2: %.5f\t"
            "kl weight: %.2f\tl2 weight: %.2f%s"
            % (i, step, tr["total"], tr["recon"], tr["kl"], l2, kl_w, l2_w, extra))


def truncate_fitlog(csv_path, epochs_done):
    """Drops fitlog lines of epochs after the restored checkpoint.

    A run killed after logging an epoch but before checkpointing it repeats that
    epoch when restarted; without this its line would appear twice.
    """
    if not os.path.exists(csv_path):
        return
    lines = open(csv_path).read().splitlines(True)
    keep = []
    for line in lines:
        fields = [f.strip() for f in line.split(",")]
        if len(fields) > 1 and fields[0] == "epoch" and fields[1].isdigit() \
                and int(fields[1]) >= epochs_done:
            continue
        keep.append(line)
    if len(keep) != len(lines):
        with utils.atomic_path(csv_path) as tmp:
            with open(tmp, "w") as f:
                f.writelines(keep)


def run_validation(eval_step, hps, valid, batch_size):
    """Mean validation total/recon/kl over all trials (batches of batch_size)."""
    sums = collections.defaultdict(float)
    n_total = 0
    for name in sorted(valid):
        arrays = valid[name]
        for start in range(0, arrays["data"].shape[0], batch_size):
            batch = steps.take(arrays, slice(start, start + batch_size))
            n = batch["data"].shape[0]
            res = steps.call_step(eval_step, hps, name, batch)
            for k, v in res.items():
                sums[k] += float(v) * n
            n_total += n
    return {k: v / n_total for k, v in sums.items()}


def print_variables(bundle):
    total = 0
    print("Model variables trained:")
    for v in bundle.train_vars:
        print("  %s %s" % (v.name, v.shape.as_list()))
        total += int(np.prod(v.shape))
    print("Total model parameters: %d" % total)


# ------------------------------------------------------------------ the loop

class _NonFiniteTraining(Exception):
    """Too many consecutive non-finite steps: the loop restores the last checkpoint."""


def _train_epoch(hps, state, train_split, train_step, rs):
    """One pass over the training batches. Returns (epoch means, last step's values).

    Skipped (non-finite) steps are left out of the means; more than
    --max_consecutive_nonfinite_steps of them in a row raise _NonFiniteTraining.
    With sample validation the means hold "sv_recon" (see regularisers.py): the SV
    entries' summed cost over the epoch divided by their number in trials.
    """
    # the host's regularisers (spike jitter); the others run in the step
    regs = regularisers.Regularisers(hps)
    sums = collections.defaultdict(float)
    n_batches = n_bad = consecutive_bad = 0
    sv_nll = sv_trials = 0.0
    last = None
    for name, idx in epoch_batches(train_split, hps.batch_size, rs):
        batch = steps.take(train_split[name], idx)
        batch = regs.on_host(batch, rs)
        res = steps.call_step(train_step, hps, name, batch)
        res = {k: v.numpy() for k, v in res.items()}
        if not res["applied"]:
            n_bad += 1
            consecutive_bad += 1
            if consecutive_bad >= hps.max_consecutive_nonfinite_steps:
                raise _NonFiniteTraining()
            continue
        consecutive_bad = 0
        for k in ("total", "recon", "kl", "grad_norm"):
            sums[k] += float(res[k])
        n_batches += 1
        last = res
        if "sv_nll" in res:
            sv_nll += float(res["sv_nll"])
            sv_trials += float(res["sv_trials"])
    if n_batches == 0:
        raise _NonFiniteTraining()
    means = {k: v / n_batches for k, v in sums.items()}
    means["nonfinite_steps"] = n_bad
    if "sv_nll" in last:
        means["sv_recon"] = sv_nll / sv_trials if sv_trials > 0 else float("nan")
    return means, last


def _write_summaries(writer, hps, bundle, step, tr, va, last):
    model, state = bundle.model, bundle.state
    with writer.as_default(step=step):
        tf.summary.scalar("LFADS/Total_cost__train_", tr["total"])
        tf.summary.scalar("LFADS/Reconstruction_cost__train_", tr["recon"])
        tf.summary.scalar("LFADS/KL_cost__train_", tr["kl"])
        tf.summary.scalar("LFADS/L2_cost", float(last["l2"]))
        if va is not None:
            tf.summary.scalar("LFADS/Total_cost__valid_", va["total"])
            tf.summary.scalar("LFADS/Reconstruction_cost__valid_", va["recon"])
            tf.summary.scalar("LFADS/KL_cost__valid_", va["kl"])
        tf.summary.scalar("LFADS/KL_weight", float(last["kl_weight"]))
        tf.summary.scalar("LFADS/L2_weight", float(last["l2_weight"]))
        tf.summary.scalar("LFADS/Learning_rate", float(state.learning_rate.numpy()))
        tf.summary.scalar("LFADS/Gradient_global_norm", tr["grad_norm"])
        tf.summary.scalar("LFADS/Corr_cost", hps.co_mean_corr_scale * float(last["corr"]))
        tf.summary.scalar("LFADS/Nonfinite_steps_skipped", tr["nonfinite_steps"])
        if tr.get("sv_recon") is not None:
            tf.summary.scalar("LFADS/Reconstruction_cost__sv_", tr["sv_recon"])
        if bundle.cd_rate is not None:
            tf.summary.scalar("LFADS/CD_rate", float(bundle.cd_rate.numpy()))
        if hps.co_dim > 0:
            taus = np.exp(model.co_prior.logatau.numpy()).ravel()
            pvars = np.exp(model.co_prior.logpvar().numpy()).ravel()
            for c in range(hps.co_dim):
                tf.summary.scalar("LFADS/AR_Autocorrelation_taus_%d" % c, taus[c])
                tf.summary.scalar("LFADS/AR_Variances_%d" % c, pvars[c])


def _recover_from_nonfinite(bundle, hps, save_dir, recoveries):
    """Restores the last regular checkpoint and lowers its learning rate."""
    if recoveries > hps.max_nonfinite_restores:
        raise LfadsError("training keeps producing non-finite costs or gradients after %d "
                         "restores of the last checkpoint with a lower learning rate; lower "
                         "--learning_rate_init or --max_grad_norm, or check the data"
                         % hps.max_nonfinite_restores)
    path = checkpoints.restore(bundle, hps, save_dir, checkpoints.CHECKPOINT_STATE,
                               required=False)
    if path is None:
        raise LfadsError("the first %d training steps had non-finite costs or gradients "
                         "and there is no checkpoint to go back to; lower "
                         "--learning_rate_init or check the data"
                         % hps.max_consecutive_nonfinite_steps)
    lr = bundle.state.learning_rate
    lr.assign(lr * hps.learning_rate_decay_factor)
    print("%d consecutive non-finite steps: restored %s and lowered the learning rate to %g."
          % (hps.max_consecutive_nonfinite_steps, path, float(lr.numpy())))


# A built model with its compiled steps (see build_graph).
Graph = collections.namedtuple("Graph", "bundle train_step eval_step")


def build_graph(hps, datasets):
    """The model, optimizer, state and checkpoint (build.build) with the compiled
    training and validation steps (traced on their first call)."""
    bundle = build.bundle(hps, build.datasets_info(datasets))
    return Graph(bundle, steps.make_train_step(bundle, hps), steps.make_eval_step(bundle, hps))


def set_search_variables(bundle, hps):
    """Sets the variables of the hyperparameters a search may change (lfads_tf2/model/tunables.py)
    from hps, except the learning rate, which the checkpoint carries."""
    bundle.model.tunables.assign(hps)  # the CD rate (bundle.cd_rate) among them


def train(hps, datasets, make_plotter=None, on_epoch=None, graph=None):
    """--kind=train: the original's epoch loop with resumable state.

    make_plotter(bundle, hps, datasets): the example figure every
    --plot_every_n_epochs epochs, an object with write_summary(rs) that writes
    TensorBoard image summaries (evaluation.ExamplePlotter); None draws none.
    Passed in, not imported, because the figure needs the evaluation code, which
    builds on this package's steps and checkpoints.
    on_epoch(bundle, record): called at the end of every epoch, after its line and
    checkpoint are written (e.g. by a hyperparameter-search driver, which may change
    bundle.cd_rate there), with the dict `epoch_record` returns.
    graph: a Graph (build_graph) to train instead of building one. It must have
    been built from the same hps up to the values of lfads_tf2/tunables.PERTURBABLE
    (set from hps here), the save folder and the seed. A graph that has trained
    before (e.g. the one a search trial built earlier in the same process, reused to
    avoid a new trace) needs a checkpoint in the save folder, which replaces all of
    its state (weights, optimizer, step, epoch, learning-rate rule, random state,
    SV masks).
    """
    save_dir = hps.lfads_save_dir
    try:
        os.makedirs(save_dir, exist_ok=True)
    except OSError as e:
        raise LfadsError("%s: --lfads_save_dir cannot be created (%s)"
                         % (save_dir, e.strerror)) from None
    if not os.access(save_dir, os.W_OK):
        raise LfadsError("%s: --lfads_save_dir is not writable" % save_dir)
    with checkpoints.SaveDirLock(save_dir):
        return _train_locked(hps, datasets, save_dir, make_plotter, on_epoch, graph)


def epoch_record(epoch, step, tr, va, l2, kl_w, l2_w, learning_rate):
    """What an epoch measured, as on_epoch gets it: epoch, step, the training means
    "train" (total, recon, kl, grad_norm, nonfinite_steps), the validation means
    "valid" (total, recon, kl; None without validation data), "sv_recon" (None
    without sample validation), l2, kl_weight, l2_weight and learning_rate (the
    epoch's). The loop adds "checkpoint": the path of the regular checkpoint written
    at the end of the epoch, or None."""
    return {"epoch": epoch, "step": step, "train": dict(tr),
            "valid": None if va is None else dict(va), "sv_recon": tr.get("sv_recon"),
            "l2": l2, "kl_weight": kl_w, "l2_weight": l2_w,
            "learning_rate": learning_rate, "checkpoint": None}


def _restore_sv_note(bundle, restored, drawn):
    """A note when a restored checkpoint's SV masks are not those of the flags."""
    from lfads_tf2.train import checkpoint_layout
    if not restored or bundle.sv is None:
        return None
    if not checkpoint_layout.has_sv(tf.train.load_checkpoint(restored)):
        return ("%s was trained without sample validation: the entries now held out "
                "(--sv_rate, --sv_seed) were seen before, so sv_recon starts optimistic"
                % restored)
    kept = bundle.sv.arrays()
    if sorted(kept) != sorted(drawn) or any(not np.array_equal(kept[k], drawn[k])
                                            for k in kept):
        return ("the sample-validation entries of %s differ from those --sv_rate and "
                "--sv_seed give; the checkpoint's are kept" % restored)
    return None


def _train_locked(hps, datasets, save_dir, make_plotter, on_epoch, graph):
    if hps.get("seed") is not None:
        # Same seed, same machine, same numbers (also across a kill and resume).
        tf.config.experimental.enable_op_determinism()
    if graph is None:
        print("Building graph...")
        graph = build_graph(hps, datasets)
    bundle = graph.bundle
    state = bundle.state
    trained_before = int(state.global_step.numpy()) > 0  # a reused graph
    drawn_sv = None if bundle.sv is None else bundle.sv.arrays()
    # A damaged newest checkpoint: resume from the newest readable one (with a note).
    restored = checkpoints.restore(bundle, hps, save_dir, hps.checkpoint_pb_load_name,
                                   required=trained_before, fallback=True)
    # Not in the checkpoint: from the flags whenever a run starts (a reused graph holds
    # the values of the run it was built for).
    set_search_variables(bundle, hps)
    if restored:
        print("Restored from %s (epoch %d, step %d)."
              % (restored, int(state.epoch.numpy()), int(state.global_step.numpy())))
        if hps.do_reset_learning_rate:
            state.learning_rate.assign(hps.learning_rate_init)
            print("Learning rate reset to %g." % hps.learning_rate_init)
        sv_note = _restore_sv_note(bundle, restored, drawn_sv)
        if sv_note:
            print("note: " + sv_note)
    print_variables(bundle)
    checkpoints.write_hps_file(hps, save_dir, checkpoints.step_of_checkpoint(restored))

    saver = checkpoints.CheckpointSaver(bundle.checkpoint, save_dir,
                                        hps.checkpoint_name + ".ckpt",
                                        checkpoints.CHECKPOINT_STATE, hps.max_ckpt_to_keep)
    # The original's training used max_ckpt_to_keep here by mistake, so
    # --max_ckpt_to_keep_lve had no effect.
    saver_lve = checkpoints.CheckpointSaver(bundle.checkpoint, save_dir,
                                            hps.checkpoint_name + "_lve.ckpt",
                                            checkpoints.CHECKPOINT_STATE_LVE,
                                            hps.max_ckpt_to_keep_lve)

    train_split = split_arrays(datasets, hps, "train",
                               sv_masks=None if bundle.sv is None else bundle.sv.arrays())
    valid_split = split_arrays(datasets, hps, "valid")
    writer = tf.summary.create_file_writer(os.path.join(save_dir, "lfads_log"))
    try:
        _epochs(hps, graph, datasets, save_dir, saver, saver_lve, train_split,
                valid_split, writer, make_plotter, on_epoch)
    finally:  # also when on_epoch ends the run (a search stopping a trial)
        writer.close()
    return bundle


def _epochs(hps, graph, datasets, save_dir, saver, saver_lve, train_split, valid_split,
            writer, make_plotter, on_epoch):
    """The epochs of `train`, until --max_epochs or the learning-rate stop."""
    bundle, train_step, eval_step = graph
    state = bundle.state
    csv_path = os.path.join(save_dir, hps.csv_log + ".csv") if hps.csv_log else None
    if csv_path:
        truncate_fitlog(csv_path, int(state.epoch.numpy()))
    plotter = None
    if make_plotter is not None and hps.get("plot_every_n_epochs", 0) > 0:
        plotter = make_plotter(bundle, hps, datasets)

    recoveries = 0
    while True:
        epoch = int(state.epoch.numpy())
        if hps.get("max_epochs") is not None and epoch >= hps.max_epochs:
            print("Stopping after %d epochs (--max_epochs)." % epoch)
            break
        # The batch order of epoch i depends only on (seed, i): a resumed run
        # replays exactly the batches an uninterrupted one would.
        rs = np.random.RandomState([int(state.base_seed.numpy()) % (2 ** 32), epoch])
        try:
            tr, last = _train_epoch(hps, state, train_split, train_step, rs)
        except _NonFiniteTraining:
            recoveries += 1
            _recover_from_nonfinite(bundle, hps, save_dir, recoveries)
            continue
        kl_w, l2_w, l2 = float(last["kl_weight"]), float(last["l2_weight"]), float(last["l2"])
        step = int(state.global_step.numpy())
        va = None
        if valid_split:
            va = run_validation(eval_step, hps, valid_split, hps.batch_size)
            _keep_lowest_validation(hps, state, saver_lve, step, tr, va, kl_w, l2_w)
        _report_epoch(hps, bundle, writer, csv_path, epoch, step, tr, va, last)
        if plotter is not None and epoch % hps.plot_every_n_epochs == 0:
            with writer.as_default(step=step):
                plotter.write_summary(rs)
        writer.flush()
        record = epoch_record(epoch, step, tr, va, l2, kl_w, l2_w,
                              float(state.learning_rate.numpy()))

        _apply_plateau_rule(hps, state, tr["total"])
        state.epoch.assign_add(1)
        stop = float(state.learning_rate.numpy()) < hps.learning_rate_stop
        final = hps.get("max_epochs") is not None and epoch + 1 >= hps.max_epochs
        # The final epoch's checkpoint is the one written after the loop otherwise; here
        # it is there for on_epoch.
        if (epoch + 1) % hps.checkpoint_every_n_epochs == 0 or stop or final:
            record["checkpoint"] = saver.save(step)
        if on_epoch is not None:  # after the epoch's checkpoint
            on_epoch(bundle, record)
        if stop:
            print("Stopping optimization based on learning rate criteria.")
            break
    # A final regular checkpoint (the original kept up to 9 epochs only in memory).
    paths = checkpoints.read_checkpoint_state(save_dir, checkpoints.CHECKPOINT_STATE)
    step = int(state.global_step.numpy())
    if not paths or checkpoints.step_of_checkpoint(paths[-1]) != step:
        saver.save(step)


def _keep_lowest_validation(hps, state, saver_lve, step, tr, va, kl_w, l2_w):
    """Counts a validation and saves the lowest-validation checkpoint when this epoch's
    cost (va's total, or tr's sv_recon with --lve_metric=sv, kept in the same variable)
    is the lowest yet, once the KL and L2 ramps are done (kl_w, l2_w the epoch's last
    weights), never at the first validation."""
    state.valid_count.assign_add(1)
    l2_scales_zero = hps.l2_gen_scale == 0 and hps.l2_con_scale == 0
    lve_cost = tr["sv_recon"] if hps.get("lve_metric", "valid") == "sv" else va["total"]
    if (kl_w >= 1.0 and (l2_w >= 1.0 or l2_scales_zero)
            and int(state.valid_count.numpy()) > 1
            and lve_cost < float(state.lowest_valid_cost.numpy())):
        state.lowest_valid_cost.assign(lve_cost)
        saver_lve.save(step)


def _report_epoch(hps, bundle, writer, csv_path, epoch, step, tr, va, last):
    """The epoch's stdout line, fitlog line (csv_path, or None) and TensorBoard scalars
    from its training means tr, validation means va (or None) and last step's values."""
    kl_w, l2_w, l2 = float(last["kl_weight"]), float(last["l2_weight"]), float(last["l2"])
    n_bad = tr["nonfinite_steps"]
    print(stdout_line(epoch, step, tr, va, l2, kl_w, l2_w)
          + ("" if not n_bad else "\tskipped non-finite steps: %d" % n_bad))
    if csv_path:
        with open(csv_path, "a") as f:
            f.write(csv_line(epoch, step, tr, va, l2, kl_w, l2_w, n_bad))
    _write_summaries(writer, hps, bundle, step, tr, va, last)


def _apply_plateau_rule(hps, state, train_total):
    """The end-of-epoch learning-rate rule (`plateau_rule`) on the epoch's training
    cost: decays the learning rate when the cost is above the largest of the last
    --learning_rate_n_to_compare epochs'."""
    decay, history = plateau_rule(state.train_costs.numpy(), train_total,
                                  hps.learning_rate_n_to_compare)
    # Only the last n entries are ever read: keep the checkpoint small.
    state.train_costs.assign(np.asarray(history[-(hps.learning_rate_n_to_compare + 1):],
                                        np.float64))
    if decay:
        state.learning_rate.assign(state.learning_rate * hps.learning_rate_decay_factor)
        print("Decreasing learning rate to %f." % float(state.learning_rate.numpy()))
