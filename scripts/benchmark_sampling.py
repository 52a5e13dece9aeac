"""Posterior-sampling benchmark: seconds and peak memory of posterior_sample_and_average.

    python scripts/benchmark_sampling.py [--config=README1] [--trials=400]
                                         [--samples=128,1024] [--repeats=1]

Configurations (lfads_tf2/train/benchmark.py; random weights, random Poisson data):
  README1  the original README's first example (no inputs): 100 bins x 50 neurons,
           co_dim 0, factors_dim 20, the other sizes at their defaults (gen_dim 200,
           ic_enc_dim 128, ic_dim 64)
  C1       50 bins x 30 neurons, ic_enc_dim 64, ci_enc_dim 64, con_dim 64, co_dim 1,
           ic_dim 32, gen_dim 100, factors_dim 20

--trials trials in each of the train and valid splits (two output files, as the
README's posterior-sampling command writes), --samples posterior samples a trial
(--batch_size). The real evaluation path runs (evaluation.posterior_kind: encoders
once per trial, samples drawn as one batch, results streamed to the h5 files). Each
(trials, samples) pair runs in its own process, so that its peak resident memory
(which includes TensorFlow itself, about 0.5 GB) is its own: memory must not grow with
the number of samples or of trials. For reference, the original LFADS (TensorFlow 1)
peaked at 1.3 GB on the README no-inputs model, 400 trials a split, 128 samples.
--roots=OLD,NEW times other checkouts, their runs alternating: each run's process
imports the package from its checkout (first on PYTHONPATH).
"""
import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time

from lfads_tf2.train.benchmark import CONFIGS, child_result

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# the checkout this script belongs to: the default code to time
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_child(config, n_trials, samples, rows_per_chunk=None):
    import contextlib
    import io
    import numpy as np
    from lfads_tf2.train import runtime
    from lfads_tf2.train import hparams
    runtime.quiet_tensorflow_import()
    from lfads_tf2.train import build
    from lfads_tf2.evaluate import kinds
    runtime.configure_threads(0, 0)  # run_lfads's default for the evaluation kinds
    if rows_per_chunk:
        kinds.ROWS_PER_CHUNK = rows_per_chunk
    cfg = CONFIGS[config]
    T, D = cfg["T"], cfg["D"]
    work = tempfile.mkdtemp(prefix="lfads_bench_sampling_")
    flags = [f for f in cfg["flags"] if not f.startswith("--batch_size")]
    hps = hparams.hps_from_argv(flags + ["--seed=0", "--lfads_save_dir=" + work,
                                           "--kind=posterior_sample_and_average",
                                           "--batch_size=%d" % samples])
    rs = np.random.RandomState(0)
    data = rs.poisson(0.3, size=(2 * n_trials, T, D)).astype(np.int32)
    datasets = {"bench": {"train_data": data[:n_trials], "valid_data": data[n_trials:],
                          "data_dim": D, "num_steps": T}}
    hparams.add_derived_hps(hps, datasets)
    bundle = build.bundle(hps, build.datasets_info(datasets))
    # one warm-up call on two trials, so that tracing is not timed
    warm = {"train_data": data[:2], "data_dim": D, "num_steps": T}
    with contextlib.redirect_stdout(io.StringIO()):
        kinds.posterior_kind(bundle, hps, {"bench": warm},
                                  "posterior_sample_and_average")
        t0 = time.perf_counter()
        kinds.posterior_kind(bundle, hps, datasets, "posterior_sample_and_average")
    seconds = time.perf_counter() - t0
    return {"trials": n_trials, "samples": samples, "seconds": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def run_one(root, config, n_trials, samples, rows_per_chunk):
    """run_child in a process of its own that imports the package from the checkout
    `root` (PYTHONPATH first); returns its result."""
    result, out = child_result([os.path.abspath(__file__), "--_child=%d" % n_trials,
                                "--config=" + config, "--samples=%d" % samples,
                                "--rows_per_chunk=%d" % rows_per_chunk], root=root)
    if result is None:
        raise SystemExit("failed:\n" + out.stderr[-3000:])
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="README1")
    parser.add_argument("--trials", default="400", help="trials a split, comma-separated")
    parser.add_argument("--samples", default="128,1024", help="comma-separated")
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each setting (medians are shown)")
    parser.add_argument("--roots", default=ROOT,
                        help="comma-separated checkouts to time, runs alternating "
                        "(default: this one)")
    parser.add_argument("--rows_per_chunk", type=int, default=0,
                        help="evaluation.ROWS_PER_CHUNK to use (default: the code's)")
    parser.add_argument("--_child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    samples = [int(x) for x in args.samples.split(",")]
    if args._child is not None:
        print("RESULT " + json.dumps(run_child(args.config, args._child, samples[0],
                                                   args.rows_per_chunk)))
        return 0
    roots = [os.path.abspath(r) for r in args.roots.split(",")]
    settings = [(root, n, s) for n in [int(x) for x in args.trials.split(",")]
                for s in samples for root in roots]
    results = {setting: [] for setting in settings}
    loads = []
    for _ in range(args.repeats):
        for setting in settings:
            results[setting].append(run_one(setting[0], args.config, *setting[1:],
                                           args.rows_per_chunk))
            loads.append(os.getloadavg()[0])
    print("%s, median of %d runs; load average (1 min) during the runs %.1f-%.1f"
          % (args.config, args.repeats, min(loads), max(loads)))
    if len(roots) > 1:
        for i, root in enumerate(roots):
            print("[%d] %s" % (i, root))
    print("%5s %8s %8s %10s %12s %10s" % ("code", "trials", "samples", "seconds",
                                          "trials/s", "peak MB"))
    for root, n, s in settings:
        rs = results[root, n, s]
        seconds = statistics.median(r["seconds"] for r in rs)
        print("%5s %8d %8d %10.2f %12.1f %10.0f" % (
            "[%d]" % roots.index(root), n, s, seconds, 2 * n / seconds,
            statistics.median(r["peak_rss_mb"] for r in rs)))
    print("(trials/s counts both splits; the original LFADS: 1.3 GB peak, README1, "
          "400 trials, 128 samples)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
