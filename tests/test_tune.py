"""lfads_tune on Ray Tune, embedded: a random search of 2 trials and population-based
training of 4 trials over 3 perturbation rounds, in one Ray session started here (Ray
takes seconds to start; lfads_tune uses a session its process already has).

Ray runs on loopback only (RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0) with its own HOME, so
that the token it writes stays out of the user's home.
"""
import csv
import os

import pytest

from conftest import ROOT
import lfads_testdata as td
from lfads_tf2.train import hparams
from lfads_tf2.search import lfads_tune, history as search_history
from lfads_tf2.model import tunables

pytest.importorskip("ray.tune")

# 4 steps an epoch: 64 training trials, batches of 16
TRIAL_FLAGS = td.TINY_NO_CONTROLLER + ["--seed=1"]
STEPS_PER_EPOCH = 4


@pytest.fixture(scope="module")
def ray_session(tmp_path_factory):
    import ray
    env = {"HOME": str(tmp_path_factory.mktemp("home")),
           "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
           # the trials import this checkout, whatever else the environment holds
           "PYTHONPATH": os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")]
                                                  if p])}
    saved = {k: os.environ.get(k) for k in list(env) + ["RAY_AUTH_MODE"]}
    os.environ.update(env)
    # the embedded Ray decides its own authentication (a token in the new HOME): a
    # RAY_AUTH_MODE=token from the environment would have it look for the token the
    # user's HOME holds, which its servers, started with the new HOME, cannot read
    os.environ.pop("RAY_AUTH_MODE", None)
    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level="WARNING")
    try:
        yield
    finally:
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    td.write_dataset(str(folder), n_train=64, n_valid=32, T=20, D=10)
    return str(folder)


def _search(data_dir, out, space_text, extra=(), **settings):
    space = os.path.join(os.path.dirname(out), "space.yaml")
    with open(space, "w") as f:
        f.write(space_text)
    hps = hparams.hps_from_argv(TRIAL_FLAGS + [
        "--data_dir=" + data_dir, "--data_filename_stem=" + td.STEM,
        "--lfads_save_dir=" + out] + list(extra))
    plan = lfads_tune.prepare(hps, dict(
        {"search_space": space, "search": "random", "num_samples": 2,
         "perturbation_interval": 1, "report_every_n_epochs": 1, "cpus_per_trial": 1.0,
         "num_cpus": 0, "ray_address": "", "storage_path": ""}, **settings))
    results, best = lfads_tune.run_search(plan)
    return plan, results, best


def _csv(out):
    with open(os.path.join(out, lfads_tune.OUTPUT_CSV)) as f:
        return list(csv.DictReader(f))


def test_random_search_of_two_trials(ray_session, data_dir, tmp_path):
    out = str(tmp_path / "random")
    plan, results, best = _search(data_dir, out, "gen_dim: {choice: [16, 24]}\n"
                                  "keep_prob: {uniform: [0.8, 1.0]}\n", ["--max_epochs=2"])
    assert len(results) == 2 and not [r for r in results if r.error]
    rows = _csv(out)
    trials = sorted({r["trial_id"] for r in rows})
    assert len(trials) == 2
    for trial in trials:
        mine = [r for r in rows if r["trial_id"] == trial]
        assert [int(r["epoch"]) for r in mine] == [1, 2]
        assert [int(r["step"]) for r in mine] == [STEPS_PER_EPOCH, 2 * STEPS_PER_EPOCH]
        assert all(float(r["valid_recon"]) > 0 for r in mine)
        assert 0.8 <= float(mine[0]["config/keep_prob"]) <= 1.0
        assert float(mine[-1]["now_keep_prob"]) == pytest.approx(
            float(mine[-1]["config/keep_prob"]))
        assert mine[0]["config/gen_dim"] in ("16", "24")
    assert os.path.getsize(os.path.join(out, lfads_tune.OUTPUT_PNG)) > 10000
    # the best trial's save folder in the original layout, with its flags
    best_dir = os.path.join(out, lfads_tune.BEST_MODEL)
    names = os.listdir(best_dir)
    assert "checkpoint" in names and "lfads_vae.ckpt-8.index" in names
    flags = open(os.path.join(best_dir, lfads_tune.FLAGFILE)).read().splitlines()
    assert "--gen_dim=%d" % best.config["gen_dim"] in flags
    assert "--lfads_save_dir=" + best_dir in flags
    # ... on which an evaluation kind runs unchanged
    td.run(["--flagfile=" + os.path.join(best_dir, lfads_tune.FLAGFILE),
            "--kind=posterior_push_mean"], default_seed=None)
    assert [n for n in os.listdir(best_dir) if "posterior_push_mean" in n]


def test_pbt_of_four_trials_exploits(ray_session, data_dir, tmp_path):
    out = str(tmp_path / "pbt")
    # cd_rate starts from 0 (its flag's default) and is searched: CD is compiled in
    space = ("learning_rate_init: {loguniform: [1e-3, 3e-2]}\n"
             "keep_prob: {uniform: [0.8, 1.0]}\n"
             "cd_rate: {uniform: [0.0, 0.4]}\n")
    plan, results, best = _search(data_dir, out, space, ["--max_epochs=4"], search="pbt",
                                  num_samples=4, perturbation_interval=1)
    assert len(results) == 4 and not [r for r in results if r.error]
    rows = _csv(out)
    by_trial = {}
    for r in rows:
        by_trial.setdefault(r["trial_id"], []).append(r)
    assert len(by_trial) == 4
    for trial, mine in by_trial.items():
        assert [int(r["epoch"]) for r in mine] == [1, 2, 3, 4], trial
        # training goes on from the restored step after every pause and exploit
        assert [int(r["step"]) for r in mine] == [STEPS_PER_EPOCH * e for e in (1, 2, 3, 4)]
        for r in mine:
            # the values in effect (read from the variables) are the trial's config
            for name in ("learning_rate_init", "keep_prob", "cd_rate"):
                now = "now_learning_rate" if name == "learning_rate_init" else "now_" + name
                assert float(r[now]) == pytest.approx(float(r["config/" + name]),
                                                      rel=1e-6), (trial, name)
            assert 1e-3 <= float(r["config/learning_rate_init"]) <= 3e-2
            assert 0.8 <= float(r["config/keep_prob"]) <= 1.0
            assert 0.0 <= float(r["config/cd_rate"]) <= 0.4
    exploits = [r for r in rows if r["restored_from"]]
    # synchronous PBT: in each of the 3 rounds the worst of 4 takes the best's weights
    assert len(exploits) >= 2, rows
    for r in exploits:
        assert r["restored_from"] != r["trial_id"] and r["restored_from"] in by_trial
        assert int(r["restored_epoch"]) == int(r["epoch"]) - 1
        source = [s for s in by_trial[r["restored_from"]]
                  if int(s["epoch"]) == int(r["restored_epoch"])][0]
        # the exploiting trial's hyperparameters were perturbed from the source's
        assert any(float(r["config/" + k]) != float(source["config/" + k])
                   for k in ("learning_rate_init", "keep_prob", "cd_rate"))
    events = search_history.exploits(search_history.read(
        os.path.join(out, search_history.HISTORY)))
    assert len(events) == len(exploits)
    assert os.path.getsize(os.path.join(out, lfads_tune.OUTPUT_PNG)) > 10000
    assert set(tunables.PERTURBABLE) >= {p.name for p in plan.params}
    assert os.path.exists(os.path.join(out, lfads_tune.BEST_MODEL, "checkpoint"))


def test_history_records_the_config_the_report_was_made_with(tmp_path):
    # Synchronous PBT perturbs the trial whose report closes a round before callbacks
    # see that report: trial.config is then already the exploit's new config.
    from types import SimpleNamespace
    path = str(tmp_path / "history.jsonl")
    recorder = search_history.HistoryRecorder(path)
    trial = SimpleNamespace(trial_id="t0", config={"learning_rate_init": 0.00347})
    recorder.on_trial_result(1, [trial], trial, {
        "epoch": 1, "training_iteration": 1, "now_learning_rate": 0.00402,
        "config": {"learning_rate_init": 0.00402}})
    recorder.on_trial_result(2, [trial], trial, {"epoch": 2, "training_iteration": 2})
    rows = search_history.read(path)
    assert [r["config"]["learning_rate_init"] for r in rows] == [0.00402, 0.00347]


@pytest.mark.parametrize("interval,every", [(1, 1), (10, 1), (100, 1), (100, 10), (25, 5)])
def test_pbt_keeps_the_exploited_checkpoint_for_a_whole_interval(interval, every):
    """A PBT donor may train a whole interval past the checkpoint others exploit (more
    trials than CPUs): Ray Tune keeps only the newest checkpoints_to_keep, so that
    checkpoint must still be among them when the donor pauses at the next one."""
    keep = lfads_tune.checkpoints_to_keep({"search": "pbt", "perturbation_interval": interval,
                                       "report_every_n_epochs": every})
    reports = list(range(every, 2 * interval + 1, every))  # epochs with a checkpoint
    kept = reports[-keep:]  # Ray deletes all but the newest `keep`
    assert interval in kept, (interval, every, keep)
    assert lfads_tune.checkpoints_to_keep({"search": "random", "perturbation_interval": 100,
                                       "report_every_n_epochs": 1}) == 3
