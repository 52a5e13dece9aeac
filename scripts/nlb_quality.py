"""NLB-style scores on the synthetic held-out/forward sets: true rates, smoothing, LFADS.

    python scripts/nlb_quality.py --sets=200,2000 --steps=4000 \
        [--data_dir=/tmp/rnn_synth_data_v1.0/] [--save_root=/tmp/lfads_nlb/] \
        [--methods=truth,smoothing,lfads,lfads_cd_sv] [--cd_rate=0.3] [--sv_rate=0.1] \
        [--samples=128] [--seed=1]

For each set (chaotic_rnn_nlb_<N>train, made by synth_data/run_generate_synth_data.sh:
50 held-in and 20 held-out neurons, 100 held-in and 20 forward bins, 500 validation
trials shared by both sets) it prints co-bps, fp-bps, PSTH R² and rate R² on the
validation trials, computed by `lfads_score` (lfads_tf2.score.lfads_score) for every row:

  truth        the true rates (the ceiling)
  smoothing    each held-in neuron's spikes smoothed with a Gaussian (s.d. 2, 4, 8, 16 or
               32 bins; each score is the best over them, so the widths may differ
               between columns: the one named in the notes); held-out neurons from a Poisson GLM of the
               smoothed held-in spikes fitted on the training trials (the NLB baseline);
               forward bins at each neuron's mean training rate there (smoothing cannot
               forecast)
  lfads        the original README's first example's flags
  lfads_cd_sv  the same with --cd_rate, --sv_rate and --lve_metric=sv
  lfads_co     with a controller (inferred inputs): the original README's flags for its
               chaotic RNN with input pulses (--co_dim=1 --factors_dim=20, Poisson), the
               data having no external inputs (not run unless named in --methods)
  lfads_co_cd_sv  the same with --cd_rate, --sv_rate and --lve_metric=sv

Both LFADS rows train for the same number of steps (--steps, rounded up to whole
epochs) with --seed, then posterior_sample_and_average (--samples per trial) runs on
the lowest-validation checkpoint. Training resumes from the save folder. Wall times are
written to <save_dir>/quality_time.json and printed.
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
from lfads_tf2.score import nlb_sets

# run_lfads.py runs from here: the model trained and scored is this checkout's
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOOTHING_SDS = (2.0, 4.0, 8.0, 16.0, 32.0)
# The original README's example with input pulses: a controller infers them.
README_CO_FLAGS = ["--co_dim=1", "--factors_dim=20", "--ext_input_dim=0",
                   "--output_dist=poisson"]
METHODS = ("truth", "smoothing", "lfads", "lfads_cd_sv", "lfads_co", "lfads_co_cd_sv")
DEFAULT_METHODS = METHODS[:4]


def data_file(data_dir, size):
    stem = "chaotic_rnn_nlb_%dtrain" % size
    return stem, nlb_sets.data_file(data_dir, stem)


def write_rates(path, rates_etn):
    """An output file lfads_score reads: output_dist_params = rates in counts per bin."""
    utils.write_data(path, {"output_dist_params": np.asarray(rates_etn, np.float64)})


def smooth(x_etn, sd_bins):
    """Gaussian smoothing along time (kernel truncated at 3 s.d., normalised per bin so
    the edges are not biased low)."""
    half = int(math.ceil(3 * sd_bins))
    kernel = np.exp(-0.5 * (np.arange(-half, half + 1) / sd_bins) ** 2)
    E, T, N = x_etn.shape
    flat = np.moveaxis(x_etn, 1, -1).reshape(-1, T)
    def conv(row):  # centred, length T, also when the kernel is longer than T
        return np.convolve(row, kernel, mode="full")[half:half + T]
    out = np.stack([conv(row) for row in flat]) / conv(np.ones(T))
    return np.moveaxis(out.reshape(E, N, T), -1, 1)


def truth_rates(data):
    """True rates of all neurons over all bins, in counts per bin."""
    return np.asarray(data["valid_truth"], np.float64) / float(data["conversion_factor"])


def smoothing_rates(data, sd_bins):
    """[E_valid, T + fp, N_in + N_out] rates of the smoothing baseline (module docstring)."""
    from sklearn.linear_model import PoissonRegressor
    train_in, valid_in = data["train_data"].astype(float), data["valid_data"].astype(float)
    train_all = data["train_recon_data"].astype(float)
    E, T, n_in = valid_in.shape
    T_all, n_all = train_all.shape[1:]
    s_train, s_valid = smooth(train_in, sd_bins), smooth(valid_in, sd_bins)
    out = np.empty((E, T_all, n_all))
    out[:, :T, :n_in] = s_valid
    x_train, x_valid = s_train.reshape(-1, n_in), s_valid.reshape(-1, n_in)
    for j in range(n_in, n_all):
        glm = PoissonRegressor(alpha=1e-3, max_iter=500)
        glm.fit(x_train, train_all[:, :T, j].ravel())
        out[:, :T, j] = glm.predict(x_valid).reshape(E, T)
    out[:, T:, :] = train_all[:, T:, :].mean(axis=(0, 1))
    return out


def lfads_flags(args, method, stem, data_dir, save_dir, epochs):
    flags = ["--data_dir=" + data_dir, "--data_filename_stem=" + stem,
             "--lfads_save_dir=" + save_dir, "--seed=%d" % args.seed]
    flags += README_CO_FLAGS if method.startswith("lfads_co") else nlb_sets.README_FLAGS
    if method.endswith("_cd_sv"):
        flags += ["--cd_rate=%g" % args.cd_rate, "--sv_rate=%g" % args.sv_rate,
                  "--lve_metric=sv"]
    return flags, ["--max_epochs=%d" % epochs]


def run_lfads(args, method, size, stem, data_path):
    epochs = nlb_sets.epochs_for_steps(args.steps, data_path)
    save_dir = os.path.join(args.save_root, "%s_%d" % (method, size))
    flags, train_only = lfads_flags(args, method, stem, os.path.dirname(data_path) + "/",
                                    save_dir, epochs)
    times_path = os.path.join(save_dir, "quality_time.json")
    times = json.load(open(times_path)) if os.path.exists(times_path) else {"train_s": 0.0}
    run = [sys.executable, os.path.join(ROOT, "run_lfads.py")]
    if not args.eval_only:
        start = time.time()
        subprocess.run(run + ["--kind=train"] + flags + train_only, check=True,
                       stdout=subprocess.DEVNULL)
        times["train_s"] += time.time() - start
        os.makedirs(save_dir, exist_ok=True)
        with open(times_path, "w") as f:
            json.dump(times, f)
    subprocess.run(run + ["--kind=posterior_sample_and_average",
                          "--batch_size=%d" % args.samples,
                          "--checkpoint_pb_load_name=checkpoint_lve"] + flags,
                   check=True, stdout=subprocess.DEVNULL)
    out = nlb_sets.sampled_output(save_dir, data_path, stem)
    fitlog = [l for l in open(os.path.join(save_dir, "fitlog.csv")) if l.startswith("epoch")]
    steps = int(fitlog[-1].split(",")[3])
    return (nlb_sets.valid_scores(out, data_path),
            dict(steps=steps, minutes=times["train_s"] / 60))


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sets", default="200,2000")
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--methods", default=",".join(DEFAULT_METHODS))
    p.add_argument("--data_dir", default="/tmp/rnn_synth_data_v1.0/")
    p.add_argument("--save_root", default="/tmp/lfads_nlb/")
    p.add_argument("--cd_rate", type=float, default=0.3)
    p.add_argument("--sv_rate", type=float, default=0.1)
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--eval_only", action="store_true")
    args = p.parse_args()
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            sys.exit("--methods: unknown %s (expected some of %s)" % (m, ", ".join(METHODS)))
    os.makedirs(args.save_root, exist_ok=True)
    rows = []
    for size in [int(s) for s in args.sets.split(",")]:
        stem, data_path = data_file(args.data_dir, size)
        data = utils.read_data(data_path)
        for method in methods:
            extra = {}
            if method == "truth":
                path = os.path.join(args.save_root, "truth_%d" % size)
                write_rates(path, truth_rates(data))
                metrics = nlb_sets.valid_scores(path, data_path)
            elif method == "smoothing":
                by_sd = {}
                for sd in SMOOTHING_SDS:
                    path = os.path.join(args.save_root, "smoothing_%d_sd%g" % (size, sd))
                    write_rates(path, smoothing_rates(data, sd))
                    by_sd[sd] = nlb_sets.valid_scores(path, data_path)
                metrics, extra = {}, {}
                for key in by_sd[SMOOTHING_SDS[0]]:
                    sd = max(by_sd, key=lambda s: by_sd[s][key])
                    metrics[key], extra["sd_" + key] = by_sd[sd][key], sd
            else:
                metrics, extra = run_lfads(args, method, size, stem, data_path)
            rows.append((size, method, metrics, extra))
            print("%d train trials, %s: %s %s" % (size, method, json.dumps(metrics),
                                                 json.dumps(extra)), flush=True)
    print()
    print("| training trials | method | co-bps | fp-bps | PSTH R² | rate R² | notes |")
    print("|---|---|---|---|---|---|---|")
    for size, method, m, extra in rows:
        notes = ", ".join("%s %s" % (k, ("%.0f" % v) if isinstance(v, float) and k ==
                                     "minutes" else v) for k, v in extra.items())
        print("| %d | %s | %.3f | %.3f | %.3f | %.3f | %s |"
              % (size, method, m["co_bps"], m["fp_bps"], m.get("psth_r2", float("nan")),
                 m["rate_r2"], notes))


if __name__ == "__main__":
    main()
