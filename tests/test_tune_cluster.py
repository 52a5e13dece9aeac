"""lfads_tune on a Ray cluster: a head started with `ray start --head` on loopback, a
random search of 2 trials sent to it with --ray_address, and the head stopped.

The head runs with --block, and is stopped by ending that process (SIGTERM, by its
id): it takes down the head's processes with it. `ray stop`, which the README gives to
users, would stop every Ray process of the user on the machine, including other
sessions' (CI machines are shared). The head and the command get their own HOME: the
token the head writes (token authentication) stays out of the user's home, and
lfads_tune finds it there.
"""
import csv
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from conftest import ROOT
import lfads_testdata as td

pytest.importorskip("ray.tune")
psutil = pytest.importorskip("psutil")  # a dependency of Ray


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_command():
    path = os.path.join(os.path.dirname(sys.executable), "ray")
    return path if os.access(path, os.X_OK) else shutil.which("ray")


def test_search_on_a_cluster_started_with_ray_start(tmp_path):
    ray_bin = _ray_command()
    if ray_bin is None:
        pytest.skip("the ray command is not installed")
    data_dir = str(tmp_path / "data")
    td.write_dataset(data_dir, n_train=64, n_valid=32, T=20, D=10)
    space = tmp_path / "space.yaml"
    space.write_text("keep_prob: {uniform: [0.8, 1.0]}\n")
    env = dict(os.environ, HOME=str(tmp_path / "home"), RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER="0",
               PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")]
                                                   if p]))
    env.pop("RAY_AUTH_MODE", None)
    env.pop("RAY_ADDRESS", None)
    os.makedirs(env["HOME"])
    port = _free_port()
    log_path = tmp_path / "head.log"
    # The head's session files and the address file `ray start` writes for ray.init()
    # to find go to a folder of the test's own, not to /tmp/ray, which others share
    # (short: Ray's socket paths must stay under 108 characters).
    temp_dir = tempfile.mkdtemp(prefix="lfads_ray_")
    with open(log_path, "w") as log:
        head = subprocess.Popen(
            [ray_bin, "start", "--head", "--block", "--node-ip-address=127.0.0.1",
             "--port=%d" % port, "--num-cpus=2", "--include-dashboard=false",
             "--disable-usage-stats", "--temp-dir=" + temp_dir], env=env, stdout=log,
            stderr=subprocess.STDOUT, cwd=str(tmp_path), start_new_session=True)
    children = []
    try:
        deadline = time.time() + 120
        while "Ray runtime started" not in log_path.read_text():
            assert head.poll() is None, log_path.read_text()[-3000:]
            assert time.time() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.5)
        children = psutil.Process(head.pid).children(recursive=True)
        assert children  # the GCS, the raylet, ...
        out = str(tmp_path / "search")
        proc = subprocess.run(
            [sys.executable, "-m", "lfads_tf2.search.lfads_tune", "--ray_address=127.0.0.1:%d" % port,
             "--search_space=%s" % space, "--num_samples=2", "--max_epochs=2",
             "--data_dir=" + data_dir, "--data_filename_stem=" + td.STEM,
             "--lfads_save_dir=" + out] + td.TINY_NO_CONTROLLER + ["--seed=2"],
            env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:])
        with open(os.path.join(out, "trials.csv")) as f:
            rows = list(csv.DictReader(f))
        assert len({r["trial_id"] for r in rows}) == 2 and len(rows) == 4
        assert os.path.exists(os.path.join(out, "best_model", "checkpoint"))
        # the trials ran on the head's node, at its loopback address
        assert "Ray: the cluster at 127.0.0.1:%d, 2 CPUs on 127.0.0.1;" % port in proc.stdout
    finally:
        if head.poll() is None:
            head.send_signal(signal.SIGTERM)
            try:
                head.wait(timeout=60)
            except subprocess.TimeoutExpired:
                head.kill()
                head.wait(timeout=30)
        shutil.rmtree(temp_dir, ignore_errors=True)
    time.sleep(1)
    alive = []
    for child in children:
        try:
            if child.is_running() and child.status() != psutil.STATUS_ZOMBIE:
                alive.append(child.pid)
        except psutil.NoSuchProcess:
            pass
    assert not alive, "head processes still running: %s" % alive
