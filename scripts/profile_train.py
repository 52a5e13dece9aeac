"""Where a training step's time goes: TensorFlow's profiler over a few steps, per op.

    python scripts/profile_train.py [--configs=C0,C1] [--steps=5] [--warmup=10]
        [--logdir=DIR] [--ops=15]

For each configuration of scripts/benchmark_train.py (lfads_tf2/train/benchmark.py),
the training step is called as the training loop calls it (rows taken from a data set
in numpy, steps.call_step), traced with tf.profiler.experimental for --steps steps
after --warmup, and the trace (the xplane file) is read back here. Every op the executor
ran is put into a part of the step and a kind of work:

  parts   forward loops, forward outside loops, backward loops, backward outside
          loops (the ops of tape.gradient, the hand-written backward passes included),
          clipping (clip_by_global_norm) and Adam (the optimizer's name scope)
  kinds   matmul; element-wise (and other arithmetic: reductions, random numbers);
          data movement (TensorArray reads, writes and stacks, gathers, concat, split,
          slices, transposes, copies); executor+loop: the executor's time around and
          between the ops of a trace span, which includes the loops' control ops
          (Enter, Merge, Switch, NextIteration, Exit, the step counter): the executor
          runs such cheap ops inline, without a trace event of their own

Times are per step in milliseconds of thread time summed over TensorFlow's threads (two
halves of a batch run at once, so they can add up to more than the wall time). Data
feeding is the Python side: taking the rows in numpy, converting the arguments and
starting the graph, in wall time. "idle" is cores x wall time minus the busy time.
"""
import argparse
import collections
import glob
import os
import re
import sys
import tempfile
import time

from lfads_tf2.train import benchmark

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

PARTS = ["forward loops", "forward other", "backward loops", "backward other",
         "clipping", "Adam"]
KINDS = ["matmul", "element-wise", "data movement", "executor+loop"]

MATMULS = {"MatMul", "BatchMatMulV2", "BatchMatMulV3", "_MklMatMul", "_FusedMatMul",
           "_MklFusedMatMul", "_MklBatchMatMulV2", "Einsum"}
LOOP_CONTROL = {"Enter", "Exit", "Merge", "Switch", "NextIteration", "LoopCond",
                "RefEnter", "RefExit", "RefMerge", "RefSwitch", "RefNextIteration",
                "While", "StatelessWhile", "_SwitchN", "ControlTrigger", "NoOp"}
DATA_MOVEMENT = {"GatherV2", "ConcatV2", "Concat", "Split", "SplitV", "Slice",
                 "StridedSlice", "Transpose", "_MklTranspose", "Reshape", "Identity",
                 "IdentityN", "Pack", "Unpack", "Tile", "ZerosLike", "OnesLike", "Fill",
                 "Const", "Shape", "ShapeN", "Size", "ExpandDims", "Squeeze", "Reverse",
                 "ReverseV2", "ReadVariableOp", "BroadcastTo", "_Recv", "_Send",
                 "_Arg", "_Retval", "_HostRecv", "_HostSend", "EnsureShape",
                 "StopGradient", "PreventGradient", "Cast"}


def kind_of(op_type):
    """The kind of work (see KINDS) of an op of type op_type. (A loop's counter and
    condition are scalar ops the executor runs inline, untraced: executor+loop.)"""
    if op_type in MATMULS:
        return "matmul"
    if op_type in LOOP_CONTROL:
        return "executor+loop"
    if op_type.startswith(("TensorArray", "TensorList")) or op_type in DATA_MOVEMENT:
        return "data movement"
    return "element-wise"


def part_of(name):
    """The part of the step (see PARTS) an op named name belongs to.

    Backward: TensorFlow's gradients (under "gradient_tape") and fast_rnn's
    hand-written ones (under "fast_rnn_grad"). Loops: ops inside a while loop's body
    or condition.
    """
    lower = name.lower()
    if "/adam/" in lower or lower.startswith("adam/"):
        return "Adam"
    if "clip_by_global_norm" in lower:
        return "clipping"
    backward = "gradient_tape" in lower or "fast_rnn_grad" in lower
    loop = re.search(r"(^|/)(while(_\d+)?|forward_loop(_\d+)?|backward_loop(_\d+)?)/",
                     lower) is not None
    return ("backward " if backward else "forward ") + ("loops" if loop else "other")


def read_xspace(logdir):
    """The profiler's XSpace (the newest .xplane.pb under logdir)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2
    paths = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*",
                                          "*.xplane.pb")), key=os.path.getmtime)
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    return space


def breakdown(space):
    """Thread time in seconds by (part, kind), op-type totals, and the Python side.

    Returns (table {(part, kind): s}, by_type {(op type, part): s}, python {event: s},
    busy s). An op event is named "<op name>:<op type>"; an executor span
    ("ExecutorState::Process") holds the ops it ran: the rest of it is executor
    overhead, counted in the part of the span's longest op.
    """
    table = collections.Counter()
    by_type = collections.Counter()
    python = collections.Counter()
    busy = 0.0
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        meta = plane.event_metadata
        for line in plane.lines:
            events = sorted(line.events, key=lambda e: e.offset_ps)
            if line.name == "python":
                calls = {k for k, m in plane.stat_metadata.items()
                         if m.name == "tf_function_call"}
                for e in events:
                    key = "call" if any(s.metadata_id in calls for s in e.stats) \
                        else meta[e.metadata_id].name
                    python[key] += e.duration_ps * 1e-12
                continue
            span_end, span_ops, span_len = -1, [], 0.0

            def close_span():
                if span_ops:
                    covered = sum(d for _, d in span_ops)
                    longest = max(span_ops, key=lambda x: x[1])[0]
                    table[longest, "executor+loop"] += max(span_len - covered, 0.0)

            for e in events:
                md = meta[e.metadata_id]
                seconds = e.duration_ps * 1e-12
                if md.name == "ExecutorState::Process":
                    close_span()
                    span_end = e.offset_ps + e.duration_ps
                    span_ops, span_len = [], seconds
                    busy += seconds
                    continue
                if ":" not in md.name or not md.display_name:
                    continue
                name, op_type = md.name.rsplit(":", 1)
                part = part_of(name)
                table[part, kind_of(op_type)] += seconds
                by_type[op_type, part] += seconds
                if e.offset_ps < span_end:
                    span_ops.append((part, seconds))
                else:
                    busy += seconds
            close_span()
    return table, by_type, python, busy


def profile_config(name, steps, warmup, logdir):
    """Traces `steps` training steps of configuration `name`; returns the numbers."""
    import numpy as np
    import tensorflow as tf
    from lfads_tf2.train import steps as steps_lib
    step, (_, batch), hps = benchmark.lfads_step(benchmark.CONFIGS[name])
    # a data set of 8 batches; each step takes random rows, as training does
    rs = np.random.RandomState(1)
    train = {"data": rs.poisson(0.3, size=(8 * hps.batch_size,) + batch["data"].shape[1:])
             .astype(np.float32)}

    def one_step():
        t0 = time.perf_counter()
        rows = rs.choice(len(train["data"]), hps.batch_size, replace=False)
        part = steps_lib.take(train, rows)
        took = time.perf_counter() - t0
        out = steps_lib.call_step(step, hps, "bench", part)
        out["total"].numpy()
        return took

    for _ in range(warmup):
        one_step()
    tf.profiler.experimental.start(logdir)
    t0 = time.perf_counter()
    take_s = sum(one_step() for _ in range(steps))
    wall = time.perf_counter() - t0
    tf.profiler.experimental.stop()
    table, by_type, python, busy = breakdown(read_xspace(logdir))
    return dict(wall=wall / steps, take=take_s / steps, table=table, by_type=by_type,
                python=python, busy=busy / steps, steps=steps)


def python_side(python, steps):
    """Seconds per step of the Python side of a call: the tf.function call's event
    minus the graph's execution (EagerExecute) inside it."""
    return max(python.get("call", 0.0) - python.get("EagerExecute", 0.0), 0.0) / steps


def report(name, res, n_ops):
    steps, ms = res["steps"], 1e3 / res["steps"]
    table = res["table"]
    cores = os.cpu_count() or 1
    print("\n%s: %.1f ms a step (wall, traced), %.1f ms of thread time busy "
          "(%.2f cores), %.1f ms idle on %d cores" % (
              name, 1e3 * res["wall"], 1e3 * res["busy"], res["busy"] / res["wall"],
              1e3 * (cores * res["wall"] - res["busy"]), cores))
    print("%-16s" % "ms/step" + "".join("%14s" % k for k in KINDS + ["total"]))
    for part in PARTS:
        row = [table[part, k] * ms for k in KINDS]
        print("%-16s" % part + "".join("%14.2f" % x for x in row + [sum(row)]))
    cols = [sum(table[p, k] for p in PARTS) * ms for k in KINDS]
    print("%-16s" % "total" + "".join("%14.2f" % x for x in cols + [sum(cols)]))
    total = sum(cols)
    print("%-16s" % "share" + "".join("%13.0f%%" % (100 * x / total) for x in cols))
    feed = res["take"] + python_side(res["python"], steps)
    print("data feeding (wall): %.2f ms a step (%.2f taking rows in numpy, %.2f "
          "converting and starting the call)" % (1e3 * feed, 1e3 * res["take"],
                                                  1e3 * (feed - res["take"])))
    print("longest op types (ms/step, part):")
    for (op_type, part), s in res["by_type"].most_common(n_ops):
        print("  %-24s %-16s %8.2f" % (op_type, part, s * ms))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", default="C0,C1")
    parser.add_argument("--steps", type=int, default=5, help="traced steps")
    parser.add_argument("--warmup", type=int, default=10, help="untraced steps first")
    parser.add_argument("--logdir", default=None,
                        help="where the trace goes (default: a temporary folder)")
    parser.add_argument("--ops", type=int, default=15, help="op types listed")
    args = parser.parse_args(argv)
    for name in args.configs.split(","):
        # each configuration in its own process would need the trace passed back; one
        # process traces them in turn (a step's graph is built once per configuration)
        logdir = args.logdir and os.path.join(args.logdir, name)
        with tempfile.TemporaryDirectory() as tmp:
            res = profile_config(name, args.steps, args.warmup, logdir or tmp)
        report(name, res, args.ops)
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
