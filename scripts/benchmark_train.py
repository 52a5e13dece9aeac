"""Training speed benchmark: seconds per step, achieved GFLOP/s and this machine's limit.

    python scripts/benchmark_train.py [--steps=40] [--warmup=10] [--repeats=3]
        [--configs=C0,C1,README1] [--parts=N] [--no_floor]

Configurations (lfads_tf2/train/benchmark.py: batch 128, random Poisson data):
  C1       50 bins x 30 neurons, ic_enc_dim 64, ci_enc_dim 64, con_dim 64, co_dim 1,
           ic_dim 32, gen_dim 100, factors_dim 20
  C0       as C1 but co_dim 0 (no CI encoder, no controller)
  README1  the original README's first example: 100 bins x 50 neurons, co_dim 0,
           factors_dim 20, other flags at their defaults

For each, the full LFADS training step (one compiled graph: forward, cost, gradient,
clipping, Adam) is timed: the median of --steps timed steps after --warmup steps. In
the same process the machine's own throughput is measured for what the step does:
  * a chain of 50 dependent [B, a] @ [a, b] matmuls with a tanh between, for each
    shape a recurrence of the model multiplies by at every time step;
  * a 1024 x 1024 x 1024 matmul.
The step's floating-point operations are counted from the layer sizes (`step_flops`):
the sequential ones (inside the recurrences, forward and backward) at the chain's
throughput plus the rest (input projections, read-out, weight gradients, all one matmul
over every time step) at the large matmul's give the limit in s/step; "fraction" is
limit / measured. Element-wise work is not counted: the chain's tanh stands for it.
The configurations run in turn, each in its own process (which gives its peak resident
memory), --repeats times alternately; the table shows medians.

A bare "floor" of the same sizes is timed too unless --no_floor: a minimal
bidirectional-GRU encoder (Keras GRU layers) plus a controller/generator loop of Keras
GRU cells and a Poisson loss, forward and backward with plain Adam; a second reference,
what the recurrences cost in TensorFlow 2 before any of LFADS's structure.

The code timed is the installed package's; to time another checkout, run the script
with PYTHONPATH=<that checkout> (its configuration processes inherit it).
"""
import argparse
import json
import os
import resource
import sys
import time

from lfads_tf2.train.benchmark import CONFIGS, child_result, lfads_step

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


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


def _matmul_flops(rows, a, b):
    """FLOPs of [rows, a] @ [a, b] (a multiply and an add per term)."""
    return 2.0 * rows * a * b


def step_flops(hps, T, D):
    """The training step's matmul FLOPs, counted from the layer sizes.

    Returns (links, parallel): links {(a, b): FLOPs} of the matmuls that recurrences
    do one time step after another ([B, a] @ [a, b] with the full batch B), parallel
    the FLOPs of the matmuls done once over all time steps.

    How they are counted. Every matmul [r, a] @ [a, b] costs 2rab forward, and its
    backward is two matmuls of the same cost: the input's gradient and the weight's.
      * Inside a recurrence (per time step, sequential): a GRU's gates and candidate,
        [B, kz + n] @ [kz + n, 3n] (kz: inputs computed inside the loop: the
        controller's factor feedback, the generator's u_t), and in the controller loop
        the controller output [B, C] @ [C, 2U] and the factors [B, G] @ [G, F]. The
        backward loop multiplies by the same matrices transposed: the sequential FLOPs
        are twice the forward's.
      * Once over all steps (parallel): those recurrent matmuls' weight gradients (one
        matmul over all steps, fast_rnn._weight_grads); the input projections of the
        encoders and the controller's encoder inputs, the posterior of g0, the map
        g0 -> generator state, the factors and the read-out (outside the loops):
        forward, weight gradient, and the input's gradient unless the input is data.
    Element-wise ops, Adam, the gradient clipping and the costs are not counted.
    Covers what the benchmark's configurations use (one dataset, no external inputs).
    """
    B, G, F = hps.batch_size, hps.gen_dim, hps.factors_dim
    Z, U, C = hps.ic_dim, hps.co_dim, hps.con_dim
    Tg = T + hps.get("fp_bins", 0)
    links, parallel = {}, 0.0

    def link(a, b, steps):
        links[(a, b)] = links.get((a, b), 0.0) + 2 * steps * _matmul_flops(B, a, b)

    def over_steps(rows, a, b, times):
        return times * _matmul_flops(rows, a, b)

    k = D  # one dataset: the read-in is the identity, the encoders read the data
    encoders = []
    if Z > 0:
        E, S = hps.ic_enc_dim, min(hps.num_steps_for_gen_ic, T)
        encoders += [(E, S)] * 2
        parallel += over_steps(B, 2 * E, 2 * Z, 3)  # posterior mean and logvar
        if Z != G:
            parallel += over_steps(B, Z, G, 3)  # g0 -> the generator's initial state
    ci_dim = 0
    if U > 0:
        directions = 1 if hps.do_causal_controller else 2
        encoders += [(hps.ci_enc_dim, T)] * directions
        ci_dim = directions * hps.ci_enc_dim
    for n, S in encoders:
        link(n, 3 * n, S)
        parallel += over_steps(B * S, n, 3 * n, 1)  # recurrent weights' gradient
        parallel += over_steps(B * S, k, 3 * n, 2)  # input projection: data, no dX
    if U > 0:
        fb = F if hps.do_feed_factors_to_controller else 0
        parallel += over_steps(B * Tg, ci_dim, 3 * C, 3)  # encoder outputs -> controller
        for a, b in ((fb + C, 3 * C), (C, 2 * U), (U + G, 3 * G), (G, F)):
            link(a, b, Tg)
            parallel += over_steps(B * Tg, a, b, 1)
    else:
        link(G, 3 * G, Tg)
        parallel += over_steps(B * Tg, G, 3 * G, 1)
        parallel += over_steps(B * Tg, G, F, 3)  # factors, after the loop
    parallel += over_steps(B * Tg, F, D, 3)  # read-out
    return links, parallel


def chain_gflops(rows, a, b, parts, links=50, reps=20):
    """GFLOP/s of `parts` independent chains of `links` dependent [rows/parts, a] @
    [a, b] matmuls with a tanh between (each link's output, cut or tiled to a columns,
    is the next link's input): how fast this machine multiplies by a small matrix one
    time step after another. The chains are unrolled in one tf.function (no loop
    overhead) and share no ops, so TensorFlow runs them on separate cores."""
    import numpy as np
    import tensorflow as tf
    rs = np.random.RandomState(0)
    w = tf.constant((rs.standard_normal((a, b)) / np.sqrt(a)).astype(np.float32))
    xs = [tf.constant(rs.standard_normal((rows // parts, a)).astype(np.float32))
          for _ in range(parts)]
    tiles = -(-a // b)

    @tf.function(autograph=False)
    def chains(xs):
        outs = []
        for x in xs:
            for _ in range(links):
                y = tf.tanh(tf.matmul(x, w))
                x = y[:, :a] if tiles == 1 else tf.tile(y, [1, tiles])[:, :a]
            outs.append(x)
        return tf.add_n([tf.reduce_sum(x) for x in outs])

    seconds = _median_step_seconds(chains, (xs,), reps, 3)
    return parts * links * _matmul_flops(rows // parts, a, b) / seconds / 1e9


def large_matmul_gflops(parts, size=1024, reps=10):
    """GFLOP/s of `parts` independent size^3 matmuls run at once (one per core)."""
    import numpy as np
    import tensorflow as tf
    rs = np.random.RandomState(0)
    xs = [tf.constant(rs.standard_normal((size, size)).astype(np.float32))
          for _ in range(2 * parts)]

    @tf.function(autograph=False)
    def products(xs):
        return tf.add_n([tf.reduce_sum(tf.matmul(xs[2 * i], xs[2 * i + 1]))
                         for i in range(parts)])

    seconds = _median_step_seconds(products, (xs,), reps, 2)
    return parts * _matmul_flops(size, size, size) / seconds / 1e9


def _part_counts():
    """The part counts a throughput is measured with: one chain (or matmul), and one per
    core; the better of the two is taken."""
    return sorted({1, os.cpu_count() or 1})


def machine_limit(hps, cfg):
    """The step's limit on this machine (see `step_flops`), measured now.

    Both throughputs take the better of one chain (or matmul) and one per core, with
    the step's thread settings; returns dict(flops, limit_s, chain GFLOP/s per shape,
    large-matmul GFLOP/s).
    """
    links, parallel = step_flops(hps, cfg["T"], cfg["D"])
    chain = {"%dx%d" % ab: max(chain_gflops(hps.batch_size, ab[0], ab[1], p)
                               for p in _part_counts()) for ab in links}
    large = max(large_matmul_gflops(p) for p in _part_counts())
    limit = parallel / (large * 1e9) + sum(
        flops / (chain["%dx%d" % ab] * 1e9) for ab, flops in links.items())
    return dict(flops=parallel + sum(links.values()), limit_s=limit,
                chain_gflops=chain, large_gflops=large)


def recurrence_alone(hps, T, parts, limit, steps=20, warmup=5):
    """The generator's GRU alone through the project's own loops (fast_rnn.gru_stack,
    as in the step: inputs projected before the loop, hand-written backward loop,
    weight gradients one matmul), forward and backward, the batch in `parts` as the
    step splits it. Returns dict(s, limit_s): its time and its limit by the same rule
    as the step's (sequential FLOPs at the chain's throughput, the weight gradient at
    the large matmul's, the throughputs `machine_limit` measured in this process:
    `limit` is its result; a chain shape it did not time is timed here by the same
    rule). What this reaches bounds what a step made of such loops can: it has none of
    LFADS's other work."""
    import numpy as np
    import tensorflow as tf
    from lfads_tf2.model import fast_rnn
    B, n = hps.batch_size, hps.gen_dim
    rs = np.random.RandomState(0)

    def const(*shape, scale=1.0):
        return tf.constant((scale * rs.standard_normal(shape)).astype(np.float32))

    rows = [B // parts + (1 if i < B % parts else 0) for i in range(parts)]
    inputs = [(const(T, 1, b, 2 * n, scale=0.3), const(T, 1, b, n, scale=0.3),
               const(1, b, n, scale=0.3), const(T, 1, b, n)) for b in rows]
    w_ru = tf.Variable(const(1, n, 2 * n, scale=n ** -0.5))
    w_c = tf.Variable(const(1, n, n, scale=n ** -0.5))

    @tf.function(autograph=False)
    def forward_backward(inputs):
        with tf.GradientTape() as tape:
            loss = tf.add_n([tf.reduce_sum(fast_rnn.gru_stack(
                xp_ru, xp_c, h0, w_ru, w_c, hps.cell_clip_value, T)[0] * target)
                for xp_ru, xp_c, h0, target in inputs])
        grads = tape.gradient(loss, [w_ru, w_c])
        return loss + tf.add_n([tf.reduce_sum(g) for g in grads])

    seconds = _median_step_seconds(forward_backward, (inputs,), steps, warmup)
    sequential = 2 * T * _matmul_flops(B, n, 3 * n)  # forward and backward loops
    weights = T * _matmul_flops(B, n, 3 * n)
    chain = limit["chain_gflops"].get("%dx%d" % (n, 3 * n))
    if chain is None:
        chain = max(chain_gflops(B, n, 3 * n, p) for p in _part_counts())
    limit_s = sequential / (chain * 1e9) + weights / (limit["large_gflops"] * 1e9)
    return dict(s=seconds, limit_s=limit_s)


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


def run_one(name, steps, warmup, what, parts):
    cfg = CONFIGS[name]
    step, args, hps = lfads_step(cfg, parts)
    result = {"config": name}
    if what == "lfads":
        result["s_per_step"] = _median_step_seconds(step, args, steps, warmup)
        result.update(machine_limit(hps, cfg))
        from lfads_tf2.train import steps as steps_module
        result["recurrence"] = recurrence_alone(hps, cfg["T"], parts or
                                                steps_module.batch_parts(), result)
    else:
        fstep, fargs = floor_step(hps, cfg)
        result["s_per_step"] = _median_step_seconds(fstep, fargs, steps, warmup)
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    return result


def _child(name, what, args):
    """run_one in a fresh process -> its result dict (None on failure, reported)."""
    result, out = child_result(
        [os.path.abspath(__file__), "--_child=" + name, "--_what=" + what,
         "--steps=%d" % args.steps, "--warmup=%d" % args.warmup,
         "--parts=%d" % args.parts])
    if result is None:
        print("%s %s failed:\n%s" % (name, what, out.stderr[-2000:]))
    return result


def _median(values):
    import numpy as np
    return float(np.median(values))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps")
    parser.add_argument("--warmup", type=int, default=10, help="untimed steps first")
    parser.add_argument("--repeats", type=int, default=3,
                        help="times each configuration runs, alternately; medians shown")
    parser.add_argument("--configs", default="C0,C1,README1")
    parser.add_argument("--parts", type=int, default=0,
                        help="split the batch into this many parts run at once "
                             "(default 0: one per core, as training does)")
    parser.add_argument("--no_floor", action="store_true",
                        help="leave out the Keras floor (a second reference)")
    parser.add_argument("--_child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--_what", default="lfads", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args._child:
        print("RESULT " + json.dumps(run_one(args._child, args.steps, args.warmup,
                                             args._what, args.parts)))
        return 0
    names = args.configs.split(",")
    whats = ["lfads"] + ([] if args.no_floor else ["floor"])
    runs = {(name, what): [] for name in names for what in whats}
    for _ in range(args.repeats):
        for name in names:
            for what in whats:
                res = _child(name, what, args)
                if res is None:
                    return 1
                runs[name, what].append(res)
    print("load average at the end: %.1f %.1f %.1f on %d cores"
          % (os.getloadavg() + (os.cpu_count(),)))
    print("%-8s %8s %8s %8s %8s %8s %8s | %8s %7s" % (
        "config", "s/step", "GFLOP/s", "limit s", "fraction", "GFLOP", "peak MB",
        "floor s", "ratio"))
    for name in names:
        lf = runs[name, "lfads"]
        sec = _median([r["s_per_step"] for r in lf])
        flops = lf[0]["flops"]
        line = "%-8s %8.4f %8.2f %8.4f %8.2f %8.3f %8.0f" % (
            name, sec, flops / sec / 1e9, _median([r["limit_s"] for r in lf]),
            _median([r["limit_s"] / r["s_per_step"] for r in lf]), flops / 1e9,
            max(r["peak_rss_mb"] for r in lf))
        if "floor" in whats:
            fl = _median([r["s_per_step"] for r in runs[name, "floor"]])
            line += " | %8.4f %7.2f" % (fl, sec / fl)
        print(line)
        print("         each run: " + ", ".join(
            "%.4f s (limit %.4f)" % (r["s_per_step"], r["limit_s"]) for r in lf))
        print("         throughput (median GFLOP/s): large matmul %.1f; chains %s" % (
            _median([r["large_gflops"] for r in lf]), ", ".join(
                "%s %.1f" % (shape, _median([r["chain_gflops"][shape] for r in lf]))
                for shape in lf[0]["chain_gflops"])))
        rec = [r["recurrence"] for r in lf]
        print("         the generator's GRU alone (fast_rnn loops, forward and backward): "
              "%.4f s, limit %.4f s, fraction %.2f" % (
                  _median([r["s"] for r in rec]), _median([r["limit_s"] for r in rec]),
                  _median([r["limit_s"] / r["s"] for r in rec])))
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
