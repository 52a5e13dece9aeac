"""Training speed benchmark: median seconds per step after warm-up, and peak memory.

    python scripts/benchmark_train.py [--steps=30] [--warmup=5] [--configs=C1,README1]

Configurations (batch 128, random Poisson data of the right shape):
  C1       50 bins x 30 neurons, ic_enc_dim 64, ci_enc_dim 64, con_dim 64, co_dim 1,
           ic_dim 32, gen_dim 100, factors_dim 20
  C0       as C1 but co_dim 0 (the brief's comparison with the original TF1 code)
  README1  the original README's first example: 100 bins x 50 neurons, co_dim 0,
           factors_dim 20, other flags at their defaults

For each, the full LFADS training step (one compiled graph: forward, cost, gradient,
clipping, Adam) is timed, and so is a bare "floor" of the same sizes: a minimal
bidirectional-GRU encoder (Keras GRU layers) plus a controller/generator loop of
Keras GRU cells and a Poisson loss, forward and backward with plain Adam. The ratio
LFADS/floor says how much the model's extra structure costs. Each configuration
runs in its own process so that its peak resident memory can be reported.
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

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


def _median_step_seconds(step_fn, args, steps, warmup):
    import numpy as np
    for _ in range(warmup):
        step_fn(*args)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        out = step_fn(*args)
        # fetch a value so that the step has really finished
        (out["total"] if isinstance(out, dict) else out).numpy()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def lfads_step(cfg):
    """Returns (compiled train step, args) of the full model for a config."""
    import numpy as np
    import run_lfads
    # the thread settings run_lfads.py uses by default (--intra_op_threads=1)
    run_lfads.configure_threads(1, 0)
    from lfads_tf2 import checkpoints, steps
    hps = run_lfads.hps_from_argv(cfg["flags"] + ["--seed=0"])
    datasets = {"bench": {"data_dim": cfg["D"], "num_steps": cfg["T"]}}
    run_lfads.add_derived_hps(hps, datasets)
    bundle = checkpoints.build(hps, {"bench": {"data_dim": cfg["D"]}})
    step = steps.make_train_step(bundle, hps)
    rs = np.random.RandomState(0)
    data = rs.poisson(0.3, size=(hps.batch_size, cfg["T"], cfg["D"])).astype(np.float32)
    return step, (0, data), hps


def floor_step(hps, cfg):
    """A bare encoder + controller/generator + Poisson loss of the same sizes."""
    import numpy as np
    import tensorflow as tf
    import keras
    T, D, B = cfg["T"], cfg["D"], hps.batch_size
    G, F, U, C = hps.gen_dim, hps.factors_dim, hps.co_dim, hps.con_dim
    inputs = keras.Input((T, D))
    ic_enc = keras.layers.Bidirectional(keras.layers.GRU(hps.ic_enc_dim))
    to_g0 = keras.layers.Dense(G)
    layers = [ic_enc, to_g0]
    if U > 0:
        ci_enc = keras.layers.Bidirectional(
            keras.layers.GRU(hps.ci_enc_dim, return_sequences=True))
        con_cell = keras.layers.GRUCell(C)
        to_u = keras.layers.Dense(U)
        layers += [ci_enc, con_cell, to_u]
    gen_cell = keras.layers.GRUCell(G)
    to_fac = keras.layers.Dense(F, use_bias=False)
    readout = keras.layers.Dense(D)
    layers += [gen_cell, to_fac, readout]
    # build every layer once
    g0 = to_g0(ic_enc(inputs))
    ci = ci_enc(inputs) if U > 0 else None
    model_vars = None
    optimizer = keras.optimizers.Adam(0.01)

    def forward(x):
        g = to_g0(ic_enc(x))
        if U > 0:
            ci_t = tf.transpose(ci_enc(x), [1, 0, 2])
            c0 = tf.zeros([tf.shape(x)[0], C])

            def step(carry, ci_step):
                c, g, _ = carry
                c, _ = con_cell(tf.concat([ci_step, to_fac(g)], -1), [c])
                c = c[0] if isinstance(c, (list, tuple)) else c
                u = to_u(c)
                g, _ = gen_cell(u, [g])
                g = g[0] if isinstance(g, (list, tuple)) else g
                return c, g, g
            _, _, gs = tf.scan(step, ci_t, initializer=(c0, g, g))
        else:
            zeros = tf.zeros([T, tf.shape(x)[0], 1])

            def step(g, z):
                g, _ = gen_cell(z, [g])
                return g[0] if isinstance(g, (list, tuple)) else g
            gs = tf.scan(step, zeros, initializer=g)
        logr = readout(to_fac(tf.transpose(gs, [1, 0, 2])))
        return tf.reduce_mean(tf.reduce_sum(tf.exp(logr) - x * logr, axis=[1, 2]))

    forward(inputs[:0] if False else tf.zeros([B, T, D]))  # create all variables
    model_vars = [v for layer in layers for v in layer.trainable_variables]
    optimizer.build(model_vars)

    @tf.function(input_signature=[tf.TensorSpec([None, T, D], tf.float32)])
    def step(x):
        with tf.GradientTape() as tape:
            loss = forward(x)
        grads = tape.gradient(loss, model_vars)
        optimizer.apply_gradients(zip(grads, model_vars))
        return loss

    del g0, ci
    rs = np.random.RandomState(0)
    data = rs.poisson(0.3, size=(B, T, D)).astype(np.float32)
    return step, (data,)


def run_one(name, steps, warmup, what):
    cfg = CONFIGS[name]
    step, args, hps = lfads_step(cfg)
    result = {"config": name}
    if what in ("lfads", "both"):
        result["lfads_s_per_step"] = _median_step_seconds(step, args, steps, warmup)
    if what in ("floor", "both"):
        fstep, fargs = floor_step(hps, cfg)
        result["floor_s_per_step"] = _median_step_seconds(fstep, fargs, steps, warmup)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--configs", default="C1,C0,README1")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_what", default="both", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        print("RESULT " + json.dumps(run_one(args._child, args.steps, args.warmup,
                                             args._what)))
        return 0
    print("%-8s %14s %8s %14s %8s %8s" % ("config", "lfads s/step", "peak MB",
                                         "floor s/step", "peak MB", "ratio"))
    for name in args.configs.split(","):
        res = {}
        for what in ("lfads", "floor"):
            out = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--_child=" + name,
                 "--_what=" + what, "--steps=%d" % args.steps,
                 "--warmup=%d" % args.warmup],
                capture_output=True, text=True, check=False)
            lines = [l for l in out.stdout.splitlines() if l.startswith("RESULT ")]
            if not lines:
                print("%s %s failed:\n%s" % (name, what, out.stderr[-2000:]))
                return 1
            res[what] = json.loads(lines[-1][len("RESULT "):])
        lf, fl = res["lfads"]["lfads_s_per_step"], res["floor"]["floor_s_per_step"]
        print("%-8s %14.4f %8.0f %14.4f %8.0f %8.2f" % (
            name, lf, res["lfads"]["peak_rss_mb"], fl, res["floor"]["peak_rss_mb"],
            lf / fl))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
