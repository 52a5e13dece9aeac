"""The history of a search: every report of every trial, recorded on the driver.

`HistoryRecorder` is a Ray Tune callback: the driver gets every result a trial reports
and appends it as one JSON line to <lfads_save_dir>/history.jsonl (Ray Tune's own
per-trial files were found to drop reports of trials that population-based training
paused and restarted). A resumed search appends to the same file; `read` keeps the
last of any report repeated after a resume. `table` and `exploits` turn it into the
rows of trials.csv and the exploit events of the figure.
"""
import json
import math
import os

from ray import tune

HISTORY = "history.jsonl"
# The per-report columns, in the order of trials.csv (config/<flag> columns follow).
COLUMNS = ["trial_id", "training_iteration", "epoch", "step", "train_total", "train_recon",
           "train_kl", "valid_total", "valid_recon", "valid_kl", "sv_recon",
           "now_learning_rate", "now_keep_prob", "now_cd_rate", "now_kl_ic_weight",
           "now_kl_co_weight", "now_l2_gen_scale", "now_l2_con_scale", "restored_from",
           "restored_epoch", "time_total_s"]


class HistoryRecorder(tune.Callback):
    """Appends every trial result to a JSON-lines file (see the module docstring)."""

    def __init__(self, path):
        self.path = path

    def on_trial_result(self, iteration, trials, trial, result, **info):
        row = {key: result.get(key) for key in COLUMNS if key in result}
        row["trial_id"] = trial.trial_id
        # The config the trial ran with, from the trainable: under synchronous PBT the
        # scheduler may already have given the trial an exploit's new config when its last
        # report of a round reaches this callback.
        row["config"] = dict(result.get("config") or trial.config)
        with open(self.path, "a") as f:
            f.write(json.dumps(row, default=_plain, allow_nan=True) + "\n")


def _plain(value):
    try:
        return value.item()  # numpy scalars
    except AttributeError:
        return str(value)


def read(path):
    """The recorded reports, in order, the last of each (trial, iteration) kept."""
    rows = {}
    if not os.path.exists(path):
        return []
    with open(path) as f:
        for line in f:
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut short by a kill
            rows[(row.get("trial_id"), row.get("training_iteration"))] = row
    return sorted(rows.values(), key=lambda r: (str(r.get("trial_id")),
                                                 r.get("training_iteration") or 0))


def table(rows):
    """(header, rows as lists): COLUMNS present, then config/<flag> of every flag."""
    columns = [c for c in COLUMNS if any(c in r for r in rows)]
    configs = sorted({k for r in rows for k in r.get("config", {})})
    header = columns + ["config/" + k for k in configs]
    out = [[r.get(c, "") for c in columns] + [r.get("config", {}).get(k, "") for k in configs]
           for r in rows]
    return header, out


def histories(rows, metric):
    """{trial: ([epochs], [metric values])} in report order."""
    out = {}
    for r in rows:
        if metric in r and r.get("epoch") is not None:
            value = r[metric]
            epochs, values = out.setdefault(r["trial_id"], ([], []))
            epochs.append(r["epoch"])
            values.append(float(value) if value is not None else math.nan)
    return out


def exploits(rows):
    """[(trial, source trial, epoch of the source's checkpoint, epoch of the trial's
    next report)] of every exploit (population-based training)."""
    return [(r["trial_id"], r["restored_from"], int(r["restored_epoch"]), int(r["epoch"]))
            for r in rows if r.get("restored_from")]
