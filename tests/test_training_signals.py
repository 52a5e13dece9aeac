"""Stopping training with a signal. SIGTERM and Ctrl-C stop cleanly (status 128 +
signum, a one-line note, the lock released, the last checkpoint intact), also when
TensorFlow turns the exit into another exception; after SIGKILL the same command resumes
from the last checkpoint and logs every epoch once. The training runs are processes of
their own, as users start them.
"""
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import tensorflow as tf

import lfads_testdata as td
from conftest import ROOT
from lfads_testdata import fast_flags

from lfads_tf2.train import checkpoints


def _epoch_in_checkpoint(path):
    return int(tf.train.load_checkpoint(path).get_tensor(
        "state/epoch/.ATTRIBUTES/VARIABLE_VALUE"))


def _start_training(folder):
    """A training run (no end) in a subprocess of its own, as users start one."""
    td.write_dataset(folder / "data", seed=4, n_train=32, n_valid=16)
    save_dir = folder / "save"
    flags = fast_flags(folder / "data", save_dir) + ["--seed=6"]
    log = folder / "train.log"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "run_lfads.py", "--kind=train", "--max_epochs=100000"]
            + flags, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env)
    return {"proc": proc, "save_dir": save_dir, "flags": flags, "log": log}


@pytest.fixture(scope="module")
def signalled(tmp_path_factory):
    """Two training processes started together (their TensorFlow imports and first
    epochs run side by side), each sent its signal (SIGTERM, SIGKILL) shortly after its
    first checkpoint and waited for. {signal name: {proc, save_dir, flags, log}}."""
    runs = {name: _start_training(tmp_path_factory.mktemp(name))
            for name in ("SIGTERM", "SIGKILL")}
    try:
        deadline = time.time() + 150
        first_seen = {}
        while not all(run.get("signalled") for run in runs.values()):
            for name, run in runs.items():
                if run.get("signalled"):
                    continue
                if name not in first_seen and (run["save_dir"] / "checkpoint").exists():
                    first_seen[name] = time.time()
                assert run["proc"].poll() is None, (
                    "the %s training process ended (status %s) before its signal; killed "
                    "by another job?\n%s" % (name, run["proc"].returncode,
                                              run["log"].read_text()[-3000:]))
            for name, t in first_seen.items():  # land the signal in a later epoch
                if time.time() >= t + 0.5 and not runs[name].get("signalled"):
                    os.kill(runs[name]["proc"].pid, getattr(signal, name))
                    runs[name]["signalled"] = True
            assert time.time() < deadline, "no checkpoint after 150 s: %s" % sorted(
                set(runs) - set(first_seen))
            time.sleep(0.05)
        for run in runs.values():
            run["proc"].wait(timeout=60)
    finally:
        for run in runs.values():
            if run["proc"].poll() is None:
                run["proc"].kill()
                run["proc"].wait()
    return runs


def test_sigterm_stops_cleanly(signalled):
    """`kill` (SIGTERM) exits like Ctrl-C: status 143, a one-line note, the lock
    released, no temporary file left behind, the last checkpoint intact."""
    run = signalled["SIGTERM"]
    proc, save_dir, log = run["proc"], run["save_dir"], run["log"]
    assert proc.returncode == 128 + signal.SIGTERM, log.read_text()[-3000:]
    assert "Stopped by signal %d." % signal.SIGTERM in log.read_text()
    assert not (save_dir / "lfads.lock").exists()
    assert not [f for f in os.listdir(save_dir) if f.endswith(".tmp")]
    latest = checkpoints.read_checkpoint_state(str(save_dir), "checkpoint")[-1]
    assert _epoch_in_checkpoint(latest) >= 1


_SIGNAL_INSIDE_TF = """
import os, signal, sys
from absl import app
import run_lfads

def run(*args, **kwargs):
    try:
        os.kill(os.getpid(), signal.%s)
    except SystemExit:  # what TensorFlow made of it once (CI, checkpoint writer)
        raise RuntimeError("Exiting device scope without proper scope nesting")

run_lfads.run = run
sys.argv = ["run_lfads.py", "--kind=train", "--data_dir=/nonexistent"]
app.run(run_lfads.main)
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_stop_signal_turned_into_another_error_still_stops_cleanly(name):
    """SIGTERM or Ctrl-C (SIGINT) whose SystemExit comes out of TensorFlow as another
    exception still exits with 128 + signum and the one-line note, no traceback."""
    signum = getattr(signal, name)
    proc = subprocess.run([sys.executable, "-c", _SIGNAL_INSIDE_TF % name], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 128 + signum, proc.stderr[-3000:]
    assert "Stopped by signal %d." % signum in proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]


def test_sigkill_then_restart_resumes(signalled, capsys):
    run = signalled["SIGKILL"]
    proc, save_dir, flags = run["proc"], run["save_dir"], run["flags"]
    assert proc.returncode == -signal.SIGKILL

    latest = checkpoints.read_checkpoint_state(str(save_dir), "checkpoint")[-1]
    epoch = _epoch_in_checkpoint(latest)  # the checkpoint loads
    assert epoch >= 1
    capsys.readouterr()
    bundle = td.run(flags + ["--max_epochs=%d" % (epoch + 2)])
    out = capsys.readouterr().out
    m = re.search(r"Restored from (\S+) \(epoch (\d+), step (\d+)\)", out)
    assert m, out
    assert m.group(1) == latest and int(m.group(2)) == epoch > 0
    assert int(m.group(3)) == 2 * epoch
    assert int(bundle.state.global_step.numpy()) == 2 * (epoch + 2)
    epochs = [td.fitlog_record(x)["epoch"] for x in td.fitlog_lines(str(save_dir))]
    # every epoch logged once: an epoch logged but not checkpointed before the kill
    # is run again after the restart and its first line dropped
    assert epochs == list(range(epoch + 2))
    assert not (save_dir / "lfads.lock").exists()
    final = checkpoints.read_checkpoint_state(str(save_dir), "checkpoint")[-1]
    assert _epoch_in_checkpoint(final) == epoch + 2
