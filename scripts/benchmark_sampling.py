"""Posterior-sampling benchmark: seconds and peak memory of posterior_sample_and_average.

    python scripts/benchmark_sampling.py [--trials=1000,4000] [--samples=50]

Uses config C1 of benchmark_train.py (50 bins x 30 neurons, ic_enc_dim 64,
ci_enc_dim 64, con_dim 64, co_dim 1, ic_dim 32, gen_dim 100, factors_dim 20) with
random weights and random Poisson data, and runs the real evaluation path
(evaluation.posterior_kind: encoders once per trial, samples drawn as one batch,
results streamed to the h5 file). Each trial count runs in its own process so its
peak resident memory is reported separately: flat memory across trial counts shows
that memory does not grow with the number of trials.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

T, D = 50, 30


def run_child(n_trials, samples):
    import contextlib
    import io
    import numpy as np
    import utils
    utils.quiet_tensorflow_import()
    import benchmark_train
    from lfads_tf2 import evaluation
    import run_lfads
    from lfads_tf2 import checkpoints
    run_lfads_mod = __import__("run_lfads")
    run_lfads_mod.configure_threads(0, 0)
    work = tempfile.mkdtemp(prefix="lfads_bench_sampling_")
    flags = benchmark_train.CONFIGS["C1"]["flags"]
    hps = run_lfads.hps_from_argv(flags + ["--seed=0", "--lfads_save_dir=" + work,
                                           "--kind=posterior_sample_and_average",
                                           "--batch_size=%d" % samples])
    rs = np.random.RandomState(0)
    data = rs.poisson(0.3, size=(n_trials, T, D)).astype(np.int32)
    datasets = {"bench": {"train_data": data, "valid_data": data[:1], "data_dim": D,
                          "num_steps": T}}
    run_lfads.add_derived_hps(hps, datasets)
    bundle = checkpoints.build(hps, checkpoints.datasets_info(datasets))
    # one warm-up chunk so that tracing is not timed
    warm = dict(datasets["bench"], train_data=data[:2])
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation.posterior_kind(bundle, hps, {"bench": warm},
                                  "posterior_sample_and_average")
        t0 = time.perf_counter()
        evaluation.posterior_kind(bundle, hps, datasets, "posterior_sample_and_average")
    seconds = time.perf_counter() - t0
    return {"trials": n_trials, "samples": samples, "seconds": seconds,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", default="1000,4000")
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--_child", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child is not None:
        print("RESULT " + json.dumps(run_child(args._child, args.samples)))
        return 0
    print("%8s %8s %10s %12s %10s" % ("trials", "samples", "seconds", "trials/s",
                                      "peak MB"))
    for n in [int(x) for x in args.trials.split(",")]:
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--_child=%d" % n,
                              "--samples=%d" % args.samples], capture_output=True,
                             text=True, check=False)
        lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
        if not lines:
            print("failed:\n" + out.stderr[-2000:])
            return 1
        r = json.loads(lines[-1][len("RESULT "):])
        print("%8d %8d %10.2f %12.1f %10.0f" % (r["trials"], r["samples"], r["seconds"],
                                                r["trials"] / r["seconds"], r["peak_rss_mb"]))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
