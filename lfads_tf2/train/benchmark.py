"""What the speed scripts share: the benchmark models and how a measurement runs.

`CONFIGS` and `lfads_step` (the compiled training step of a configuration, on random
Poisson data of its shape, weights at the model's own initialisation with seed 0) are
used by scripts/benchmark_train.py, profile_train.py and benchmark_sampling.py, so that
they time and profile the same models; `child_result` runs one measurement in a fresh
process (its own time and peak memory), optionally importing another checkout.
"""
import json
import os
import subprocess
import sys

# name -> T bins, D neurons and the run_lfads flags beyond their defaults
CONFIGS = {
    "C1": dict(T=50, D=30, flags=["--ic_enc_dim=64", "--ci_enc_dim=64", "--con_dim=64",
                                  "--co_dim=1", "--ic_dim=32", "--gen_dim=100",
                                  "--factors_dim=20", "--batch_size=128"]),
    "C0": dict(T=50, D=30, flags=["--ic_enc_dim=64", "--ci_enc_dim=64", "--con_dim=64",
                                  "--co_dim=0", "--ic_dim=32", "--gen_dim=100",
                                  "--factors_dim=20", "--batch_size=128"]),
    "README1": dict(T=100, D=50, flags=["--co_dim=0", "--factors_dim=20",
                                        "--batch_size=128"]),
}


def lfads_step(cfg, parts=0):
    """Returns (compiled train step, args, hps) of the full model for a config; parts:
    the batch split into that many parts (0: as training does, steps.batch_parts).

    args are what the training loop passes (steps.call_step): a dataset index and a
    batch {"data": [batch_size, T, D] float32}.
    """
    # imported here: a process that needs only CONFIGS does not import TensorFlow
    import numpy as np
    from lfads_tf2.train import runtime
    from lfads_tf2.train import hparams
    # the thread settings run_lfads.py uses by default (--intra_op_threads=1)
    runtime.configure_threads(1, 0)
    from lfads_tf2.train import build, steps
    if parts:
        steps.batch_parts = lambda: parts
    hps = hparams.hps_from_argv(cfg["flags"] + ["--seed=0"])
    datasets = {"bench": {"data_dim": cfg["D"], "num_steps": cfg["T"]}}
    hparams.add_derived_hps(hps, datasets)
    bundle = build.bundle(hps, {"bench": {"data_dim": cfg["D"]}})
    step = steps.make_train_step(bundle, hps)
    rs = np.random.RandomState(0)
    data = rs.poisson(0.3, size=(hps.batch_size, cfg["T"], cfg["D"])).astype(np.float32)
    return step, (0, {"data": data}), hps


def child_result(argv, root=None, **kwargs):
    """Runs `python argv...` in a process of its own (a fresh interpreter, so its time
    and peak memory are its own) and returns (the JSON value of its last stdout line
    that starts with "RESULT ", or None; the CompletedProcess).

    root: a checkout to time instead of the installed package; the process imports
    the package from there (first on PYTHONPATH). kwargs go to subprocess.run.
    """
    env = dict(kwargs.pop("env", None) or os.environ)
    if root is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [root] + [p for p in [env.get("PYTHONPATH")] if p])
    proc = subprocess.run([sys.executable] + list(argv), capture_output=True, text=True,
                          check=False, env=env, **kwargs)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    return (json.loads(lines[-1][len("RESULT "):]) if lines else None), proc
