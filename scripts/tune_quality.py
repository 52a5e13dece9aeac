"""Hyperparameter search, measured: default flags, random search and population-based
training on the 200-trial NLB-style set, at equal training steps per model.

    python scripts/tune_quality.py --rows=defaults --steps=4000    # row 1
    python scripts/tune_quality.py --rows=random --steps=4000      # row 2
    python scripts/tune_quality.py --rows=pbt --steps=4000         # row 3
        [--data_dir=/tmp/nlbdata/] [--save_root=/tmp/lfads_tune_quality/]
        [--num_samples=8] [--perturbation_interval=100] [--cpus_per_trial=1]
        [--samples=128] [--checkpoint=checkpoint_lve] [--seed=1] [--figure=PATH]
        [--ramp_steps=N] [--report_every_n_epochs=1]

(--rows=defaults,random,pbt runs all three in turn.) The data set is
chaotic_rnn_nlb_200train (synth_data/run_generate_synth_data.sh: 200 training and 500
validation trials, 50 held-in and 20 held-out neurons, 100 bins plus 20 forward bins).
Every row trains with the flags of the modern-training comparison (scripts/nlb_quality.py,
row lfads_cd_sv: the original README's first example with --cd_rate=0.3 --sv_rate=0.1
--lve_metric=sv) and --seed; --ramp_steps=N sets --kl_increase_steps and
--l2_increase_steps to N in every row (their default, 2000, is longer than a short
budget: the lowest-sv_recon checkpoint is only kept once the ramps are over):

  defaults  one run_lfads training with those flags, --steps steps
  random    lfads_tune --search=random: --num_samples trials drawn from SPACE, each
            trained --steps steps (the same total as pbt)
  pbt       lfads_tune --search=pbt over the same SPACE: a population of --num_samples
            trials, each trained --steps steps, exploit/explore every
            --perturbation_interval epochs, on sv_recon

Each row then runs posterior_sample_and_average (--samples per trial) on the lowest
sv_recon checkpoint (--checkpoint=checkpoint_lve; `checkpoint`: the newest) of its model,
for the searches the best trial's
(<save_dir>/best_model, with run_lfads --flagfile=<save_dir>/best_model/run_lfads.flags),
and prints the validation co-bps, fp-bps, PSTH R² and rate R² (lfads_score) with the
wall time of the row (training and search, not the evaluation). The searches write
trials.csv and population.png in their folders; --figure copies the PBT one. A row
whose folder holds a finished run is not trained again; an interrupted one resumes.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

from lfads_tf2.score import nlb_sets

# the commands run from here, with it first on PYTHONPATH (env): this checkout's model
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ROWS = ("defaults", "random", "pbt")
STEM = "chaotic_rnn_nlb_200train"
# scripts/nlb_quality.py's lfads_cd_sv row: the original README's first example with
# coordinated dropout and sample validation.
BASE_FLAGS = nlb_sets.README_FLAGS + ["--cd_rate=0.3", "--sv_rate=0.1", "--lve_metric=sv"]
# Around the defaults (learning_rate_init 0.01, keep_prob 0.95, kl_ic_weight 1,
# l2_gen_scale 2000) and the CD rate 0.3; all perturbable, so both searches share it.
SPACE = """\
learning_rate_init: {loguniform: [1.0e-3, 3.0e-2]}
keep_prob: {uniform: [0.7, 1.0]}
cd_rate: {uniform: [0.1, 0.5]}
kl_ic_weight: {loguniform: [0.3, 3.0]}
l2_gen_scale: {loguniform: [200.0, 20000.0]}
"""


def env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


def timed(args_list, times_path, key):
    """Runs a command, adding its wall time to times_path[key]."""
    times = json.load(open(times_path)) if os.path.exists(times_path) else {}
    start = time.time()
    subprocess.run(args_list, check=True, env=env())
    times[key] = times.get(key, 0.0) + time.time() - start
    with open(times_path, "w") as f:
        json.dump(times, f)
    return times[key]


def evaluate(flags, save_dir, path, args):
    """posterior_sample_and_average on --checkpoint; the scores of its valid output."""
    subprocess.run([sys.executable, os.path.join(ROOT, "run_lfads.py"),
                    "--kind=posterior_sample_and_average", "--batch_size=%d" % args.samples,
                    "--checkpoint_pb_load_name=" + args.checkpoint] + flags,
                   check=True, stdout=subprocess.DEVNULL, env=env())
    return nlb_sets.valid_scores(nlb_sets.sampled_output(save_dir, path, STEM), path)


def run_row(args, row, path, epochs):
    save_dir = os.path.join(args.save_root, row)
    os.makedirs(save_dir, exist_ok=True)
    times_path = os.path.join(save_dir, "quality_time.json")
    data = ["--data_dir=" + os.path.dirname(path) + "/", "--data_filename_stem=" + STEM]
    common = data + BASE_FLAGS + ["--seed=%d" % args.seed, "--max_epochs=%d" % epochs]
    if args.ramp_steps:
        common += ["--kl_increase_steps=%d" % args.ramp_steps,
                   "--l2_increase_steps=%d" % args.ramp_steps]
    if row == "defaults":
        flags = common + ["--lfads_save_dir=" + save_dir]
        minutes = timed([sys.executable, os.path.join(ROOT, "run_lfads.py"),
                         "--kind=train"] + flags, times_path, "train_s") / 60
        return evaluate(flags, save_dir, path, args), minutes, save_dir
    out = os.path.join(save_dir, "search")
    space = os.path.join(save_dir, "space.yaml")
    with open(space, "w") as f:
        f.write(SPACE)
    minutes = timed([sys.executable, "-m", "lfads_tf2.search.lfads_tune", "--search=" + row,
                     "--search_space=" + space, "--num_samples=%d" % args.num_samples,
                     "--perturbation_interval=%d" % args.perturbation_interval,
                     "--cpus_per_trial=%g" % args.cpus_per_trial,
                     "--report_every_n_epochs=%d" % args.report_every_n_epochs,
                     "--lfads_save_dir=" + out] + common, times_path, "search_s") / 60
    best = os.path.join(out, "best_model")
    flagfile = ["--flagfile=" + os.path.join(best, "run_lfads.flags")]
    if row == "pbt" and args.figure:
        shutil.copyfile(os.path.join(out, "population.png"), args.figure)
    return evaluate(flagfile, best, path, args), minutes, best


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", default=",".join(ROWS))
    p.add_argument("--steps", type=int, default=4000)
    p.add_argument("--data_dir", default="/tmp/nlbdata/")
    p.add_argument("--save_root", default="/tmp/lfads_tune_quality/")
    p.add_argument("--num_samples", type=int, default=8)
    p.add_argument("--perturbation_interval", type=int, default=100)
    p.add_argument("--cpus_per_trial", type=float, default=1.0)
    p.add_argument("--samples", type=int, default=128)
    p.add_argument("--checkpoint", default="checkpoint_lve")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--figure", default="")
    p.add_argument("--ramp_steps", type=int, default=0,
                   help="--kl_increase_steps and --l2_increase_steps of every row "
                        "(default 0: the flags' defaults)")
    p.add_argument("--report_every_n_epochs", type=int, default=1,
                   help="lfads_tune's: how often a search trial reports and checkpoints "
                        "(PBT keeps an interval's checkpoints of every trial: 9 MB each "
                        "here)")
    args = p.parse_args()
    rows = [r for r in args.rows.split(",") if r]
    for r in rows:
        if r not in ROWS:
            sys.exit("--rows: unknown %s (expected some of %s)" % (r, ", ".join(ROWS)))
    path = nlb_sets.data_file(args.data_dir, STEM)
    epochs = nlb_sets.epochs_for_steps(args.steps, path)
    results = []
    for row in rows:
        metrics, minutes, model = run_row(args, row, path, epochs)
        results.append((row, metrics, minutes, model))
        print("%s: %s, %.0f min, model %s" % (row, json.dumps(metrics), minutes, model),
              flush=True)
    print()
    print("| hyperparameters | co-bps | fp-bps | PSTH R² | rate R² | wall time (2 cores) |")
    print("|---|---|---|---|---|---|")
    for row, m, minutes, _ in results:
        print("| %s | %.3f | %.3f | %.3f | %.3f | %.0f min |"
              % (row, m["co_bps"], m["fp_bps"], m.get("psth_r2", float("nan")),
                 m["rate_r2"], minutes))


if __name__ == "__main__":
    main()
