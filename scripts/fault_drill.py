"""Fault drill: kill a training run at random moments and check it resumes exactly.

    python scripts/fault_drill.py [--kills=10] [--epochs=600] [--work_dir=/tmp/lfads_fault_drill]
                                  [--damage]

Trains a small seeded model on small synthetic data twice: once without interruption,
once killed with SIGKILL `--kills` times at random moments (during training steps,
validation, checkpoint or log writing) and restarted with the same command each
time. Prints how many restarts resumed from a checkpoint, and whether the final
weights, optimizer state and fitlog equal those of the uninterrupted run.

With --damage, after every other kill the newest checkpoint's data file is also cut to
a third of its size (as a full disk or an interrupted copy leaves it): the restart
must resume from the checkpoint before it and replay the lost epochs, and the final
comparison must still hold.
"""
import argparse
import os
import random
import shutil
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def make_data(data_dir):
    import numpy as np
    import utils
    rs = np.random.RandomState(0)
    E, T, D = 120, 25, 15
    t = np.linspace(0, 1, T)
    phase = rs.rand(E, 1, 1) * 2 * np.pi
    loading = rs.randn(1, 1, D)
    rates = np.exp(0.5 + np.sin(2 * np.pi * t[None, :, None] * 2 + phase) * loading * 0.7)
    counts = rs.poisson(rates)
    utils.write_data(os.path.join(data_dir, "drill_session"),
                     {"train_data": counts[:90], "valid_data": counts[90:],
                      "train_truth": rates[:90], "valid_truth": rates[90:]})


def command(data_dir, save_dir, epochs):
    return [sys.executable, os.path.join(ROOT, "run_lfads.py"), "--kind=train",
            "--data_dir=" + data_dir, "--data_filename_stem=drill",
            "--lfads_save_dir=" + save_dir, "--max_epochs=%d" % epochs, "--seed=7",
            "--ic_dim=4", "--factors_dim=4", "--gen_dim=24", "--ic_enc_dim=12",
            "--ci_enc_dim=8", "--con_dim=8", "--co_dim=1", "--batch_size=30",
            "--kl_increase_steps=20", "--l2_increase_steps=20",
            "--temporal_spike_jitter_width=1", "--device=cpu:0"]


def final_state(save_dir):
    """{checkpoint key: value} of the newest regular checkpoint, and the fitlog text."""
    from lfads_tf2.train import runtime
    tf = runtime.quiet_tensorflow_import()
    from lfads_tf2.train import checkpoints
    path = checkpoints.read_checkpoint_state(save_dir, "checkpoint")[-1]
    reader = tf.train.load_checkpoint(path)
    values = {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
              if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}
    return path, values, open(os.path.join(save_dir, "fitlog.csv")).read()


def damage_newest(save_dir):
    """Cuts the data file of the newest listed checkpoint to a third; returns its name.

    Only when an older checkpoint is listed to fall back to (else returns None).
    """
    from lfads_tf2.train import runtime
    runtime.quiet_tensorflow_import()
    from lfads_tf2.train import checkpoints
    paths = checkpoints.read_checkpoint_state(save_dir, "checkpoint")
    if len(paths) < 2:
        return None
    data = paths[-1] + ".data-00000-of-00001"
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 3)
    return os.path.basename(data)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=600)
    parser.add_argument("--work_dir", default="/tmp/lfads_fault_drill")
    parser.add_argument("--seed", type=int, default=0, help="seed of the kill times")
    parser.add_argument("--damage", action="store_true",
                        help="after every other kill, cut the newest checkpoint's data "
                             "file to a third of its size")
    args = parser.parse_args(argv)
    import numpy as np
    rnd = random.Random(args.seed)
    shutil.rmtree(args.work_dir, ignore_errors=True)
    data_dir = os.path.join(args.work_dir, "data")
    make_data(data_dir)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")

    ref_dir = os.path.join(args.work_dir, "uninterrupted")
    t0 = time.time()
    subprocess.run(command(data_dir, ref_dir, args.epochs), env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    duration = time.time() - t0
    print("uninterrupted run: %d epochs in %.0f s" % (args.epochs, duration))

    drill_dir = os.path.join(args.work_dir, "killed")
    kills = failures = damaged = 0
    log_path = os.path.join(args.work_dir, "killed.log")
    finished = False
    while not finished:
        with open(log_path, "a") as log:
            log.write("=== start %d\n" % (kills + failures))
            log.flush()
            proc = subprocess.Popen(command(data_dir, drill_dir, args.epochs), env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
        if kills < args.kills:
            # Wait until this restart has finished an epoch (so it resumed and made
            # progress), then kill at a random moment: during a step, validation, a
            # checkpoint or a log write.
            offset = os.path.getsize(log_path)
            while proc.poll() is None:
                with open(log_path) as f:
                    f.seek(offset)
                    if "Epoch:" in f.read():
                        break
                time.sleep(0.05)
            deadline = time.time() + rnd.uniform(0.0, 0.05) * duration
            while time.time() < deadline and proc.poll() is None:
                time.sleep(0.01)
        if proc.poll() is None and kills < args.kills:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            cut = damage_newest(drill_dir) if args.damage and kills % 2 == 1 else None
            damaged += cut is not None
            print("killed %d of %d%s" % (kills, args.kills,
                                         "; cut %s to a third" % cut if cut else ""))
            continue
        proc.wait()
        if proc.returncode == 0:
            finished = True
        else:
            failures += 1
            print("a restart FAILED with exit code %d (see %s)" % (proc.returncode, log_path))
            if failures > 3:
                return 1
    text = open(log_path).read()
    resumed = text.count("Restored from")
    print("kills: %d; restarts: %d; restarts that resumed from a checkpoint: %d; "
          "failed restarts: %d" % (kills, kills, resumed, failures))
    print("resumes succeeded: %d of %d" % (kills - failures, kills))
    if args.damage:
        fell_back = text.count("checkpoint unreadable")
        print("damaged checkpoints: %d; restarts that fell back to an older checkpoint: %d"
              % (damaged, fell_back))
    ref_path, ref_values, ref_log = final_state(ref_dir)
    path, values, log = final_state(drill_dir)
    same_keys = set(values) == set(ref_values)
    max_diff = 0.0
    differing = []
    for key in ref_values:
        a, b = np.asarray(ref_values[key]), np.asarray(values.get(key))
        if a.dtype.kind in "fc":
            same = np.array_equal(a, b, equal_nan=True)  # inf == inf, e.g. no LVE yet
            d = 0.0 if same else float(np.nanmax(np.abs(a - b)))
            max_diff = max(max_diff, d)
            if d > 0:
                differing.append(key)
        elif not np.array_equal(a, b):
            differing.append(key)
    print("final checkpoint: %s vs %s" % (os.path.basename(path), os.path.basename(ref_path)))
    print("final weights identical to the uninterrupted run: %s (max abs diff %g, %d "
          "differing tensors)" % ("yes" if same_keys and not differing else "no", max_diff,
                                  len(differing)))
    print("fitlog identical: %s" % ("yes" if log == ref_log else "no"))
    ok = same_keys and not differing and log == ref_log
    if args.damage:
        ok = ok and fell_back == damaged
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
