"""lfads_tune without Ray: the search space file, its one-line errors, and what a trial
does when population-based training lets it exploit another (restore the source's
checkpoint, set the perturbed values, train on in the same graph).

The searches on Ray are in test_tune.py and test_tune_cluster.py.
"""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import ROOT
import lfads_testdata as td
from lfads_tf2 import errors
from lfads_tf2.train import hparams
from lfads_tf2.data import checks
from lfads_tf2.model import observation
from lfads_tf2.search import lfads_tune, space as search_space, trial as search_trial
from lfads_tf2.model import tunables

SETTINGS = {"search_space": "", "search": "random", "num_samples": 2,
            "perturbation_interval": 1, "report_every_n_epochs": 1, "cpus_per_trial": 1.0,
            "num_cpus": 0, "ray_address": "", "storage_path": ""}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    td.write_dataset(str(folder), n_train=64, n_valid=32, T=20, D=10)
    return str(folder)


def _base(data_dir, save_dir, extra=()):
    return hparams.hps_from_argv(
        td.TINY_NO_CONTROLLER + ["--data_dir=" + data_dir, "--data_filename_stem=" + td.STEM,
                                 "--lfads_save_dir=" + save_dir, "--max_epochs=2",
                                 "--seed=3"] + list(extra))


def _space(tmp_path, text, name="space.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def _prepare(data_dir, tmp_path, text, extra=(), **settings):
    path = _space(tmp_path, text, settings.pop("name", "space.yaml"))
    return lfads_tune.prepare(_base(data_dir, str(tmp_path / "out"), extra),
                          dict(SETTINGS, search_space=path, **settings))


# ------------------------------------------------------------------ the search space
def test_yaml_space_is_read_with_flag_types(data_dir, tmp_path):
    plan = _prepare(data_dir, tmp_path, """\
        learning_rate_init: {loguniform: [1e-4, 1e-2]}   # YAML reads 1e-4 as a string
        keep_prob: {uniform: [0.7, 1.0]}
        gen_dim: {choice: [16, 24]}
        factors_dim: {randint: [4, 6]}
        do_train_prior_ar_atau: {choice: [true, false]}
        """)
    got = {p.name: (p.dist, p.args) for p in plan.params}
    assert got == {"learning_rate_init": ("loguniform", [1e-4, 1e-2]),
                   "keep_prob": ("uniform", [0.7, 1.0]), "gen_dim": ("choice", [16, 24]),
                   "factors_dim": ("randint", [4, 6]),
                   "do_train_prior_ar_atau": ("choice", [True, False])}
    assert all(isinstance(v, float) for v in got["learning_rate_init"][1])
    assert plan.metric == "valid_recon"
    assert plan.experiment == str(tmp_path / "out")  # Ray's trial folders in the output


def test_json_space_and_sv_metric(data_dir, tmp_path):
    plan = _prepare(data_dir, tmp_path, '{"cd_rate": {"uniform": [0.1, 0.5]}}',
                    extra=["--sv_rate=0.1"], name="space.json", search="pbt")
    assert [p.name for p in plan.params] == ["cd_rate"]
    assert plan.metric == "sv_recon"


@pytest.mark.parametrize("text, settings, message", [
    ("kep_prob: {uniform: [0.7, 1.0]}\n", {},
     "kep_prob: unknown flag (did you mean keep_prob?)"),
    ("data_dir: {choice: [a, b]}\n", {}, "data_dir: not a hyperparameter a search may set"),
    ("keep_prob: {normal: [0.7, 1.0]}\n", {},
     "keep_prob: unknown distribution 'normal' (expected one of uniform, loguniform, "
     "randint, choice)"),
    ("keep_prob: {uniform: [0.7, 1.2]}\n", {},
     "keep_prob {uniform: [0.7, 1.2]}: --keep_prob=1.2: must lie in (0, 1]"),
    ("learning_rate_init: {loguniform: [1e-2, 1e-4]}\n", {},
     "learning_rate_init: {loguniform: [0.01, 0.0001]}: low must be below high"),
    ("learning_rate_init: {loguniform: [0, 1e-2]}\n", {}, "low must be positive"),
    ("cd_rate: {uniform: [0.2, 1.0]}\n", {}, "--cd_rate=1.0: must lie in [0, 1)"),
    ("gen_dim: {uniform: [10, 20]}\n", {},
     "gen_dim: uniform does not fit a flag of type int (use randint or choice)"),
    ("batch_size: {randint: [8, 100]}\n", {},
     "batch_size {randint: [8, 100]}: "),
    ("keep_prob: [0.7, 1.0]\n", {}, "keep_prob: expected {distribution: [...]}"),
    ("keep_prob: {uniform: [0.7]}\n", {}, "uniform takes a list [low, high], got 1 values"),
    ("gen_dim: {choice: [16, 24]}\n", {"search": "pbt"},
     "gen_dim: --search=pbt changes hyperparameters of running trials"),
    ("keep_prob: {uniform: [0.7\n", {}, "not valid YAML at line"),
    ("ic_prior_var_scale: {uniform: [0.05, 0.2]}\nic_prior_var_max: {uniform: [0.1, 0.3]}\n",
     {"name": "combo.yaml"}, "the combination ic_prior_var_scale=0.2, ic_prior_var_max=0.1: "
     "--ic_prior_var_scale=0.2: must lie in [--ic_prior_var_min, --ic_prior_var_max]"),
])
def test_bad_spaces_are_one_line_errors_before_ray(data_dir, tmp_path, text, settings,
                                                   message):
    with pytest.raises(search_space.SpaceError) as e:
        _prepare(data_dir, tmp_path, text, extra=["--ic_prior_var_min=0.05",
                                                  "--ic_prior_var_scale=0.1",
                                                  "--ic_prior_var_max=0.3"], **settings)
    line = str(e.value)
    assert "\n" not in line
    assert line.startswith("search space %s: " % (tmp_path / settings.get(
        "name", "space.yaml"))), line
    assert message in line, line
    if "batch_size" in text:
        assert "--batch_size=100" in line and "train_data" in line, line


@pytest.mark.parametrize("settings, extra, message", [
    ({"search": "grid"}, [], "--search=grid: expected random or pbt"),
    ({"num_samples": 0}, [], "--num_samples=0: must be a positive integer"),
    ({"search": "pbt", "perturbation_interval": 3, "report_every_n_epochs": 2}, [],
     "--perturbation_interval=3: must be a multiple of --report_every_n_epochs=2"),
    ({}, ["--max_epochs=-1"], "--max_epochs=-1: must not be negative"),
    ({"num_cpus": 2, "ray_address": "127.0.0.1:6379"}, [], "--num_cpus: only for a Ray"),
])
def test_bad_settings_are_one_line_errors(data_dir, tmp_path, settings, extra, message):
    with pytest.raises((lfads_tune.SearchError, errors.UsageError)) as e:
        _prepare(data_dir, tmp_path, "keep_prob: {uniform: [0.7, 1.0]}\n", extra=extra,
                 **settings)
    assert message in str(e.value)


def test_the_command_stops_with_one_line_before_ray_starts(data_dir, tmp_path):
    space = _space(tmp_path, "gen_dim: {choice: [16, 24]}\n")
    code = textwrap.dedent("""\
        import sys
        from lfads_tf2.search import lfads_tune as m
        try:
            m.console_main()
        finally:
            print("ray imported: %s" % ("ray" in sys.modules))
        """)
    env = dict(os.environ, PYTHONPATH=ROOT, HOME=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-c", code, "--search=pbt", "--search_space=" + space,
         "--max_epochs=2", "--data_dir=" + data_dir, "--data_filename_stem=" + td.STEM,
         "--lfads_save_dir=" + str(tmp_path / "out")],
        cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: search space %s: gen_dim: --search=pbt changes hyperparameters of running "
        "trials, and gen_dim cannot change in a running model; use --search=random, or "
        "search only %s" % (space, ", ".join(tunables.PERTURBABLE))]
    assert proc.stdout.strip().endswith("ray imported: False")
    assert not os.path.exists(tmp_path / "out")
    missing = subprocess.run([sys.executable, "-c", code, "--search_space=" + space],
                             cwd=str(tmp_path), env=env, capture_output=True, text=True,
                             timeout=120)
    assert missing.returncode == 2
    assert missing.stderr.splitlines() == [
        "error: --max_epochs: required, each trial's number of epochs"]


def test_clamp_keeps_perturbed_values_in_the_space():
    keep = search_space.Param("keep_prob", "uniform", [0.7, 1.0])
    clamp = lfads_tune.ClampToSpace([keep, search_space.Param("gen_dim", "randint", [8, 16])])
    assert clamp({"keep_prob": 1.14, "gen_dim": 19.2}) == {"keep_prob": 1.0, "gen_dim": 16}
    assert clamp({"keep_prob": 0.5}) == {"keep_prob": 0.7}


# ------------------------------------------------------------------ exploit
ALL = list(tunables.PERTURBABLE)
SOURCE = {"learning_rate_init": 0.01, "keep_prob": 0.9, "cd_rate": 0.0, "kl_ic_weight": 1.0,
          "kl_co_weight": 1.0, "l2_gen_scale": 0.0, "l2_con_scale": 0.0, "seed": 3}
PERTURBED = {"learning_rate_init": 0.012, "keep_prob": 0.8, "cd_rate": 0.3,
             "kl_ic_weight": 0.5, "kl_co_weight": 2.0, "l2_gen_scale": 120.0,
             "l2_con_scale": 5.0, "seed": 3}


def _trial(base, datasets, config, save_dir, max_epochs):
    hps = search_trial.trial_hps(base, config, save_dir, ALL, report_every=1)
    hps.max_epochs = max_epochs
    hparams.add_derived_hps(hps, datasets)
    return hps


@pytest.fixture(scope="module")
def source_trial(data_dir, tmp_path_factory):
    """Trial "A" trained 2 epochs with SOURCE's values (CD compiled in at rate 0, the
    L2 term at scale 0, because both are searched), its exported checkpoints, and the
    process's graph cache holding its graph."""
    root = tmp_path_factory.mktemp("trials")
    base = _base(data_dir, str(root / "unused"))
    datasets, _ = checks.load_datasets(data_dir, td.STEM, observation.for_dist("poisson"))
    hps = _trial(base, datasets, SOURCE, str(root / "A"), 2)
    exported, reports = [], []

    def report(metrics, save_dir, info):
        dest = str(root / ("A_checkpoint_%d" % info["epoch"]))
        os.makedirs(dest)
        search_trial.export_checkpoint(save_dir, dest, info)
        exported.append(dest)
        reports.append(metrics)

    cache = search_trial.GraphCache()
    bundle = search_trial.run(hps, datasets, "A", None, report, cache)
    return dict(base=base, datasets=datasets, root=root, exported=exported, bundle=bundle,
                cache=cache, reports=reports, hps=hps)


def test_source_trial_reports_and_exports_the_original_layout(source_trial):
    reports = source_trial["reports"]
    assert [r["epoch"] for r in reports] == [1, 2]
    assert [r["step"] for r in reports] == [4, 8]
    for r in reports:
        assert r["valid_recon"] == r["valid_recon"] and r["restored_from"] == ""
        assert r["now_keep_prob"] == pytest.approx(0.9) and r["now_cd_rate"] == 0.0
    folder = source_trial["exported"][-1]
    names = sorted(os.listdir(folder))
    assert "checkpoint" in names and "lfads_vae.ckpt-8.index" in names
    assert "fitlog.csv" in names and search_trial.TRIAL_FILE in names
    assert not [n for n in names if n.startswith("lfads_vae.ckpt-4")]  # the newest only
    info = search_trial.read_info(folder)
    assert info["trial_id"] == "A" and info["epoch"] == 2 and info["step"] == 8
    assert info["values"]["keep_prob"] == 0.9
    # CD and the L2 term are in the graph because they are searched, with value 0
    bundle = source_trial["bundle"]
    assert bundle.cd_rate is not None and float(bundle.cd_rate.numpy()) == 0.0
    assert float(bundle.model.l2_cost().numpy()) == 0.0


def test_exploit_restores_the_source_and_sets_the_perturbed_values(source_trial, tmp_path):
    from lfads_tf2.train import checkpoints, loop
    datasets, base = source_trial["datasets"], source_trial["base"]
    graph = source_trial["cache"].get(_trial(base, datasets, PERTURBED, "x", 2))
    assert graph is not None and graph.bundle is source_trial["bundle"]
    traces = graph.train_step.experimental_get_tracing_count()
    assert traces == 1

    # Trial "B" had trained on its own (another checkpoint in its folder) and exploits A.
    save_b = str(tmp_path / "B")
    os.makedirs(save_b)
    open(os.path.join(save_b, "lfads_vae.ckpt-99.index"), "w").close()
    hps = _trial(base, datasets, PERTURBED, save_b, 2)
    source = source_trial["exported"][-1]
    info = search_trial.restore_into(source, save_b, "B", hps, ALL)
    assert info["trial_id"] == "A"
    assert hps.do_reset_learning_rate  # learning_rate_init was perturbed
    assert not os.path.exists(os.path.join(save_b, "lfads_vae.ckpt-99.index"))

    bundle = loop.train(hps, datasets, graph=graph)  # restores, 0 epochs to go
    assert bundle is graph.bundle
    expected = td.checkpoint_values(os.path.join(source, "lfads_vae.ckpt-8"))
    keys = checkpoints.checkpoint_keys(bundle.checkpoint)
    assert len(keys) > 20
    for key, var in keys.items():
        if "learning_rate" in key:  # the state's, also tracked by the optimizer
            continue
        np.testing.assert_array_equal(var.numpy(), expected[key], err_msg=key)
    assert any(k.startswith("optimizer/v/") for k in keys)  # Adam's slots compared too
    assert any(k.startswith("rng/") for k in keys)  # and the random state
    assert int(bundle.state.global_step.numpy()) == 8 and int(bundle.state.epoch.numpy()) == 2
    assert float(bundle.state.learning_rate.numpy()) == pytest.approx(0.012)
    assert bundle.model.tunables.values() == pytest.approx(
        {k: PERTURBED[k] for k in tunables.IN_GRAPH})
    assert float(bundle.cd_rate.numpy()) == pytest.approx(0.3)
    assert float(bundle.model.l2_cost().numpy()) > 0  # the L2 term now counts

    # ... and trains on in the same graph: no new trace, the perturbed values reported.
    hps = _trial(base, datasets, PERTURBED, save_b, 3)
    info = search_trial.restore_into(source, save_b, "B", hps, ALL)
    reports = []
    search_trial.run(hps, datasets, "B", info, lambda m, s, i: reports.append((m, i)),
                     source_trial["cache"])
    assert graph.train_step.experimental_get_tracing_count() == traces
    assert graph.eval_step.experimental_get_tracing_count() == 1
    (metrics, written), = reports
    assert metrics["epoch"] == 3 and metrics["step"] == 12
    assert metrics["restored_from"] == "A" and metrics["restored_epoch"] == 2
    assert metrics["now_learning_rate"] == pytest.approx(0.012)
    for name in tunables.IN_GRAPH + ("cd_rate",):
        assert metrics["now_" + name] == pytest.approx(PERTURBED[name]), name
    assert written["trial_id"] == "B" and written["values"]["cd_rate"] == 0.3


def test_a_trial_resumed_from_its_own_checkpoint_keeps_its_learning_rate(source_trial,
                                                                          tmp_path):
    datasets, base = source_trial["datasets"], source_trial["base"]
    source = source_trial["exported"][0]
    save = str(tmp_path / "A_again")
    hps = _trial(base, datasets, SOURCE, save, 2)
    info = search_trial.restore_into(source, save, "A", hps, ALL)
    assert info["epoch"] == 1 and not hps.do_reset_learning_rate
    assert os.path.exists(os.path.join(save, "lfads_vae.ckpt-4.index"))


def test_graph_key_ignores_only_what_the_graph_reads_from_variables(source_trial):
    hps = source_trial["hps"]
    other = hparams.HParams(hps, keep_prob=0.5, lfads_save_dir="/elsewhere", seed=9,
                              learning_rate_init=0.1, do_reset_learning_rate=True)
    assert search_trial.graph_key(other) == search_trial.graph_key(hps)
    assert search_trial.graph_key(hparams.HParams(hps, gen_dim=48)) != \
        search_trial.graph_key(hps)
    assert search_trial.graph_key(hparams.HParams(hps, search_keys=[])) != \
        search_trial.graph_key(hps)


def test_an_address_where_no_ray_listens_is_a_one_line_error(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    # a home of its own: the user's Ray token (~/.ray/auth_token) is neither read nor
    # made, and a failed connection leaves RAY_AUTH_MODE as it was (unset)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("x" * 32)
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(lfads_tune.SearchError) as e:
        lfads_tune.start_ray(dict(SETTINGS, ray_address="127.0.0.1:%d" % port))
    assert str(e.value).startswith("--ray_address=127.0.0.1:%d: cannot connect (" % port)
    with pytest.raises(lfads_tune.SearchError) as e:
        lfads_tune.start_ray(dict(SETTINGS, ray_address="myhead"))
    assert "expected HOST:PORT" in str(e.value)
    assert "RAY_AUTH_MODE" not in os.environ
