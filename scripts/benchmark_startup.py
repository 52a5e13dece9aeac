"""Start-up benchmark: seconds from the command to the first training step.

    python scripts/benchmark_startup.py [--cases=readme1,quickstart] [--repeats=3]
                                        [--work_dir=/tmp/lfads_bench_startup]

Cases (the training commands as the README and scripts/quickstart.sh write them):
  readme1     the original README's first example (chaotic_rnn_no_inputs, co_dim 0,
              factors_dim 20, gen_dim 200, the other flags at their defaults; its data,
              3,200 + 800 trials of 100 bins x 50 neurons, are generated once)
  quickstart  scripts/quickstart.sh's training command (small model, co_dim 1, 600
              trials; --plot_every_n_epochs=20 draws the example figure after epoch 0)

Each run is a fresh process running `run_lfads.py --kind=train ...` through this script,
which only adds timers around the stages of the real command path:

  python      interpreter start until this script's first line
  imports     run_lfads, TensorFlow and the lfads_tf2 modules
  data        reading and checking the h5 files
  build       the model, optimizer and checkpoint objects
  trace       tracing the training step into a graph (Python runs the model once)
  first call  the first call of the traced step: graph optimisation (grappler), kernel
              set-up and one step; "step" is a second call, the cost of a step alone
  to step     command to the end of the first training step (what the user waits for)
  cpu to step the CPU seconds of the process until then (all threads), a measure of the
              work that depends less on the machine's load
  after       with --first_epoch: tracing and first call of the validation step and of the
              example figure's sampling function (quickstart), which the first `Epoch:`
              line also waits for (timed on their first use with the real batches)

A run stops right after its first training step, or with --first_epoch after the first
epoch's validation and figure. Timings on a shared
machine are noisy: the table gives the median of --repeats runs per case (runs of the
cases alternate) and the load average. --roots=OLD,NEW times two checkouts, their runs
alternating, to compare a change with what it changes: each run's process imports the
package from its checkout (first on PYTHONPATH).
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time

# the checkout this script belongs to: the default code to time (--roots)
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

README1_FLAGS = ["--data_filename_stem=chaotic_rnn_no_inputs", "--co_dim=0",
                 "--factors_dim=20", "--ext_input_dim=0", "--controller_input_lag=1",
                 "--output_dist=poisson", "--batch_size=128"]
QUICKSTART_FLAGS = ["--data_filename_stem=quickstart", "--co_dim=1", "--factors_dim=20",
                    "--ic_dim=32", "--gen_dim=64", "--ic_enc_dim=64", "--ci_enc_dim=32",
                    "--con_dim=32", "--batch_size=40", "--kl_increase_steps=300",
                    "--l2_increase_steps=300", "--device=cpu:0", "--max_epochs=60",
                    "--seed=1", "--plot_every_n_epochs=20"]
PHASES = ["python", "imports", "data", "build", "trace", "first call", "step", "to step",
          "cpu to step", "after"]


def make_data(work):
    """Generates the two cases' data sets once (the generators' own commands)."""
    specs = {
        "readme1": ["--datafile_name=chaotic_rnn_no_inputs", "--C=400", "--N=50", "--S=50",
                    "--nreplications=10", "--g=1.5", "--x0_std=1.0", "--tau=0.025",
                    "--input_magnitude=0.0", "--noise_type=poisson", "--T=1.0",
                    "--train_percentage=0.8", "--dt=0.01", "--max_firing_rate=30.0"],
        "quickstart": ["--datafile_name=quickstart", "--C=60", "--N=50", "--S=50",
                       "--nreplications=10", "--g=2.5", "--input_magnitude=20.0",
                       "--noise_type=poisson"],
    }
    for case, flags in specs.items():
        folder = os.path.join(work, case, "data")
        if os.path.isdir(folder) and os.listdir(folder):
            continue
        os.makedirs(folder, exist_ok=True)
        subprocess.run([sys.executable, "-m", "synth_data.generate_chaotic_rnn_data",
                        "--save_dir=" + folder, "--synth_data_seed=5"] + flags,
                       cwd=ROOT, check=True, stdout=subprocess.DEVNULL)


def case_argv(case, work):
    folder = os.path.join(work, case)
    flags = README1_FLAGS if case == "readme1" else QUICKSTART_FLAGS
    return ["--kind=train", "--data_dir=" + os.path.join(folder, "data"),
            "--lfads_save_dir=" + os.path.join(folder, "model")] + flags


# ------------------------------------------------------------------ the child process
class _Timed:
    """Wraps a compiled step: its first call is split into trace and first call.

    Keeps the step's input_signature (steps.call_step reads it). on_first(name,
    trace_s, call_s, fn, args) is called after the first call.
    """

    def __init__(self, fn, name, on_first):
        self.fn, self.name, self.on_first = fn, name, on_first
        self.input_signature = fn.input_signature
        self.done = False

    def __call__(self, *args):
        if self.done:
            return self.fn(*args)
        self.done = True
        t0 = time.perf_counter()
        self.fn.get_concrete_function(*args)
        t1 = time.perf_counter()
        out = self.fn(*args)
        _fetch(out)
        t2 = time.perf_counter()
        self.on_first(self.name, t1 - t0, t2 - t1, self.fn, args)
        return out


def _fetch(out):
    """Waits for a step's results (they may still be computing)."""
    for value in (out.values() if isinstance(out, dict) else [out]):
        getattr(value, "numpy", lambda: None)()


def run_child(argv, launched, first_epoch):
    """Runs the training command with timers; prints RESULT {phase: seconds}."""
    times = {"python": time.time() - launched}
    t = time.perf_counter()
    import run_lfads
    from lfads_tf2.data import checks
    from lfads_tf2.train import runtime
    runtime.quiet_tensorflow_import()
    # evaluation and training: imported here so that their import counts as imports
    from lfads_tf2.train import build, steps, loop  # noqa: F401
    from lfads_tf2.evaluate import kinds  # noqa: F401
    times["imports"] = time.perf_counter() - t
    after = {}

    def timer(module, attr, phase):
        original = getattr(module, attr)

        def wrapped(*args, **kwargs):
            t0 = time.perf_counter()
            out = original(*args, **kwargs)
            times.setdefault(phase, time.perf_counter() - t0)
            return out
        setattr(module, attr, wrapped)

    timer(checks, "load_datasets", "data")
    timer(build, "bundle", "build")

    def on_first(name, trace_s, call_s, fn, args):
        if name == "train":
            times["trace"], times["first call"] = trace_s, call_s
            times["to step"] = time.time() - launched
            # CPU seconds of this process so far (all threads; less sensitive to the
            # machine's load than wall time; interpreter start is not included)
            times["cpu to step"] = time.process_time()
            t0 = time.perf_counter()
            _fetch(fn(*args))
            times["step"] = time.perf_counter() - t0
            if not first_epoch:
                finish()
        else:
            after[name] = trace_s + call_s

    compile_step = steps.compile_step
    names = iter(["train", "valid"])

    def timed_compile_step(step_fn, hps, training=False, with_recon=True):
        fn = compile_step(step_fn, hps, training=training, with_recon=with_recon)
        return _Timed(fn, next(names, "figure"), on_first)
    steps.compile_step = timed_compile_step


    def finish():
        times["after"] = sum(after.values()) if first_epoch else float("nan")
        times["keras loaded"] = "keras" in sys.modules  # (LFADS needs no Keras)
        print("RESULT " + json.dumps(times))
        sys.stdout.flush()
        os._exit(0)  # (TensorFlow's clean-up at exit takes seconds)

    try:
        # with --first_epoch: the first epoch line, then stop (the last --max_epochs wins)
        run_lfads.run_command(["run_lfads"] + argv + ["--max_epochs=1"])
    except SystemExit as e:  # absl's app.run always exits
        if e.code:
            raise
    finish()


# ------------------------------------------------------------------ the parent
def run_case(case, work, extra, root, first_epoch):
    argv = case_argv(case, work) + extra
    subprocess.run(["rm", "-rf", os.path.join(work, case, "model")], check=True)
    # imported here, in the parent only: the child's imports are what it times
    from lfads_tf2.train.benchmark import child_result
    launched = time.time()
    result, out = child_result([os.path.abspath(__file__), "--_child",
                                "--_launched=%r" % launched]
                               + (["--first_epoch"] if first_epoch else []) + ["--"] + argv,
                               root=root, cwd=root)
    if result is None:
        raise SystemExit("%s failed:\n%s" % (case, (out.stdout + out.stderr)[-3000:]))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="readme1,quickstart")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--work_dir", default="/tmp/lfads_bench_startup")
    parser.add_argument("--extra_flags", default="",
                        help="flags appended to every training command")
    parser.add_argument("--roots", default=ROOT,
                        help="comma-separated checkouts to time, runs alternating (default: "
                        "this one)")
    parser.add_argument("--first_epoch", action="store_true",
                        help="run on to the first epoch line and time what it adds "
                        "(\"after\"); by default a run stops after its first step")
    parser.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--_launched", type=float, default=None, help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args(argv)
    if args._child:
        run_child([a for a in rest if a != "--"], args._launched, args.first_epoch)
        return 0
    roots = [os.path.abspath(r) for r in args.roots.split(",")]
    columns = [(root, case) for root in roots for case in args.cases.split(",")]
    make_data(args.work_dir)
    results = {column: [] for column in columns}
    loads = []
    for _ in range(args.repeats):
        for root, case in columns:
            results[root, case].append(run_case(case, args.work_dir,
                                                args.extra_flags.split(), root,
                                                args.first_epoch))
            loads.append(os.getloadavg()[0])
    print("median of %d runs (seconds); load average (1 min) during the runs %.1f-%.1f"
          % (args.repeats, min(loads), max(loads)))
    for i, root in enumerate(roots):
        print("[%d] %s" % (i, root))
    print("%-12s" % "phase" + "".join("%14s" % ("[%d] %s" % (roots.index(root), case))
                                      for root, case in columns))
    for phase in PHASES:
        print("%-12s" % phase + "".join(
            "%14.2f" % statistics.median(r.get(phase, float("nan")) for r in results[c])
            for c in columns))
    for c in columns:
        print("[%d] %s: to step, each run: %s; Keras loaded: %s" % (
            roots.index(c[0]), c[1], " ".join("%.1f" % r["to step"] for r in results[c]),
            sorted({r["keras loaded"] for r in results[c]})))
    return 0


if __name__ == "__main__":
    sys.exit(main())
