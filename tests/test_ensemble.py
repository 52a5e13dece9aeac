"""lfads_ensemble: its checks (one-line errors before any member starts), the member
processes (side by side, logs, finished members skipped, a failing member), the
averaged output files, and real ensembles of tiny models trained by a background job:
a member's fitlog equals a lone run_lfads run with its seed, an ensemble killed mid-way
resumes to the same fitlogs, and its averaged outputs are the members' mean and are
scored by lfads_score.

The fast tests run the members with a fake `python` (FAKE: a script that acts out
run_lfads's exit status, log and output files), so they need no TensorFlow.
"""
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import h5py
import numpy as np
import pytest

import background
import lfads_testdata as td
import utils
from conftest import ROOT
from lfads_tf2 import errors
from lfads_tf2.ensemble import average, lfads_ensemble, members as ens_members
from lfads_tf2.score import lfads_score
from lfads_tf2.train import hparams

SETTINGS = {"members": 3, "parallel": 2}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    td.write_dataset(str(folder), n_train=32, n_valid=16, T=20, D=10)
    return str(folder)


def _hps(data_dir, save_dir, extra=()):
    return hparams.hps_from_argv(
        td.TINY_NO_CONTROLLER + ["--data_dir=" + data_dir, "--data_filename_stem=" + td.STEM,
                                 "--lfads_save_dir=" + str(save_dir), "--max_epochs=2",
                                 "--seed=3"] + list(extra))


def _prepare(data_dir, save_dir, extra=(), **settings):
    return lfads_ensemble.prepare(_hps(data_dir, save_dir, extra),
                                  dict(SETTINGS, **settings))


# ------------------------------------------------------------------ a fake run_lfads
FAKE = """\
#!{python}
# Acts out `python -m run_lfads --kind=K --flag=value ...` for the ensemble's tests:
# notes its start and end in <save_dir>/fake_runs.txt, fails with an error line when its
# seed is $FAKE_FAIL_SEED, writes the state file `checkpoint` when training and, for the
# posterior kinds, an output file of every split with values drawn from its seed.
import os, sys, time
assert sys.argv[1:3] == ["-m", "run_lfads"], sys.argv
f = dict(a[2:].split("=", 1) for a in sys.argv[3:])
save_dir, seed, kind = f["lfads_save_dir"], int(f["seed"]), f["kind"]
log = os.path.join(save_dir, "fake_runs.txt")
with open(log, "a") as out:
    out.write("start %r %s %d\\n" % (time.time(), kind, os.getpid()))
print("fake run_lfads, seed %d" % seed)
time.sleep(float(os.environ.get("FAKE_SECONDS", "0.6")))
if str(seed) == os.environ.get("FAKE_FAIL_SEED"):
    print("error: member blew up", file=sys.stderr)
    sys.exit(2)
if kind == "train":
    open(os.path.join(save_dir, "checkpoint"), "w").write("model_checkpoint_path: x\\n")
elif kind.startswith("posterior"):
    import h5py, numpy as np
    rs = np.random.RandomState(seed)
    for split, n in (("train", 32), ("valid", 16)):
        with h5py.File(os.path.join(save_dir, "model_runs_set0_%s_%s" % (split, kind)),
                       "w") as hf:
            hf["output_dist_params"] = rs.rand(n, 20, 10)
            hf["factors"] = rs.rand(n, 20, 5)
            hf["costs"] = rs.rand(n)
with open(log, "a") as out:
    out.write("end %r\\n" % time.time())
"""


@pytest.fixture
def fake_python(tmp_path):
    path = tmp_path / "fake_python"
    path.write_text(FAKE.format(python=sys.executable))
    path.chmod(0o755)
    return str(path)


def _runs(save_dir):
    """[(start, end or None)] of the fake runs of a member folder."""
    runs = []
    for line in open(os.path.join(save_dir, "fake_runs.txt")).read().splitlines():
        word, t = line.split()[:2]
        if word == "start":
            runs.append([float(t), None])
        else:
            runs[-1][1] = float(t)
    return runs


def test_members_run_side_by_side_with_logs_and_are_skipped_once_finished(
        data_dir, tmp_path, fake_python, capsys):
    plan = _prepare(data_dir, tmp_path / "ens")
    assert [m.seed for m in plan.members] == [3, 4, 5]
    assert lfads_ensemble.run(plan, python=fake_python) == 0
    out = capsys.readouterr().out
    runs = {m.index: _runs(m.save_dir) for m in plan.members}
    assert all(len(r) == 1 and r[0][1] is not None for r in runs.values()), runs
    # two at a time: members 0 and 1 overlap, member 2 starts after one of them ended
    (s0, e0), (s1, e1), (s2, _) = runs[0][0], runs[1][0], runs[2][0]
    assert s1 < e0 and s0 < e1
    assert s2 >= min(e0, e1)
    for m in plan.members:
        log = open(os.path.join(m.save_dir, "log.txt")).read()
        assert "lfads_ensemble member %d, --kind=train" % m.index in log
        assert "fake run_lfads, seed %d" % m.seed in log
        flags = open(os.path.join(m.save_dir, "run_lfads.flags")).read().splitlines()
        assert "--seed=%d" % m.seed in flags and "--lfads_save_dir=" + m.save_dir in flags
        assert ("member %d (seed %d): started train, log %s"
                % (m.index, m.seed, os.path.join(m.save_dir, "log.txt"))) in out
        assert json.load(open(os.path.join(m.save_dir, ens_members.FINISHED)))["flags"] \
            == m.flags
    # the same command again: nothing runs
    assert lfads_ensemble.run(_prepare(data_dir, tmp_path / "ens"), python=fake_python) == 0
    out = capsys.readouterr().out
    assert all("member %d: finished before, skipped" % k in out for k in range(3))
    assert [len(_runs(m.save_dir)) for m in plan.members] == [1, 1, 1]
    # other flags (a longer training): every member runs again (run_lfads resumes it)
    plan = _prepare(data_dir, tmp_path / "ens", ["--max_epochs=4"])
    assert lfads_ensemble.run(plan, python=fake_python) == 0
    assert [len(_runs(m.save_dir)) for m in plan.members] == [2, 2, 2]


def test_a_failing_member_lets_the_others_finish_and_fails_the_command(
        data_dir, tmp_path, fake_python, capsys, monkeypatch):
    monkeypatch.setenv("FAKE_FAIL_SEED", "4")
    plan = _prepare(data_dir, tmp_path / "ens")
    assert lfads_ensemble.run(plan, python=fake_python) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "error: 1 of 3 members failed; member 1 (status 2): error: member blew up"]
    assert "member 1: failed (status 2) after" in captured.out
    finished = [os.path.exists(os.path.join(m.save_dir, ens_members.FINISHED))
                for m in plan.members]
    assert finished == [True, False, True]
    # started again, only the failed member runs
    monkeypatch.delenv("FAKE_FAIL_SEED")
    assert lfads_ensemble.run(_prepare(data_dir, tmp_path / "ens"), python=fake_python) == 0
    assert [len(_runs(m.save_dir)) for m in plan.members] == [1, 2, 1]


def test_posterior_kind_runs_on_every_member_then_writes_their_mean(
        data_dir, tmp_path, fake_python):
    assert lfads_ensemble.run(_prepare(data_dir, tmp_path / "ens"), python=fake_python) == 0
    kind = "posterior_sample_and_average"
    plan = _prepare(data_dir, tmp_path / "ens", ["--kind=" + kind, "--batch_size=8"])
    assert plan.outputs == ["model_runs_set0_train_" + kind, "model_runs_set0_valid_" + kind]
    assert lfads_ensemble.run(plan, python=fake_python) == 0
    for name in plan.outputs:
        members = [utils.read_data(os.path.join(m.save_dir, name)) for m in plan.members]
        ensemble = utils.read_data(str(tmp_path / "ens" / "ensemble" / name))
        assert sorted(ensemble) == ["output_dist_params"]  # factors, costs: left out
        np.testing.assert_allclose(
            ensemble["output_dist_params"],
            np.mean([m["output_dist_params"] for m in members], axis=0), rtol=1e-12)


def _pids(save_dir):
    """Process ids of the fake runs started in a member folder."""
    path = os.path.join(save_dir, "fake_runs.txt")
    if not os.path.exists(path):
        return []
    return [int(line.split()[3]) for line in open(path).read().splitlines()
            if line.startswith("start") and len(line.split()) == 4]


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (ended, not yet reaped by its parent) is gone for our purpose
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


_COMMAND_WITH_FAKE = """\
import sys
from lfads_tf2.ensemble import lfads_ensemble as m
from lfads_tf2.train import hparams
plan = m.prepare(hparams.hps_from_argv(sys.argv[2:]), {"members": 3, "parallel": 2})
sys.exit(m.run(plan, python=sys.argv[1]))
"""


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGKILL"])
def test_a_stopped_command_stops_its_members(data_dir, tmp_path, fake_python, signame):
    """SIGTERM: the command stops its running members, starts no more and exits with
    143. SIGKILL of the command alone: the system sends its members SIGTERM."""
    root = tmp_path / "ens"
    argv = td.TINY_NO_CONTROLLER + ["--data_dir=" + data_dir, "--lfads_save_dir=" + str(root),
                                    "--data_filename_stem=" + td.STEM, "--seed=3"]
    env = dict(os.environ, PYTHONPATH=ROOT, FAKE_SECONDS="60")
    proc = subprocess.Popen([sys.executable, "-c", _COMMAND_WITH_FAKE, fake_python] + argv,
                            cwd=str(tmp_path), env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.time() + 60
        while len(_pids(root / "member_0") + _pids(root / "member_1")) < 2:
            assert proc.poll() is None and time.time() < deadline, proc.communicate()
            time.sleep(0.05)
        pids = _pids(root / "member_0") + _pids(root / "member_1")
        proc.send_signal(getattr(signal, signame))
        proc.wait(timeout=30)
        deadline = time.time() + 10
        while any(_alive(pid) for pid in pids) and time.time() < deadline:
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in pids)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == (128 + signal.SIGTERM if signame == "SIGTERM"
                               else -signal.SIGKILL), proc.stderr.read()
    if signame == "SIGTERM":
        assert "Stopped by signal 15: stopping the members." in proc.stderr.read()
    assert not os.path.exists(root / "member_2" / "log.txt")  # never started
    for k in (0, 1):
        assert not os.path.exists(root / ("member_%d" % k) / ens_members.FINISHED)


# ------------------------------------------------------------------ averaging
def _write(path, **arrays):
    utils.write_data(str(path), arrays)
    return str(path)


def test_mean_of_files_averages_the_output_keys_only(tmp_path):
    rs = np.random.RandomState(0)
    params = [rs.rand(4, 6, 3) for _ in range(3)]
    means = [rs.rand(4, 6, 3) for _ in range(3)]
    paths = [_write(tmp_path / ("m%d" % k), output_dist_params=params[k],
                    output_dist_mean=means[k], factors=rs.rand(4, 6, 2),
                    gen_ics=rs.rand(4, 5), train_steps=np.full(4, 10.0 * k))
             for k in range(3)]
    out = average.mean_of_files(paths)
    assert sorted(out) == ["output_dist_mean", "output_dist_params"]
    np.testing.assert_allclose(out["output_dist_params"], (params[0] + params[1] + params[2])
                               / 3, rtol=1e-12)
    np.testing.assert_allclose(out["output_dist_mean"], np.mean(means, axis=0), rtol=1e-12)
    assert out["output_dist_params"].dtype == np.float64


def test_mean_of_files_refuses_members_that_do_not_match(tmp_path):
    a = _write(tmp_path / "a", output_dist_params=np.ones((4, 6, 3)),
               output_dist_mean=np.ones((4, 6, 3)))
    b = _write(tmp_path / "b", output_dist_params=np.ones((4, 6, 3)))
    c = _write(tmp_path / "c", output_dist_params=np.ones((5, 6, 3)),
               output_dist_mean=np.ones((5, 6, 3)))
    d = _write(tmp_path / "d", factors=np.ones((4, 6, 3)))
    cases = [([a, b], "%s: no key 'output_dist_mean', which %s has" % (b, a)),
             ([a, c], "%s: output_dist_params has shape [5, 6, 3], %s's [4, 6, 3]" % (c, a)),
             ([a, str(tmp_path / "e")], "%s: member output missing" % (tmp_path / "e")),
             ([d, a], "%s: none of output_dist_params, output_dist_mean to average" % d)]
    for paths, message in cases:
        with pytest.raises(errors.LfadsError) as e:
            average.mean_of_files(paths)
        assert str(e.value) == message


def _write_zig_member(path, params, s_min):
    with h5py.File(str(path), "w") as hf:
        hf.attrs["output_dist"] = "zig"
        hf.create_dataset("output_dist_params", data=params)
        hf.create_dataset("output_dist_mean", data=params[..., :2])
        hf.create_dataset("output_dist_s_min", data=s_min)


def test_ensemble_files_keep_the_model_name_and_the_data_constants(tmp_path):
    """A ZIG ensemble file carries the `output_dist` attribute and s_min of its members
    (lfads_score needs both), and members that disagree on them are refused."""
    rs = np.random.RandomState(1)
    s_min = np.array([0.2, 0.5])
    params = [rs.rand(3, 4, 6) for _ in range(2)]
    for k in range(2):
        (tmp_path / ("member_%d" % k)).mkdir()
        _write_zig_member(tmp_path / ("member_%d" % k) / "out", params[k], s_min)
    dirs = [str(tmp_path / "member_0"), str(tmp_path / "member_1")]
    [path] = average.write_ensemble_outputs(dirs, str(tmp_path), ["out"])
    with h5py.File(path, "r") as hf:
        assert hf.attrs["output_dist"] == "zig"
        np.testing.assert_array_equal(hf["output_dist_s_min"][()], s_min)
        np.testing.assert_allclose(hf["output_dist_params"][()], np.mean(params, axis=0))
    _write_zig_member(tmp_path / "member_1" / "out", params[1], s_min + 0.1)
    with pytest.raises(errors.LfadsError) as e:
        average.write_ensemble_outputs(dirs, str(tmp_path), ["out"])
    assert "output_dist_s_min differ from" in str(e.value)


# ------------------------------------------------------------------ checks
def _trained_member_folder(folder, hps_values):
    os.makedirs(folder, exist_ok=True)
    open(os.path.join(folder, "checkpoint"), "w").write("model_checkpoint_path: x\n")
    utils.write_hps_json(os.path.join(folder, "hyperparameters-12.txt"), hps_values)


def test_member_flags_read_back_as_the_command_hps_with_seed_and_folder(data_dir, tmp_path):
    plan = _prepare(data_dir, tmp_path / "ens", ["--keep_prob=0.9", "--l2_gen_scale=0.5"])
    member = plan.members[2]
    path = ens_members.write_flagfile(member)
    back = hparams.hps_from_argv(["--flagfile=" + path, "--kind=train"])
    expected = dict(plan.hps, seed=5, lfads_save_dir=member.save_dir)
    assert back == expected
    assert member.save_dir == str(tmp_path / "ens" / "member_2")


@pytest.mark.parametrize("extra, settings, message", [
    ([], {"members": 1}, "--members=1: an ensemble needs at least 2 members"),
    ([], {"parallel": -1}, "--parallel=-1: must not be negative (0: one member per core)"),
    (["--keep_prob=2"], {}, "--keep_prob=2.0: must lie in (0, 1]"),
    (["--data_filename_stem=nothing"], {}, "--data_filename_stem=nothing: no file"),
    (["--kind=posterior_push_mean", "--checkpoint_pb_load_name=/x/lfads_vae.ckpt-3"], {},
     "--checkpoint_pb_load_name=/x/lfads_vae.ckpt-3: names one checkpoint, and each member "
     "has its own"),
    (["--kind=posterior_push_mean"], {},
     "member_0: member 0 missing (--kind=posterior_push_mean needs every member trained; "
     "train them first with --kind=train)"),
])
def test_bad_input_is_a_one_line_error_before_anything_starts(data_dir, tmp_path, extra,
                                                              settings, message):
    with pytest.raises((errors.UsageError, errors.DataError, errors.LfadsError)) as e:
        _prepare(data_dir, tmp_path / "ens", extra, **settings)
    assert message in str(e.value) and "\n" not in str(e.value)
    assert not os.path.exists(tmp_path / "ens")


def test_members_of_another_architecture_or_untrained_are_refused(data_dir, tmp_path):
    derived = hparams.add_derived_hps(_hps(data_dir, tmp_path / "ens"),
                                      utils.read_datasets(data_dir, td.STEM))
    root = tmp_path / "ens"
    for k in range(3):
        _trained_member_folder(str(root / ("member_%d" % k)), dict(derived))
    plan = _prepare(data_dir, root, ["--kind=posterior_push_mean", "--batch_size=64"])
    assert len(plan.members) == 3  # sizes that do not fix the variables may differ
    _trained_member_folder(str(root / "member_1"), dict(derived, gen_dim=32))
    with pytest.raises(errors.LfadsError) as e:
        _prepare(data_dir, root, ["--kind=posterior_push_mean"])
    assert str(e.value) == (
        "%s: member 1 was trained with gen_dim=32 but the flags give gen_dim=24 (pass the "
        "flags it was trained with, e.g. --gen_dim, or choose another --lfads_save_dir)"
        % (root / "member_1" / "hyperparameters-12.txt"))
    # the same for training: a member folder holding another run is not trained on
    with pytest.raises(errors.LfadsError) as e:
        _prepare(data_dir, root)
    assert "member 1 was trained with gen_dim=32" in str(e.value)
    _trained_member_folder(str(root / "member_1"), dict(derived))
    with pytest.raises(errors.LfadsError) as e:
        _prepare(data_dir, root, ["--kind=posterior_push_mean",
                                  "--checkpoint_pb_load_name=checkpoint_lve"])
    assert str(e.value) == ("%s: member 0 has no checkpoint (no state file "
                            "'checkpoint_lve'); train it first with --kind=train"
                            % (root / "member_0"))
    with pytest.raises(errors.LfadsError) as e:
        _prepare(data_dir, root, ["--kind=posterior_push_mean",
                                  "--checkpoint_pb_load_name=lfads_vae.ckpt-12"])
    assert str(e.value) == ("%s: member 0 has no checkpoint lfads_vae.ckpt-12"
                            % (root / "member_0"))


def test_the_command_stops_with_one_line_without_tensorflow(data_dir, tmp_path):
    code = textwrap.dedent("""\
        import sys
        from lfads_tf2.ensemble import lfads_ensemble as m
        sys.argv[0] = "lfads_ensemble"
        try:
            m.console_main()
        finally:
            print("tensorflow imported: %s" % ("tensorflow" in sys.modules))
        """)
    common = ["--data_dir=" + data_dir, "--data_filename_stem=" + td.STEM,
              "--lfads_save_dir=" + str(tmp_path / "ens")]
    env = dict(os.environ, PYTHONPATH=ROOT)
    for args, line in (
            (["--members=1"], "error: --members=1: an ensemble needs at least 2 members"),
            (["--membres=3"], "error: unknown flag --membres (did you mean --members?)"),
            (["--kind=posterior_sample_and_average"],
             "error: %s: member 0 missing (--kind=posterior_sample_and_average needs every "
             "member trained; train them first with --kind=train)"
             % (tmp_path / "ens" / "member_0"))):
        proc = subprocess.run([sys.executable, "-c", code] + common + args, cwd=str(tmp_path),
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.splitlines() == [line]
        assert proc.stdout.strip().endswith("tensorflow imported: False")
    assert not os.path.exists(tmp_path / "ens")


# ------------------------------------------------------------------ real members
EPOCHS = 30


def _real_flags(root, save_dir):
    return td.fast_flags(root / "data", save_dir) + ["--seed=3", "--max_epochs=%d" % EPOCHS]


def _ensemble(args, **kwargs):
    return subprocess.run([sys.executable, "-m", "lfads_tf2.ensemble.lfads_ensemble"] + args,
                          cwd=ROOT, capture_output=True, text=True, **kwargs)


def ensemble_runs(folder):
    """Background job (tests/background.py): an ensemble of 2 tiny models, one at a time
    (the fake members above test side by side), whose command is killed (SIGKILL to its
    process group) once member 1 has written a checkpoint, then started again; a lone
    run_lfads run with member 1's seed; the posterior kind on the ensemble. The
    commands' outputs go to folder/runs.json."""
    root = pathlib.Path(folder)
    td.write_dataset(root / "data", seed=3, n_train=32, n_valid=16)
    flags = _real_flags(root, root / "ens") + ["--members=2", "--parallel=1"]
    res = {}
    with open(root / "killed.log", "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "lfads_tf2.ensemble.lfads_ensemble", "--kind=train"]
            + flags, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        # member 0 finished and member 1 mid-way: it has written a checkpoint
        ens = root / "ens"
        deadline = time.time() + 600
        while not (ens / "member_1" / "checkpoint").exists():
            assert proc.poll() is None, (root / "killed.log").read_text()
            assert not (ens / "member_1" / ens_members.FINISHED).exists(), "not killed"
            assert time.time() < deadline, (root / "killed.log").read_text()
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    res["killed_status"] = proc.returncode
    res["killed_fitlog"] = td.fitlog_lines(str(root / "ens" / "member_1"))
    res["killed_stdout"] = (root / "killed.log").read_text()
    again = _ensemble(["--kind=train"] + flags, timeout=900)
    res["again"] = {"status": again.returncode, "stdout": again.stdout, "stderr": again.stderr}
    lone = subprocess.run([sys.executable, "-m", "run_lfads", "--kind=train"]
                          + _real_flags(root, root / "lone") + ["--seed=4"], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    res["lone"] = {"status": lone.returncode, "stderr": lone.stderr[-3000:]}
    post = _ensemble(["--kind=posterior_sample_and_average", "--batch_size=8"] + flags,
                     timeout=900)
    res["posterior"] = {"status": post.returncode, "stdout": post.stdout,
                        "stderr": post.stderr}
    with open(root / "runs.json", "w") as f:
        json.dump(res, f)


BACKGROUND = {"real": ensemble_runs}


@pytest.fixture(scope="module")
def real():
    folder = pathlib.Path(background.result(ensemble_runs))
    with open(folder / "runs.json") as f:
        return dict(json.load(f), root=folder)


def test_a_killed_ensemble_resumes_and_skips_finished_members(real):
    assert real["killed_status"] == -signal.SIGKILL
    assert "member 0: done in" in real["killed_stdout"]
    assert "member 1 (seed 4): started train" in real["killed_stdout"]
    assert len(real["killed_fitlog"]) < EPOCHS  # killed mid-way
    again = real["again"]
    assert again["status"] == 0, again["stderr"][-3000:]
    assert "member 0: finished before, skipped" in again["stdout"]
    assert "member 1 (seed 4): started train" in again["stdout"]
    log = (real["root"] / "ens" / "member_1" / "log.txt").read_text()
    runs = log.split("=== ")  # one part per start of the member
    train_runs = [r for r in runs if "--kind=train ===" in r]
    assert len(train_runs) == 2
    assert "Restored from" not in train_runs[0] and "Restored from" in train_runs[1]
    for k in range(2):
        epochs = [td.fitlog_record(line)["epoch"]
                  for line in td.fitlog_lines(str(real["root"] / "ens" / ("member_%d" % k)))]
        assert epochs == list(range(EPOCHS))


def test_a_member_is_the_lone_run_with_its_seed(real):
    """Member 1 (seed 3 + 1; killed and resumed) logs what `run_lfads --seed=4` logs."""
    assert real["lone"]["status"] == 0, real["lone"]["stderr"]
    member = (real["root"] / "ens" / "member_1" / "fitlog.csv").read_bytes()
    lone = (real["root"] / "lone" / "fitlog.csv").read_bytes()
    assert member == lone
    other = (real["root"] / "ens" / "member_0" / "fitlog.csv").read_bytes()
    assert other != lone  # another seed, another run


def test_ensemble_outputs_are_the_members_mean_and_lfads_score_reads_them(real):
    post = real["posterior"]
    assert post["status"] == 0, post["stderr"][-3000:]
    kind = "posterior_sample_and_average"
    for split in ("train", "valid"):
        name = "model_runs_set0_%s_%s" % (split, kind)
        path = real["root"] / "ens" / "ensemble" / name
        assert "Wrote %s" % path in post["stdout"]
        members = [utils.read_data(str(real["root"] / "ens" / ("member_%d" % k) / name))
                   for k in range(2)]
        assert "factors" in members[0]
        ensemble = utils.read_data(str(path))
        assert set(ensemble) == {"output_dist_params"} | (
            {"output_dist_mean"} if "output_dist_mean" in members[0] else set())
        for key in ensemble:
            np.testing.assert_allclose(ensemble[key],
                                       np.mean([m[key] for m in members], axis=0),
                                       rtol=1e-12)
    data_file = str(real["root"] / "data" / (td.STEM + "_set0"))
    scores = lfads_score.score_files(str(real["root"] / "ens" / "ensemble" /
                                         ("model_runs_set0_valid_" + kind)), data_file)
    assert scores["split"] == "valid" and scores["trials"] == 16
    assert np.isfinite(scores["metrics"]["rate_r2"])
