"""The `lfads_tune` command: hyperparameter search on Ray Tune, random or population-based.

This module owns Ray (the training loop never imports it). Each trial is the project's
own training loop (lfads_tf2/search/trial.py, training.train) inside a Ray Tune
function trainable: it reports the metric (sv_recon with --sv_rate > 0, else the
validation reconstruction cost; lower is better) every --report_every_n_epochs epochs,
each report with a checkpoint in the project's own format. Random search draws every
trial's flags from the search space (lfads_tf2/search/space.py); population-based
training (Ray Tune's PopulationBasedTraining, synchronous) lets the worst quarter of the
trials take the weights of the best quarter every --perturbation_interval epochs and
perturb their hyperparameters, which live in variables (lfads_tf2/model/tunables.py), so the
exploiting trial restores a checkpoint, sets the new values and trains on without a new
graph.

Outputs in --lfads_save_dir: trials.csv (every report of every trial), best_model/ (the
best trial's save folder in the original layout, with run_lfads.flags), population.png
and search.json (the settings, checked when the same command resumes the search).
"""
import json
import math
import os
import shutil
import sys
import tempfile
import textwrap

from absl import flags

from lfads_tf2 import errors
from lfads_tf2.train import runtime
from lfads_tf2.train import hparams
from lfads_tf2.train import flags as run_flags
from lfads_tf2.data import checks
from lfads_tf2.model import observation
import utils
from lfads_tf2 import cli
from lfads_tf2.search import space as search_space, trial as search_trial
from lfads_tf2.model import tunables
from lfads_tf2.errors import SearchError

FLAGS = flags.FLAGS

flags.DEFINE_string("search_space", "",
                    "YAML or JSON file of the search space: one line per run_lfads flag, "
                    "e.g. `keep_prob: {uniform: [0.7, 1.0]}` (distributions: uniform, "
                    "loguniform, randint, choice). Required.")
flags.DEFINE_string("search", "random",
                    "random: every trial draws its flags from the search space and trains "
                    "--max_epochs epochs; pbt: population-based training of --num_samples "
                    "trials, which every --perturbation_interval epochs copy the weights of "
                    "better trials and perturb their hyperparameters.")
flags.DEFINE_integer("num_samples", 8, "Number of trials (the population, with pbt).")
flags.DEFINE_integer("perturbation_interval", 10,
                     "pbt: epochs between two rounds of exploit (the worst quarter of the "
                     "trials take the weights of the best quarter) and explore (their "
                     "hyperparameters are multiplied by 0.8 or 1.2, or drawn anew).")
flags.DEFINE_integer("report_every_n_epochs", 1,
                     "A trial reports its metric (and hands a checkpoint to Ray Tune) every "
                     "this many epochs, and after its last epoch.")
flags.DEFINE_float("cpus_per_trial", 1.0,
                   "CPUs Ray reserves for each trial; as many trials run at once as fit.")
flags.DEFINE_integer("num_cpus", 0,
                     "CPUs of the Ray instance started on this machine (0: all of them); "
                     "not with --ray_address.")
flags.DEFINE_string("ray_address", "",
                    "HOST:PORT of a running Ray cluster (`ray start --head` prints it) to "
                    "run the trials on; default: start Ray on this machine.")
flags.DEFINE_string("storage_path", "",
                    "Folder (shared by every machine of a cluster, or a URI such as "
                    "s3://bucket/path) where Ray Tune keeps the search's trial folders "
                    "and checkpoints, in <storage_path>/<name of --lfads_save_dir>. "
                    "Default: the folder above --lfads_save_dir, so that they are in "
                    "--lfads_save_dir.")

SEARCH_GROUPS = [
    ("Search", ["search_space", "search", "num_samples", "perturbation_interval",
                "report_every_n_epochs"]),
    ("Ray", ["cpus_per_trial", "num_cpus", "ray_address", "storage_path"]),
]
# run_lfads's flags after the command's own: every trial starts from them.
FLAG_GROUPS = SEARCH_GROUPS + [("run_lfads: " + title, names)
                               for title, names in run_flags.FLAG_GROUPS]

# Flags a search may set: the model and its training (not the data, the save folder,
# the budget --max_epochs or the sample-validation entries the metric is measured on).
_NOT_SEARCHABLE = {"max_epochs", "do_reset_learning_rate", "max_consecutive_nonfinite_steps",
                   "max_nonfinite_restores", "sv_rate", "sv_seed", "lve_metric"}
SEARCHABLE = [name for title, names in run_flags.FLAG_GROUPS
              if title.startswith("Model:") or (title.startswith("Training:")
                                                and "which weights" not in title)
              for name in names if name not in _NOT_SEARCHABLE]

OUTPUT_CSV = "trials.csv"
OUTPUT_PNG = "population.png"
BEST_MODEL = "best_model"
FLAGFILE = "run_lfads.flags"
SETTINGS = "search.json"

DESCRIPTION = """\
lfads_tune: hyperparameter search for LFADS on Ray Tune (random search or population-based
training), on this machine or on a Ray cluster.

Takes run_lfads's flags (the data, the model, --max_epochs: each trial's budget, which is
required) and a search space over some of them, written with their flag names:

  learning_rate_init: {loguniform: [1e-4, 1e-2]}
  keep_prob: {uniform: [0.7, 1.0]}

Each trial trains with run_lfads's training loop in its own save folder and reports
sv_recon (with --sv_rate > 0) or else the validation reconstruction cost; lower is better.
--search=pbt can perturb only learning_rate_init, keep_prob, cd_rate, kl_ic_weight,
kl_co_weight, l2_gen_scale and l2_con_scale (flags that change the model's shape need
--search=random). Writes into --lfads_save_dir: trials.csv, best_model/ (a save folder
for every run_lfads kind: run_lfads --flagfile=<dir>/best_model/run_lfads.flags
--kind=posterior_sample_and_average), population.png and Ray Tune's trial folders.
Starting the same command again resumes an interrupted search.

  lfads_tune --search=pbt --search_space=space.yaml --num_samples=8 \\
      --perturbation_interval=25 --max_epochs=200 --data_dir=/tmp/rnn_synth_data_v1.0/ \\
      --data_filename_stem=chaotic_rnn_inputs_g2p5 --lfads_save_dir=/tmp/lfads_search

%s
""" % textwrap.fill("Searchable flags: %s." % ", ".join(SEARCHABLE), width=88)


# ------------------------------------------------------------------ before Ray
class Plan(dict):
    """Everything a search needs, checked before Ray starts (see `prepare`)."""

    __getattr__ = dict.__getitem__


def _flag_types():
    return {name: FLAGS[name].flag_type() for name in run_flags.defined_flag_names()}


def _settings():
    return {name: FLAGS[name].value for _, names in SEARCH_GROUPS for name in names}


def prepare(base_hps, settings):
    """Checks the settings, the flags, the search space and the data, without Ray.

    base_hps: hparams.build_hps() of the command line (every trial's start).
    settings: {flag: value} of SEARCH_GROUPS.
    Returns a Plan; raises SearchError, search_space.SpaceError, errors.UsageError or
    errors.DataError (all one line).
    """
    s = dict(settings)
    if s["search"] not in ("random", "pbt"):
        raise SearchError("--search=%s: expected random or pbt" % s["search"])
    for name in ("num_samples", "perturbation_interval", "report_every_n_epochs"):
        if s[name] < 1:
            raise SearchError("--%s=%d: must be a positive integer" % (name, s[name]))
    if not s["cpus_per_trial"] > 0:
        raise SearchError("--cpus_per_trial=%g: must be positive" % s["cpus_per_trial"])
    if s["num_cpus"] < 0:
        raise SearchError("--num_cpus=%d: must not be negative" % s["num_cpus"])
    if s["num_cpus"] and s["ray_address"]:
        raise SearchError("--num_cpus: only for a Ray started here; a cluster "
                          "(--ray_address) has its own")
    if s["search"] == "pbt" and s["perturbation_interval"] % s["report_every_n_epochs"]:
        raise SearchError("--perturbation_interval=%d: must be a multiple of "
                          "--report_every_n_epochs=%d (trials are compared when they "
                          "report)" % (s["perturbation_interval"],
                                       s["report_every_n_epochs"]))
    if not s["search_space"]:
        raise SearchError("--search_space: required, a YAML or JSON file (lfads_tune --help "
                          "shows the format)")
    hps = hparams.HParams(base_hps)
    hps.kind = "train"
    if hps.get("max_epochs") is None:
        raise SearchError("--max_epochs: required, each trial's number of epochs")
    hparams.validate_hps(hps)

    path = s["search_space"]
    params = search_space.parse(search_space.read_file(path), path, _flag_types(),
                                set(SEARCHABLE))
    if s["search"] == "pbt":
        search_space.check_perturbable(params, path, tunables.PERTURBABLE)

    datasets, notes = checks.load_datasets(
        hps.data_dir, hps.data_filename_stem, observation.for_dist(hps.output_dist),
        ext_input_dim=hps.ext_input_dim, factors_dim=hps.factors_dim,
        batch_size=hps.batch_size, kind="train", nan_is_missing=hps.nan_is_missing)
    for note in notes:
        print("note: " + note)

    def check(values):
        trial = hparams.HParams(hps)
        trial.update(values)
        hparams.validate_hps(trial)
        if "factors_dim" in values or "batch_size" in values:
            checks.validate_datasets(datasets, observation.for_dist(trial.output_dist), trial.ext_input_dim,
                                    factors_dim=trial.factors_dim,
                                    batch_size=trial.batch_size,
                                    nan_is_missing=trial.nan_is_missing)
        hparams.add_derived_hps(trial, datasets)

    search_space.check_values(params, path, check)
    out = os.path.abspath(hps.lfads_save_dir)
    storage = s["storage_path"] or os.path.dirname(out.rstrip(os.sep))
    if "://" not in storage:
        storage = os.path.abspath(storage)
    name = os.path.basename(out.rstrip(os.sep))
    if s["search"] == "pbt" and hps.max_epochs <= s["perturbation_interval"]:
        print("note: --max_epochs=%d is not above --perturbation_interval=%d: no trial "
              "will exploit another" % (hps.max_epochs, s["perturbation_interval"]))
    # TensorFlow's threads in a trial (run_lfads's flags, not hyperparameters): one per
    # op for training, as run_lfads; ops at once: the trial's CPUs.
    intra, inter = FLAGS["intra_op_threads"].value, FLAGS["inter_op_threads"].value
    threads = (intra if intra >= 0 else 1,
               inter or max(1, int(math.ceil(s["cpus_per_trial"]))))
    return Plan(settings=s, hps=hps, params=params, datasets=datasets, out=out,
                storage=storage, name=name,
                experiment=storage.rstrip("/") + "/" + name,
                metric=search_trial.metric_name(hps), threads=threads)


def settings_record(plan):
    """What search.json holds: what a resumed search must have in common with the first."""
    hps = {k: v for k, v in plan.hps.items() if k not in ("lfads_save_dir",)}
    return json.loads(json.dumps({
        "search": plan.settings["search"], "num_samples": plan.settings["num_samples"],
        "perturbation_interval": plan.settings["perturbation_interval"],
        "report_every_n_epochs": plan.settings["report_every_n_epochs"],
        "space": [[p.name, p.dist, p.args] for p in plan.params], "hps": hps},
        default=str))


def check_resume(plan):
    """Raises SearchError when the folder holds a search started with other settings."""
    path = os.path.join(plan.out, SETTINGS)
    if not os.path.exists(path):
        return
    with open(path) as f:
        old = json.load(f)
    new = settings_record(plan)
    for key in ("search", "num_samples", "perturbation_interval", "report_every_n_epochs",
                "space"):
        if old.get(key) != new[key]:
            raise SearchError("%s holds a search started with another %s; start it with "
                              "the same command, or choose another --lfads_save_dir"
                              % (plan.out, "search space" if key == "space" else
                                 "--" + key))
    differ = sorted(k for k in set(old.get("hps", {})) | set(new["hps"])
                    if old.get("hps", {}).get(k) != new["hps"].get(k))
    if differ:
        raise SearchError("%s holds a search started with another --%s; start it with the "
                          "same command, or choose another --lfads_save_dir"
                          % (plan.out, differ[0]))


# ------------------------------------------------------------------ Ray
def _domain(param, mutation=False):
    """The Ray Tune search domain of a search_space.Param (for PBT's mutations, a
    choice is the list of values, whose neighbours PBT steps to)."""
    from ray import tune
    if param.dist == "uniform":
        return tune.uniform(*param.args)
    if param.dist == "loguniform":
        return tune.loguniform(*param.args)
    if param.dist == "randint":
        return tune.randint(param.args[0], param.args[1] + 1)  # Ray's high is excluded
    return list(param.args) if mutation else tune.choice(list(param.args))


class ClampToSpace:
    """PBT's explore multiplies values by 0.8 or 1.2, which may leave the space (e.g.
    keep_prob above 1): this brings them back to its bounds (custom_explore_fn)."""

    def __init__(self, params):
        self.params = list(params)

    def __call__(self, config):
        for param in self.params:
            if param.name in config:
                config[param.name] = search_space.clamp(param, config[param.name])
        return config


def trial_dirname(trial):
    """Short trial folder names (Ray's default holds every value of the config)."""
    return "trial_" + trial.trial_id


_GRAPHS = search_trial.GraphCache()  # one per process: Ray reuses a trial's process


def _working_dir(trial_id):
    """The trial's folder on the machine it runs on: Ray Tune's trial working directory,
    which it makes the current one (its get_trial_dir() names another folder when a
    trial starts in a new process than when it starts in a reused one)."""
    if os.environ.get("RAY_CHDIR_TO_TRIAL_DIR", "1") != "0":
        return os.getcwd()
    return os.path.join(tempfile.gettempdir(), "lfads_tune_trials", trial_id)


def lfads_trial(config, setup):
    """The Ray Tune function trainable: one trial (search_trial.run)."""
    from ray import tune
    trial_id = tune.get_context().get_trial_id()
    save_dir = os.path.join(_working_dir(trial_id), search_trial.SAVE_FOLDER)
    hps = search_trial.trial_hps(setup["hps"], config, save_dir, setup["search_keys"],
                                 setup["report_every"])
    datasets = setup["datasets"]
    hparams.add_derived_hps(hps, datasets)
    runtime.quiet_tensorflow_import()
    runtime.configure_threads(*setup["threads"])
    restored = None
    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as folder:
            restored = search_trial.restore_into(folder, save_dir, trial_id, hps,
                                                 setup["search_keys"])

    def report(metrics, folder, info):
        with tempfile.TemporaryDirectory(prefix="lfads_report_") as tmp:
            search_trial.export_checkpoint(folder, tmp, info, hps.csv_log)
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(tmp))

    make_plotter = None
    if hps.plot_every_n_epochs > 0:
        from lfads_tf2.evaluate import kinds
        make_plotter = kinds.ExamplePlotter
    search_trial.run(hps, datasets, trial_id, restored, report, _GRAPHS, make_plotter)


def _token_available():
    return bool(os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")
                or os.path.exists(os.path.expanduser(os.path.join("~", ".ray",
                                                                  "auth_token"))))


def _check_reachable(address):
    """A one-line error at once when nothing listens at HOST:PORT (ray.init would retry
    for a minute or more)."""
    import socket
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise SearchError("--ray_address=%s: expected HOST:PORT, e.g. 192.168.1.10:6379 "
                          "(what `ray start --head` prints)" % address)
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as e:
        raise SearchError("--ray_address=%s: cannot connect (%s); is `ray start --head` "
                          "running there?" % (address, e.strerror or e)) from None


def start_ray(settings):
    """Connects to --ray_address or starts Ray here; returns True if this call started
    (or connected) it, False when the process already had a Ray session."""
    import ray
    if ray.is_initialized():
        return False
    if settings["ray_address"]:
        _check_reachable(settings["ray_address"])
        # A cluster started with `ray start` uses token authentication; a driver that
        # names its address must ask for it (RAY_AUTH_MODE=token reads the token from
        # ~/.ray/auth_token, RAY_AUTH_TOKEN_PATH or RAY_AUTH_TOKEN). Set only while
        # connecting succeeds: a failed call leaves the process's environment as it was
        # (a later embedded Ray in the same process must not inherit token mode).
        set_mode = "RAY_AUTH_MODE" not in os.environ and _token_available()
        if set_mode:
            os.environ["RAY_AUTH_MODE"] = "token"
        try:
            ray.init(address=settings["ray_address"], logging_level="WARNING")
        except Exception as e:  # noqa: BLE001 - ConnectionError, AuthenticationError, ...
            if set_mode:
                os.environ.pop("RAY_AUTH_MODE", None)
            raise SearchError("--ray_address=%s: cannot connect (%s)"
                              % (settings["ray_address"],
                                 str(e).strip().splitlines()[0][:300])) from None
    else:
        # "local": a Ray of its own, even where `ray start` left the address of another
        # (or of one no longer running) for ray.init() to connect to
        ray.init(address="local", num_cpus=settings["num_cpus"] or None,
                 include_dashboard=False, logging_level="WARNING")
    return True


def make_tuner(plan, resume):
    """A new ray.tune.Tuner for the plan, or (resume) the interrupted one restored."""
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining
    from ray.tune.search.basic_variant import BasicVariantGenerator
    from lfads_tf2.search import history as search_history
    s, hps = plan.settings, plan.hps
    setup = {"hps": hps, "datasets": plan.datasets,
             "search_keys": [p.name for p in plan.params],
             "report_every": s["report_every_n_epochs"], "threads": plan.threads}
    trainable = tune.with_resources(tune.with_parameters(lfads_trial, setup=setup),
                                    {"cpu": s["cpus_per_trial"]})
    if resume:
        print("Resuming the search in %s." % plan.experiment)
        return tune.Tuner.restore(plan.experiment, trainable=trainable,
                                  resume_unfinished=True, resume_errored=True)
    space = {p.name: _domain(p) for p in plan.params}
    seed = hps.get("seed")
    if seed is not None:
        space["seed"] = tune.randint(0, 2 ** 31 - 1)  # each trial's own, drawn from --seed
    scheduler = None
    if s["search"] == "pbt":
        # Synchronous: the population is compared at the same epoch (costs fall with
        # training, so trials compared at different epochs would favour the ones ahead).
        scheduler = PopulationBasedTraining(
            time_attr="epoch", perturbation_interval=s["perturbation_interval"],
            hyperparam_mutations={p.name: _domain(p, mutation=True) for p in plan.params},
            custom_explore_fn=ClampToSpace(plan.params), synch=True)
    tune_config = tune.TuneConfig(
        metric=plan.metric, mode="min", num_samples=s["num_samples"], scheduler=scheduler,
        search_alg=BasicVariantGenerator(random_state=seed), reuse_actors=True,
        trial_dirname_creator=trial_dirname)
    run_config = tune.RunConfig(
        name=plan.name, storage_path=plan.storage,
        checkpoint_config=tune.CheckpointConfig(num_to_keep=checkpoints_to_keep(s)),
        verbose=1,
        callbacks=[search_history.HistoryRecorder(
            os.path.join(plan.out, search_history.HISTORY))])
    return tune.Tuner(trainable, param_space=space, tune_config=tune_config,
                      run_config=run_config)


def checkpoints_to_keep(settings):
    """How many of a trial's newest checkpoints Ray Tune keeps (older ones are deleted).

    Random search resumes from the newest: 3 leave room for one being written. With
    PBT, a trial exploits another's checkpoint of the last perturbation, and the other,
    when there are fewer CPUs than trials, may train on through the next interval (one
    report and checkpoint every --report_every_n_epochs) before the exploiting trial
    starts: that checkpoint must outlive a whole interval's reports, or the exploit
    fails with "does not exist on storage anymore".
    """
    if settings["search"] != "pbt":
        return 3
    return max(3, settings["perturbation_interval"] // settings["report_every_n_epochs"] + 2)


# ------------------------------------------------------------------ outputs
def write_history(rows, out):
    """trials.csv: every report of every trial (search_history.table)."""
    import csv
    from lfads_tf2.search import history as search_history
    header, body = search_history.table(rows)
    path = os.path.join(out, OUTPUT_CSV)
    with utils.atomic_path(path) as tmp:
        with open(tmp, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(header)
            writer.writerows(body)
    return path


def write_figure(rows, metric, out, title=""):
    """population.png: the metric of every trial over epochs, exploits marked."""
    from lfads_tf2.evaluate import figures
    from lfads_tf2.search import history as search_history
    fig = figures.plot_population(search_history.histories(rows, metric), metric,
                                search_history.exploits(rows), title)
    return figures.save_figure(fig, os.path.join(out, OUTPUT_PNG), dpi=120)


def write_best_model(result, plan):
    """Copies the best trial's newest checkpoint to <out>/best_model (the original
    layout) with run_lfads.flags, its flags; returns that folder."""
    dest = os.path.join(plan.out, BEST_MODEL)
    tmp = dest + ".tmp"
    if os.path.isdir(tmp):
        shutil.rmtree(tmp)
    result.checkpoint.to_directory(tmp)
    hps = hparams.HParams(plan.hps)
    hps.update({k: v for k, v in result.config.items() if k in hps})
    hps.lfads_save_dir = dest
    with open(os.path.join(tmp, FLAGFILE), "w") as f:
        f.write("\n".join(run_flags.flagfile_lines(hps)) + "\n")
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    os.replace(tmp, dest)
    return dest


def write_outputs(results, plan):
    """trials.csv, best_model/ and population.png; returns (best result or None, the
    history's rows)."""
    from lfads_tf2.search import history as search_history
    rows = search_history.read(os.path.join(plan.out, search_history.HISTORY))
    write_history(rows, plan.out)
    best = None
    try:
        best = results.get_best_result(metric=plan.metric, mode="min", scope="last")
    except RuntimeError:
        pass  # no trial reported a finite metric
    if best is not None and best.checkpoint is not None:
        write_best_model(best, plan)
    if rows:
        write_figure(rows, plan.metric, plan.out, "%s, %s search, %d trials" % (
            plan.metric, plan.settings["search"], plan.settings["num_samples"]))
    return best, rows


def run_search(plan):
    """Runs the search of a Plan (prepare) on Ray and writes the outputs; a search
    interrupted in the same folder is resumed (Ray Tune's experiment restore).
    Returns (ResultGrid, best Result or None)."""
    try:
        from ray import tune
    except ImportError:
        raise SearchError("lfads_tune needs Ray Tune and PyYAML: pip install -e \".[tune]\" "
                          "(or pip install \"ray[tune]\" pyyaml)") from None
    from lfads_tf2.search import history as search_history
    os.makedirs(plan.out, exist_ok=True)
    resuming = tune.Tuner.can_restore(plan.experiment)
    if resuming:
        check_resume(plan)
    else:
        history = os.path.join(plan.out, search_history.HISTORY)
        if os.path.exists(history):
            os.remove(history)  # of a search that left nothing to resume
    with utils.atomic_path(os.path.join(plan.out, SETTINGS)) as tmp:
        with open(tmp, "w") as f:
            json.dump(settings_record(plan), f, indent=2, sort_keys=True)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    started = start_ray(plan.settings)
    try:
        import ray
        nodes = sorted({n["NodeManagerAddress"] for n in ray.nodes() if n.get("Alive")})
        print("Ray: %s, %d CPUs on %s; trials in %s" % (
            "the cluster at " + plan.settings["ray_address"] if plan.settings["ray_address"]
            else "started here", int(ray.cluster_resources().get("CPU", 0)),
            ", ".join(nodes), plan.experiment))
        results = make_tuner(plan, resuming).fit()
        best, _ = write_outputs(results, plan)
    finally:
        if started:
            import ray
            ray.shutdown()
    failed = [r for r in results if r.error is not None]
    print("%d trials, %d failed. History: %s; figure: %s"
          % (len(results), len(failed), os.path.join(plan.out, OUTPUT_CSV),
             os.path.join(plan.out, OUTPUT_PNG)))
    if best is not None:
        shown = {k: v for k, v in best.config.items() if k != "seed"}
        print("Best trial %s: %s %.4g with %s; its save folder: %s (run_lfads "
              "--flagfile=%s --kind=...)"
              % (best.metrics.get("trial_id"), plan.metric, best.metrics[plan.metric],
                 json.dumps(shown, sort_keys=True), os.path.join(plan.out, BEST_MODEL),
                 os.path.join(plan.out, BEST_MODEL, FLAGFILE)))
    return results, best


def main(argv):
    if len(argv) > 1:
        raise SearchError("unexpected argument %r (lfads_tune takes flags only)" % argv[1])
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    plan = prepare(hparams.build_hps(), _settings())
    results, _ = run_search(plan)
    failed = [r for r in results if r.error is not None]
    if failed:
        print("error: %d of %d trials failed; the first: %s"
              % (len(failed), len(results),
                 str(failed[0].error).strip().splitlines()[-1][:300]), file=sys.stderr)
        return 1
    return 0


def console_main():
    """Entry point of the `lfads_tune` console command."""
    cli.run(main, DESCRIPTION, FLAG_GROUPS, module=sys.modules[__name__],
            errors=(SearchError, search_space.SpaceError, errors.UsageError,
                    errors.DataError, errors.LfadsError))


if __name__ == "__main__":
    # `python -m lfads_tf2.search.lfads_tune`: Ray pickles the trainable and the scheduler's helper
    # by reference, and the trials import them from lfads_tf2.search.lfads_tune, not from __main__.
    for _obj in (lfads_trial, ClampToSpace, trial_dirname):
        _obj.__module__ = "lfads_tf2.search.lfads_tune"
    sys.modules.setdefault("lfads_tf2.search.lfads_tune", sys.modules[__name__])
    console_main()
