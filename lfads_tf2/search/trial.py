"""One trial of a hyperparameter search: its hyperparameters, its save folder, what it
reports and the checkpoints it hands to the search. Ray-free: lfads_tf2/search/lfads_tune.py runs
`run` inside a Ray Tune function trainable and passes it Ray's report and checkpoint.

A trial is an ordinary training run (training.train) in a save folder of its own. At
every report it exports a copy of its save folder's newest state as the search's
checkpoint: the project's checkpoint files in the original layout (`checkpoint` and the
newest `lfads_vae.ckpt-<step>.*`, `checkpoint_lve` and the newest lowest-validation
checkpoint, the newest `hyperparameters-<step>.txt`, the fitlog) and TRIAL_FILE, which
says which trial wrote it with which hyperparameter values.

A trial that starts from such a checkpoint (a resumed search, or population-based
training pausing a trial or letting it exploit another's) makes the checkpoint its save
folder and trains on: training.train restores weights, optimizer state, step, epoch,
learning-rate rule (and the ramps, which follow the step) and random state from it and
sets the search's variables from the trial's hyperparameters (lfads_tf2/model/tunables.py);
the learning rate is set to the trial's learning_rate_init only when that differs from
the value the checkpoint was trained with (an exploit that perturbed it), so a trial
that merely resumes keeps its decayed rate. In a process that already built the same
graph (Ray reuses a trial's process), the graph is reused: no new trace (GraphCache).
"""
import json
import math
import os
import shutil

# TensorFlow (checkpoints, training) is imported where a trial needs it, not here:
# lfads_tune --help and its checks of flags and search space start without it.

from lfads_tf2.model import tunables

TRIAL_FILE = "search_trial.json"
SAVE_FOLDER = "lfads"  # a trial's save folder, inside its Ray trial folder

# hps keys that may differ between trials sharing one compiled graph: the values the
# graph reads from variables, and what only the Python loop reads.
_NOT_IN_GRAPH = tunables.PERTURBABLE + ("lfads_save_dir", "seed", "do_reset_learning_rate")


def trial_hps(base_hps, config, save_dir, search_keys, report_every):
    """The hyperparameters of one trial: base_hps (the command's flags, as a
    hparams.HParams without the data-derived keys) with the trial's config (flag ->
    value, and "seed"), its own save folder, a regular checkpoint at every report and
    hps.search_keys, the flags the search sets (lfads_tf2/model/tunables.py)."""
    hps = type(base_hps)(base_hps)
    for name, value in config.items():
        if name in hps:
            hps[name] = value
    hps.lfads_save_dir = save_dir
    hps.search_keys = sorted(search_keys)
    hps.checkpoint_every_n_epochs = report_every
    hps.do_reset_learning_rate = False  # set by `restore_into` for an exploit
    return hps


def searched_values(hps, search_keys):
    """{flag: value} of the flags a search sets, as the trial was configured."""
    return {name: hps[name] for name in sorted(search_keys)}


def graph_key(hps):
    """What must be equal for two trials to share a compiled graph (GraphCache)."""
    return json.dumps({k: v for k, v in hps.items() if k not in _NOT_IN_GRAPH},
                      sort_keys=True, default=str)


class GraphCache:
    """The graph (training.Graph) last built in this process, with its key.

    One entry: a search's trials share one graph under population-based training,
    where only perturbable values differ; a random search's trials rarely do, and
    start from fresh weights anyway (a graph is reused only to restore a checkpoint).
    """

    def __init__(self):
        self.key = self.graph = None

    def get(self, hps):
        return self.graph if self.key == graph_key(hps) else None

    def put(self, hps, graph):
        self.key, self.graph = graph_key(hps), graph


# ------------------------------------------------------------------ checkpoints
def _files_of(prefix):
    folder, base = os.path.split(prefix)
    return sorted(n for n in os.listdir(folder) if n.startswith(base + "."))


def export_checkpoint(save_dir, dest, info, csv_log="fitlog"):
    """Copies the newest state of a save folder into the empty folder dest, in the
    original layout (see the module docstring), with info as TRIAL_FILE."""
    from lfads_tf2.train import checkpoints
    for state_name in (checkpoints.CHECKPOINT_STATE, checkpoints.CHECKPOINT_STATE_LVE):
        paths = checkpoints.read_checkpoint_state(save_dir, state_name)
        if not paths:
            continue
        newest = paths[-1]
        for name in _files_of(newest):
            shutil.copy2(os.path.join(save_dir, name), os.path.join(dest, name))
        checkpoints.write_checkpoint_state(
            dest, state_name, [os.path.join(dest, os.path.basename(newest))])
    hps_files = {int(n[len("hyperparameters-"):-len(".txt")]): n
                 for n in os.listdir(save_dir) if n.startswith("hyperparameters-")
                 and n.endswith(".txt") and n[len("hyperparameters-"):-4].isdigit()}
    if hps_files:
        newest = hps_files[max(hps_files)]
        shutil.copy2(os.path.join(save_dir, newest), os.path.join(dest, newest))
    if csv_log and os.path.exists(os.path.join(save_dir, csv_log + ".csv")):
        shutil.copy2(os.path.join(save_dir, csv_log + ".csv"), dest)
    with open(os.path.join(dest, TRIAL_FILE), "w") as f:
        json.dump(info, f, indent=2, sort_keys=True)


def read_info(folder):
    """TRIAL_FILE of an exported checkpoint, or {} (a folder of an ordinary run)."""
    path = os.path.join(folder, TRIAL_FILE)
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        return json.load(f)


def _newest(folder):
    from lfads_tf2.train import checkpoints
    paths = checkpoints.read_checkpoint_state(folder, checkpoints.CHECKPOINT_STATE)
    return os.path.basename(paths[-1]) if paths else None


def restore_into(src, save_dir, trial_id, hps, search_keys):
    """Makes save_dir hold the exported checkpoint `src` (a folder) and returns its
    info (TRIAL_FILE). Sets hps.do_reset_learning_rate when the trial's
    learning_rate_init differs from the checkpoint's (an exploit that perturbed it).

    save_dir is kept as it is when it already ends at this checkpoint of this trial
    (Ray paused the trial and starts it again in the same process); otherwise it is
    replaced by a copy of src (fitlog and TensorBoard history included: the history of
    the weights it now holds).
    """
    info = read_info(src)
    own = info.get("trial_id") == trial_id
    if not (own and _newest(save_dir) is not None and _newest(save_dir) == _newest(src)):
        if os.path.isdir(save_dir):
            shutil.rmtree(save_dir)
        shutil.copytree(src, save_dir)
    values = info.get("values", {})
    if "learning_rate_init" in search_keys and \
            values.get("learning_rate_init") != hps.learning_rate_init:
        hps.do_reset_learning_rate = True
    return info


# ------------------------------------------------------------------ what is reported
def metric_name(hps):
    """The metric a search minimises: sv_recon with sample validation, else the
    validation reconstruction cost."""
    return "sv_recon" if hps.get("sv_rate", 0.0) > 0 else "valid_recon"


def _finite(x):
    """Non-finite costs (a diverged trial) become +inf, which sorts last."""
    x = float(x)
    return x if math.isfinite(x) else float("inf")


def report_metrics(record, bundle, hps, restored=None):
    """The dict a trial reports after an epoch (training.epoch_record): "epoch" (epochs
    done), "step", the training and validation costs, sv_recon, the metric, the
    learning rate and the values in effect of every flag lfads_tf2/model/tunables.py makes a
    variable ("now_<flag>"), and, on the first report after starting from another
    trial's checkpoint, "restored_from" (that trial) and "restored_epoch" (its epoch)."""
    out = {"epoch": record["epoch"] + 1, "step": record["step"]}
    for split in ("train", "valid"):
        costs = record.get(split) or {}
        for key in ("total", "recon", "kl"):
            if key in costs:
                out["%s_%s" % (split, key)] = _finite(costs[key])
    if record.get("sv_recon") is not None:
        out["sv_recon"] = _finite(record["sv_recon"])
    name = metric_name(hps)
    out[name] = out.get(name, float("inf"))
    out["now_learning_rate"] = float(bundle.state.learning_rate.numpy())
    for key, value in bundle.model.tunables.values().items():
        out["now_" + key] = value
    out["now_cd_rate"] = 0.0 if bundle.cd_rate is None else float(bundle.cd_rate.numpy())
    out["restored_from"] = ""
    out["restored_epoch"] = -1
    if restored:
        out["restored_from"] = restored.get("trial_id", "")
        out["restored_epoch"] = int(restored.get("epoch", -1))
    return out


def run(hps, datasets, trial_id, restored, report, cache, make_plotter=None):
    """Trains one trial (see the module docstring).

    restored: the info `restore_into` returned when the trial starts from a
      checkpoint (now in its save folder), or None (a new trial).
    report(metrics, save_dir, info): called after every epoch with a regular checkpoint
      (every hps.checkpoint_every_n_epochs, and the last); exports the checkpoint with
      `export_checkpoint(save_dir, folder, info)` and hands it on.
    cache: a GraphCache; its graph is reused when the trial restores a checkpoint.
    """
    from lfads_tf2.train import loop
    search_keys = hps.search_keys
    graph = None
    source = None  # the other trial whose checkpoint this one starts from
    if restored is not None:
        if hps.get("max_epochs") is not None and restored.get("epoch", 0) >= hps.max_epochs:
            # population-based training pauses and restarts trials at their last report
            print("Trial %s has trained its %d epochs." % (trial_id, hps.max_epochs))
            return None
        if restored.get("trial_id") != trial_id:
            source = restored
            print("Exploit: starting from trial %s's checkpoint (epoch %s) with %s."
                  % (restored.get("trial_id"), restored.get("epoch"),
                     json.dumps(searched_values(hps, search_keys), sort_keys=True)))
        graph = cache.get(hps)
        if graph is not None:
            print("Reusing the graph built in this process (no new trace).")

    def on_epoch(bundle, record):
        nonlocal source
        if record["checkpoint"] is None:
            return
        metrics = report_metrics(record, bundle, hps, source)
        source = None
        info = {"trial_id": trial_id, "epoch": record["epoch"] + 1,
                "step": record["step"], "values": searched_values(hps, search_keys)}
        report(metrics, hps.lfads_save_dir, info)

    if graph is None:
        print("Building graph...")
        graph = loop.build_graph(hps, datasets)
        cache.put(hps, graph)
    return loop.train(hps, datasets, make_plotter=make_plotter, on_epoch=on_epoch,
                          graph=graph)
