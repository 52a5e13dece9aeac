"""lfads_tune killed with SIGKILL and started again with the same command resumes the
search (Ray Tune's experiment restore) and keeps the trials that had finished.

Slow (two Ray start-ups and two searches, about 3 minutes on 2 cores): run with -m slow.
"""
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT
import lfads_testdata as td

pytest.importorskip("ray.tune")
psutil = pytest.importorskip("psutil")


def _rows(out):
    path = os.path.join(out, "history.jsonl")
    if not os.path.exists(path):
        return []
    rows = []
    for line in open(path):
        try:
            rows.append(json.loads(line))
        except ValueError:
            pass
    return rows


def _stop(pids):
    """Ends the processes of ours that outlived the driver (Ray's agents), by id."""
    for pid in pids:
        try:
            psutil.Process(pid).terminate()
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs([p for p in map(_process, pids) if p is not None], timeout=30)


def _process(pid):
    try:
        return psutil.Process(pid)
    except psutil.NoSuchProcess:
        return None


@pytest.mark.slow
def test_a_killed_search_resumes_and_keeps_finished_trials(tmp_path):
    data_dir = str(tmp_path / "data")
    td.write_dataset(data_dir, n_train=64, n_valid=32, T=20, D=10)
    space = tmp_path / "space.yaml"
    space.write_text("keep_prob: {uniform: [0.8, 1.0]}\ngen_dim: {choice: [16, 24]}\n")
    out = str(tmp_path / "search")
    env = dict(os.environ, HOME=str(tmp_path / "home"), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")]
                                                   if p]))
    for key in ("RAY_AUTH_MODE", "RAY_ADDRESS"):
        env.pop(key, None)
    command = [sys.executable, "-m", "lfads_tf2.search.lfads_tune", "--search_space=%s" % space,
               "--num_samples=4", "--max_epochs=3", "--data_dir=" + data_dir,
               "--data_filename_stem=" + td.STEM, "--lfads_save_dir=" + out,
               ] + td.TINY_NO_CONTROLLER + ["--seed=4"]
    with open(tmp_path / "first.log", "w") as log:
        first = subprocess.Popen(command, env=env, cwd=str(tmp_path), stdout=log,
                                 stderr=subprocess.STDOUT)
    ours = set()
    try:
        # Kill once a trial has finished and Ray has written its experiment state since.
        deadline = time.time() + 400
        finished_at = finished = None
        while True:
            assert first.poll() is None, open(tmp_path / "first.log").read()[-3000:]
            assert time.time() < deadline, open(tmp_path / "first.log").read()[-3000:]
            ours.update(p.pid for p in psutil.Process(first.pid).children(recursive=True))
            done = [r["trial_id"] for r in _rows(out) if r.get("epoch") == 3]
            if done and finished is None:
                finished, finished_at = done[0], time.time()
            states = glob.glob(os.path.join(out, "experiment_state-*.json"))
            if finished and states and max(map(os.path.getmtime, states)) > finished_at + 1:
                break
            time.sleep(0.5)
        before = [r for r in _rows(out) if r["trial_id"] == finished]
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
    finally:
        if first.poll() is None:
            first.kill()
        time.sleep(2)
        _stop(ours)

    again = subprocess.run(command, env=env, cwd=str(tmp_path), capture_output=True,
                           text=True, timeout=600)
    assert again.returncode == 0, (again.stdout[-3000:], again.stderr[-3000:])
    assert "Resuming the search in %s." % out in again.stdout
    rows = _rows(out)
    trials = sorted({r["trial_id"] for r in rows})
    assert len(trials) == 4
    for trial in trials:
        assert sorted({r["epoch"] for r in rows if r["trial_id"] == trial}) == [1, 2, 3]
    # the finished trial was not trained again: no report of it after the restart
    assert [r for r in rows if r["trial_id"] == finished] == before
    with open(os.path.join(out, "trials.csv")) as f:
        assert len(f.read().splitlines()) == 1 + 4 * 3
