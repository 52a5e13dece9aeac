"""Rate R² on the synthetic calcium set: ZIG LFADS, Gaussian LFADS, smoothed traces.

    python scripts/calcium_quality.py --steps=1400 [--data_dir=/tmp/rnn_synth_data_v1.0/] \
        [--save_root=/tmp/calcium_quality/] [--methods=smoothing,gaussian,zig,zig_missing20] \
        [--samples=32] [--seed=1]

The data are synth_data's calcium sets at the generator's defaults (`calcium_chaotic_rnn`:
deconvolved traces of 50 neurons, 100 frames, 800 training and 200 validation trials, 87 %
exact zeros; `calcium_missing20_chaotic_rnn`: the same with 20 % of the entries NaN),
written to --data_dir first if they are not there. Every row is scored the same way: rate
R² = each neuron's least-squares affine map from the row's estimate (LFADS:
`output_dist_mean` of posterior_sample_and_average on the lowest-validation checkpoint,
or the last one when the budget ends before the KL and L2 ramps do;
smoothing: the smoothed traces) to the true rates, fitted on the training trials and
scored on the validation trials, averaged over neurons (lfads_tf2.score.rate_r2.r2_affine).
An affine map, since traces (in units of one spike's calcium jump, after a thresholded
deconvolution) and rates (spikes per frame) differ in scale and offset.

  smoothing      each neuron's trace smoothed with a Gaussian of s.d. 1, 2, 4, 8 or 16
                 frames; the best width on the validation trials is reported
  gaussian       LFADS with --output_dist=gaussian
  zig            LFADS with --output_dist=zig
  zig_missing20  LFADS with --output_dist=zig on the 20 %-missing set, --nan_is_missing;
                 skipped with a message when run_lfads has no such flag

The LFADS rows share everything but --output_dist (and the missing row's data and flag):
the README's first example's model (--co_dim=0 --factors_dim=20), --seed, batch size 128,
--steps training steps (rounded up to whole epochs). Training resumes from the save folder.
Wall times are written to <save_dir>/quality_time.json and printed.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np

import utils
from lfads_tf2.evaluate import figures
from lfads_tf2.score import rate_r2

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHODS = ("smoothing", "gaussian", "zig", "zig_missing20")
SMOOTHING_SDS = (1.0, 2.0, 4.0, 8.0, 16.0)
STEMS = {"complete": "calcium_chaotic_rnn", "missing20": "calcium_missing20_chaotic_rnn"}
# The README's first example's model (no controller), as scripts/nlb_quality.py's rows.
MODEL_FLAGS = ["--co_dim=0", "--factors_dim=20", "--ext_input_dim=0",
               "--controller_input_lag=1", "--batch_size=128"]
BATCH_SIZE = 128


def data_path(data_dir, which):
    """The calcium set's file, generated (the generator's defaults, as
    synth_data/run_generate_synth_data.sh) when missing."""
    stem = STEMS[which]
    found = [f for f in sorted(os.listdir(data_dir)) if f.startswith(stem + "_")] \
        if os.path.isdir(data_dir) else []
    if not found:
        from synth_data import generate_calcium_data, synthetic_data_utils
        datasets = generate_calcium_data.generate_calcium_datasets(
            missing_fraction=0.2 if which == "missing20" else 0.0)
        synthetic_data_utils.write_and_report(data_dir, stem, datasets)
        found = [f for f in sorted(os.listdir(data_dir)) if f.startswith(stem + "_")]
    return stem, os.path.join(data_dir, found[0])


def affine_r2(train_pred, train_truth, valid_pred, valid_truth):
    """Mean per-neuron R² on the validation trials of the affine map fitted on training."""
    return rate_r2.r2_affine(valid_pred, valid_truth, train_pred,
                             train_truth)["r2_mean_per_neuron"]


def smoothing_row(data):
    by_sd = {sd: affine_r2(figures.smooth_time(data["train_data"], sd), data["train_truth"],
                           figures.smooth_time(data["valid_data"], sd), data["valid_truth"])
             for sd in SMOOTHING_SDS}
    best = max(by_sd, key=by_sd.get)
    return by_sd[best], {"sd_frames": best,
                         "by_sd": {"%g" % sd: round(r2, 4) for sd, r2 in by_sd.items()}}


def has_flag(name):
    from lfads_tf2.train import flags as run_flags
    return name in run_flags.defined_flag_names()


def lfads_row(args, method, data_dir):
    which = "missing20" if method == "zig_missing20" else "complete"
    stem, path = data_path(data_dir, which)
    n_train = utils.read_data(path)["train_data"].shape[0]
    epochs = int(math.ceil(args.steps / math.ceil(n_train / BATCH_SIZE)))
    save_dir = os.path.join(args.save_root, method)
    flags = ["--data_dir=" + data_dir, "--data_filename_stem=" + stem,
             "--lfads_save_dir=" + save_dir, "--seed=%d" % args.seed,
             "--output_dist=" + ("gaussian" if method == "gaussian" else "zig")] + MODEL_FLAGS
    if which == "missing20":
        flags.append("--nan_is_missing=true")
    run = [sys.executable, os.path.join(ROOT, "run_lfads.py")]
    times_path = os.path.join(save_dir, "quality_time.json")
    times = json.load(open(times_path)) if os.path.exists(times_path) else {"train_s": 0.0}
    if not args.eval_only:
        start = time.time()
        subprocess.run(run + ["--kind=train", "--max_epochs=%d" % epochs] + flags,
                       check=True, stdout=subprocess.DEVNULL)
        times["train_s"] += time.time() - start
        with open(times_path, "w") as f:
            json.dump(times, f)
    start = time.time()
    # the samples are the evaluation's batch: --batch_size here is not the training's
    eval_flags = [f for f in flags if not f.startswith("--batch_size=")]
    # Lowest-validation checkpoints exist only once the KL and L2 ramps are done (as the
    # original), after 2,000 steps by default: a shorter budget takes the last one.
    state = "checkpoint_lve" if os.path.exists(os.path.join(save_dir, "checkpoint_lve")) \
        else "checkpoint"
    subprocess.run(run + ["--kind=posterior_sample_and_average",
                          "--batch_size=%d" % args.samples,
                          "--checkpoint_pb_load_name=" + state] + eval_flags,
                   check=True, stdout=subprocess.DEVNULL)
    eval_s = time.time() - start
    name = os.path.basename(path)[len(stem) + 1:]
    means = {split: utils.read_data(os.path.join(
        save_dir, "model_runs_%s_%s_posterior_sample_and_average" % (name, split)))[
        "output_dist_mean"] for split in ("train", "valid")}
    truth = utils.read_data(path)
    fitlog = [line for line in open(os.path.join(save_dir, "fitlog.csv"))
              if line.startswith("epoch")]
    return (affine_r2(means["train"], truth["train_truth"], means["valid"],
                      truth["valid_truth"]),
            {"steps": int(fitlog[-1].split(",")[3]), "checkpoint": state,
             "train_minutes": round(times["train_s"] / 60, 1),
             "eval_minutes": round(eval_s / 60, 1)})


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1400)
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--data_dir", default="/tmp/rnn_synth_data_v1.0/")
    p.add_argument("--save_root", default="/tmp/calcium_quality/")
    p.add_argument("--samples", type=int, default=32)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--eval_only", action="store_true")
    args = p.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            sys.exit("--methods: unknown %s (expected some of %s)" % (m, ", ".join(METHODS)))
    os.makedirs(args.save_root, exist_ok=True)
    data = utils.read_data(data_path(args.data_dir, "complete")[1])
    rows = []
    for method in methods:
        if method == "zig_missing20" and not has_flag("nan_is_missing"):
            print("zig_missing20: skipped, run_lfads has no --nan_is_missing flag yet",
                  flush=True)
            continue
        if method == "smoothing":
            r2, notes = smoothing_row(data)
        else:
            r2, notes = lfads_row(args, method, args.data_dir)
        rows.append((method, r2, notes))
        print("%s: rate R2 %.4f %s" % (method, r2, json.dumps(notes)), flush=True)
    print()
    print("| method | rate R² (valid, affine per neuron) | notes |")
    print("|---|---|---|")
    for method, r2, notes in rows:
        print("| %s | %.3f | %s |" % (method, r2, ", ".join(
            "%s %s" % (k, v) for k, v in notes.items() if k != "by_sd")))


if __name__ == "__main__":
    main()
