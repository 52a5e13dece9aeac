"""End-to-end training tests (issues 2 item 7 and 4 item 7).

A tiny model is trained once per session (lfads_testdata.main_model, a background job
beside the tests before it) and checked
for learning, output files, checkpoints and TensorBoard events; further short runs
cover resuming (also after SIGKILL), the learning-rate reset, read-out-only
training, spike jitter, several datasets, external inputs and Gaussian data.
"""
import concurrent.futures
import contextlib
import glob
import io
import json
import math
import os
import pathlib
import pickle
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

import background
import lfads_testdata as td
from conftest import ROOT

from lfads_tf2.evaluate import kinds
from lfads_tf2.train import checkpoints, steps, loop
import utils

FITLOG_TOKENS = ["epoch", None, "step", None, "total", None, None, "recon", None, None,
                 "kl", None, None, "l2", None, "klweight", None, "l2weight", None]
# Scalars every training epoch writes (spec §9.2 / §16.6; the learning rate has
# the tag LFADS/Learning_rate here, LFADS/Learning_rate_1 in the original).
SCALAR_TAGS = ["LFADS/Total_cost__train_", "LFADS/Total_cost__valid_",
               "LFADS/Reconstruction_cost__train_", "LFADS/Reconstruction_cost__valid_",
               "LFADS/KL_cost__train_", "LFADS/KL_cost__valid_", "LFADS/L2_cost",
               "LFADS/KL_weight", "LFADS/L2_weight", "LFADS/Gradient_global_norm",
               "LFADS/Corr_cost"]


# the shared models, trained by background jobs (lfads_testdata, tests/background.py)
BACKGROUND = {"main": td.train_main_model, "multi": td.train_multi_model}


@pytest.fixture(scope="module")
def main():
    return td.main_model()


@pytest.fixture(scope="module")
def multi():
    return td.multi_model()


def fast_flags(data_dir, save_dir):
    return ["--data_dir=" + str(data_dir), "--data_filename_stem=" + td.STEM,
            "--lfads_save_dir=" + str(save_dir)] + td.TINY_NO_CONTROLLER


def model_weights(bundle):
    return {v.name: v.numpy() for v in bundle.model.variables}


all_state = td.bundle_state


def assert_same_arrays(a, b, what=""):
    assert sorted(a) == sorted(b), what
    differ = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not differ, "%s: differ: %s" % (what, differ[:10])


def finite_fitlog(save_dir):
    recs = [td.fitlog_record(line) for line in td.fitlog_lines(save_dir)]
    for r in recs:
        assert all(math.isfinite(v) for v in r.values()), r
    return recs


# ------------------------------------------------------------------ learning
def test_learns_better_than_constant_rates(main, capsys):
    data = main["data"]
    valid, truth = data["valid_data"], data["valid_truth"]
    const_nll = td.best_constant_rate_nll(valid)
    truth_nll = td.poisson_nll_per_trial(valid, truth)
    last = td.fitlog_record(td.fitlog_lines(main["save_dir"])[-1])
    assert last["epoch"] == td.MAIN_EPOCHS - 1
    assert last["step"] == td.MAIN_EPOCHS * 10
    # the validation reconstruction cost (Poisson NLL per trial) of the last epoch
    assert last["recon_va"] < const_nll - 15.0, (last, const_nll, truth_nll)

    td.run(main["flags"] + ["--kind=posterior_push_mean"])
    out = utils.read_data(os.path.join(
        main["save_dir"], "model_runs_set0_valid_posterior_push_mean"))
    rates = out["output_dist_params"]
    model_nll = td.poisson_nll_per_trial(valid, rates)
    with capsys.disabled():
        print("\nvalid NLL: constant %.1f, model push-mean %.1f, truth %.1f; corr with "
              "truth: counts %.3f, rates %.3f" % (const_nll, model_nll, truth_nll,
                                                  td.corr(valid, truth),
                                                  td.corr(rates, truth)))
    assert model_nll < const_nll - 15.0
    assert td.corr(rates, truth) > td.corr(valid, truth) + 0.02


# ------------------------------------------------------------------ files of a run
def test_train_writes_fitlog_with_original_tokens(main):
    lines = td.fitlog_lines(main["save_dir"])
    assert len(lines) == td.MAIN_EPOCHS
    for i, line in enumerate(lines):
        tok = td.fitlog_tokens(line)
        assert len(tok) == len(FITLOG_TOKENS), line
        for got, want in zip(tok, FITLOG_TOKENS):
            if want is not None:
                assert got == want, line
        assert int(tok[1]) == i and int(tok[3]) == 10 * (i + 1)
        assert re.fullmatch(r"-?\d+\.\d{5}", tok[14]), line   # l2 cost %.5f
        for j in (5, 6, 8, 9, 11, 12, 16, 18):
            assert re.fullmatch(r"-?\d+\.\d{2}", tok[j]), line
    # ramps of 20 steps with 10 steps an epoch
    recs = finite_fitlog(main["save_dir"])
    assert recs[0]["kl_weight"] == pytest.approx(0.45)
    assert recs[-1]["kl_weight"] == 1.0 and recs[-1]["l2_weight"] == 1.0


def test_train_writes_both_checkpoint_state_files(main):
    save_dir = main["save_dir"]
    for state in ("checkpoint", "checkpoint_lve"):
        assert os.path.isfile(os.path.join(save_dir, state))
        paths = checkpoints.read_checkpoint_state(save_dir, state)
        assert paths
        for p in paths:
            assert os.path.exists(p + ".index"), p
    latest = checkpoints.read_checkpoint_state(save_dir, "checkpoint")[-1]
    assert latest.endswith("lfads_vae.ckpt-%d" % (td.MAIN_EPOCHS * 10))
    lve = checkpoints.read_checkpoint_state(save_dir, "checkpoint_lve")[-1]
    assert os.path.basename(lve).startswith("lfads_vae_lve.ckpt-")


def test_max_ckpt_to_keep_and_lve_honoured(main):
    """--max_ckpt_to_keep=3 and --max_ckpt_to_keep_lve=2 (the original used
    max_ckpt_to_keep for both, spec Q7)."""
    save_dir = main["save_dir"]
    regular = glob.glob(os.path.join(save_dir, "lfads_vae.ckpt-*.index"))
    lve = glob.glob(os.path.join(save_dir, "lfads_vae_lve.ckpt-*.index"))
    assert len(checkpoints.read_checkpoint_state(save_dir, "checkpoint")) == 3
    assert len(regular) == 3
    assert len(checkpoints.read_checkpoint_state(save_dir, "checkpoint_lve")) == 2
    assert len(lve) == 2
    # enough LVE checkpoints were written for the limit to matter: count the
    # improvements of the validation total once both ramps are at 1 (fitlog values
    # are rounded, so this is a lower bound of what the run saw)
    recs = td.fitlog_lines(save_dir)
    best, improvements = np.inf, 0
    for i, line in enumerate(recs):
        r = td.fitlog_record(line)
        if i >= 1 and r["kl_weight"] >= 1 and r["l2_weight"] >= 1 and r["total_va"] < best:
            best = r["total_va"]
            improvements += 1
    assert improvements > 2


def test_hyperparameter_file(main):
    path = os.path.join(main["save_dir"], "hyperparameters-0.txt")
    with open(path) as f:
        hps = json.load(f)
    assert hps["_clip_value"] == 80
    for key, value in hps.items():
        assert not isinstance(value, bool), "%s is a JSON boolean" % key
    assert hps["do_causal_controller"] == "false"
    assert hps["do_train_readin"] == "true"
    assert hps["gen_dim"] == 24 and hps["kind"] == "train"
    assert hps["dataset_names"] == ["set0"] and hps["num_steps"] == 25
    assert utils.read_hps_json(path)["do_train_readin"] is True


def _read_events(log_dir):
    tags = {}
    files = glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))
    assert files, "no event files in %s" % log_dir
    for fname in files:
        for event in tf.compat.v1.train.summary_iterator(fname):
            for v in event.summary.value:
                if v.HasField("simple_value"):
                    value = v.simple_value
                else:
                    value = tf.make_ndarray(v.tensor)
                tags.setdefault(v.tag, []).append((event.step, value))
    return tags


def test_tensorboard_events_hold_scalar_tags(main):
    tags = _read_events(os.path.join(main["save_dir"], "lfads_log"))
    missing = [t for t in SCALAR_TAGS if t not in tags]
    assert not missing, (missing, sorted(tags))
    assert "LFADS/Learning_rate" in tags or "LFADS/Learning_rate_1" in tags
    assert "LFADS/AR_Autocorrelation_taus_0" in tags and "LFADS/AR_Variances_0" in tags
    steps = [s for s, _ in tags["LFADS/Total_cost__valid_"]]
    assert steps == [10 * (i + 1) for i in range(td.MAIN_EPOCHS)]
    last = float(np.asarray(tags["LFADS/Reconstruction_cost__valid_"][-1][1]))
    assert last == pytest.approx(td.fitlog_record(
        td.fitlog_lines(main["save_dir"])[-1])["recon_va"], abs=0.006)


# ------------------------------------------------------------------ checkpoints
def test_checkpoint_round_trip(main):
    """Restoring the last checkpoint gives exactly the trained variables."""
    restored = td.run(main["flags"] + ["--kind=write_model_params",
                                       "--output_filename_stem=roundtrip"])
    # main["state"]: the variables of the trained bundle, kept by the training job
    assert_same_arrays(all_state(restored), main["state"], "restore")
    assert int(restored.state.global_step.numpy()) == td.MAIN_EPOCHS * 10
    assert int(restored.state.epoch.numpy()) == td.MAIN_EPOCHS


def _epoch_in_checkpoint(path):
    return int(tf.train.load_checkpoint(path).get_tensor(
        "state/epoch/.ATTRIBUTES/VARIABLE_VALUE"))


def _resume_flags(root, name):
    # The L2 penalty switches on at step 7 (epoch 2, the first after the restart) with
    # a large scale, so epoch 2 surely costs more than epoch 1 whatever the draws.
    common = ["--seed=5", "--learning_rate_n_to_compare=1", "--l2_start_step=6",
              "--l2_increase_steps=1", "--l2_gen_scale=20000"]
    return fast_flags(root / "data", root / name) + common


def _on_a_copy(flags, src, dest):
    """flags with --lfads_save_dir=dest, dest a copy of the folder src."""
    shutil.copytree(str(src), str(dest))
    return [f for f in flags if not f.startswith("--lfads_save_dir")] + [
        "--lfads_save_dir=" + str(dest)]


def resume_runs(root):
    """Background job (tests/background.py): 2 epochs, then restarted to 4 ('split'), and
    4 epochs in one go ('whole'); then copies of 'whole' trained a fifth epoch with
    --do_train_io_only ('io_only') and with --do_reset_learning_rate ('reset'). What the
    tests check of the bundles and of the restart's stdout goes to root/runs.pkl."""
    root = pathlib.Path(root)
    td.write_dataset(root / "data", seed=3, n_train=48, n_valid=16)
    res = {}
    first = td.run(_resume_flags(root, "split") + ["--max_epochs=2"])
    res["first_step"] = int(first.state.global_step.numpy())
    res["first_lr"] = float(first.state.learning_rate.numpy())
    res["first_costs"] = first.state.train_costs.numpy().copy()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        resumed = td.run(_resume_flags(root, "split") + ["--max_epochs=4"])
    res["resume_stdout"] = out.getvalue()
    whole = td.run(_resume_flags(root, "whole") + ["--max_epochs=4"])
    for name, bundle in (("resumed", resumed), ("whole", whole)):
        res[name] = {"step": int(bundle.state.global_step.numpy()),
                     "epoch": int(bundle.state.epoch.numpy()),
                     "learning_rate": bundle.state.learning_rate.numpy(),
                     "train_costs": bundle.state.train_costs.numpy(),
                     "all_state": all_state(bundle), "weights": model_weights(bundle)}
    flags = _on_a_copy(_resume_flags(root, "whole"), root / "whole", root / "io_only")
    bundle = td.run(flags + ["--max_epochs=5", "--do_train_io_only"])
    res["io_only"] = {"step": int(bundle.state.global_step.numpy()),
                      "weights": model_weights(bundle),
                      "train_vars": sorted(v.name for v in bundle.train_vars)}
    flags = _on_a_copy(_resume_flags(root, "whole"), root / "whole", root / "reset")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bundle = td.run(flags + ["--max_epochs=5", "--learning_rate_init=0.003",
                                 "--do_reset_learning_rate",
                                 "--learning_rate_n_to_compare=50"])
    res["reset"] = {"stdout": out.getvalue(), "step": int(bundle.state.global_step.numpy()),
                    "learning_rate": float(bundle.state.learning_rate.numpy())}
    with open(str(root / "runs.pkl"), "wb") as f:
        pickle.dump(res, f)


BACKGROUND["resumed"] = resume_runs


@pytest.fixture(scope="module")
def resumed():
    """resume_runs, run by a background job beside earlier tests."""
    root = pathlib.Path(background.result(resume_runs))
    with open(str(root / "runs.pkl"), "rb") as f:
        res = pickle.load(f)
    return dict(res, root=root, whole_flags=_resume_flags(root, "whole"))


def test_resume_continues_from_the_checkpoint(resumed):
    assert resumed["first_step"] == 6
    out = resumed["resume_stdout"]
    assert re.search(r"Restored from \S+lfads_vae\.ckpt-6 \(epoch 2, step 6\)", out), out
    assert resumed["resumed"]["step"] == 12
    assert resumed["resumed"]["epoch"] == 4
    lines = td.fitlog_lines(str(resumed["root"] / "split"))
    assert [td.fitlog_record(x)["epoch"] for x in lines] == [0, 1, 2, 3]
    assert [td.fitlog_record(x)["step"] for x in lines] == [3, 6, 9, 12]
    assert os.path.exists(str(resumed["root"] / "split" / "hyperparameters-6.txt"))


def test_resume_carries_learning_rate_and_plateau_history(resumed):
    resumed_state, whole = resumed["resumed"], resumed["whole"]
    np.testing.assert_array_equal(resumed_state["train_costs"], whole["train_costs"])
    assert resumed_state["learning_rate"] == whole["learning_rate"]
    # With --learning_rate_n_to_compare=1 the history keeps the last 2 entries. The
    # first epoch after the restart costs more than epoch 1 before it (the L2 switched
    # on), so the carried history makes it decay the rate; a forgotten one could not.
    assert resumed["first_lr"] == np.float32(0.02)
    assert resumed["first_costs"].shape == (2,)
    assert resumed_state["learning_rate"] == np.float32(0.02) * np.float32(0.95)
    assert resumed_state["train_costs"][0] == np.inf
    assert "Decreasing learning rate to 0.019000." in resumed["resume_stdout"]


def test_resume_with_seed_matches_uninterrupted_run_bit_for_bit(resumed):
    root = resumed["root"]
    assert td.fitlog_lines(str(root / "split")) == td.fitlog_lines(str(root / "whole"))
    assert_same_arrays(resumed["resumed"]["all_state"], resumed["whole"]["all_state"],
                       "final state")
    for state in ("checkpoint", "checkpoint_lve"):
        a = checkpoints.read_checkpoint_state(str(root / "split"), state)
        b = checkpoints.read_checkpoint_state(str(root / "whole"), state)
        assert [os.path.basename(p) for p in a] == [os.path.basename(p) for p in b]
        if a:
            assert_same_arrays(td.checkpoint_values(a[-1]), td.checkpoint_values(b[-1]),
                               state)


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


def test_do_reset_learning_rate(resumed):
    reset = resumed["reset"]  # 'whole' trained one more epoch, the rate reset
    assert "Learning rate reset to 0.003" in reset["stdout"]
    assert reset["learning_rate"] == pytest.approx(0.003)
    assert reset["step"] == 15


@pytest.fixture(scope="module")
def io_only(resumed):
    """The 4-epoch model of `resumed` trained one more epoch with --do_train_io_only."""
    save_dir = str(resumed["root"] / "io_only")
    flags = [f for f in resumed["whole_flags"] if not f.startswith("--lfads_save_dir")]
    return dict(resumed["io_only"], flags=flags + ["--lfads_save_dir=" + save_dir],
                save_dir=save_dir)


def test_do_train_io_only_changes_only_readout(resumed, io_only):
    before = resumed["whole"]["weights"]
    after = io_only["weights"]
    assert sorted(before) == sorted(after)
    changed = sorted(k for k in before if not np.array_equal(before[k], after[k]))
    assert changed == ["LFADS/glm/fac_2_logrates_set0/W:0",
                       "LFADS/glm/fac_2_logrates_set0/b:0"]
    assert io_only["train_vars"] == changed
    assert io_only["step"] == 15


def test_evaluate_after_train_io_only_without_the_flag(io_only):
    td.run(io_only["flags"] + ["--kind=posterior_push_mean"])
    assert os.path.exists(os.path.join(io_only["save_dir"],
                                       "model_runs_set0_valid_posterior_push_mean"))


def test_evaluate_after_train_io_only_with_the_flag(io_only):
    bundle = td.run(io_only["flags"] + ["--kind=posterior_push_mean",
                                        "--do_train_io_only"])
    assert_same_arrays(model_weights(bundle), io_only["weights"], "weights")


# ------------------------------------------------------------------ damaged checkpoints
ARCH_KEY = "state/arch_json/.ATTRIBUTES/VARIABLE_VALUE"


@pytest.fixture(scope="module")
def damage_base(tmp_path_factory):
    """3 epochs of 2 steps (checkpoints -2, -4, -6, and lowest-validation ones), and a
    checkpoint of another model (gen_dim 20) whose architecture record says ours."""
    root = tmp_path_factory.mktemp("damage")
    td.write_dataset(root / "data", seed=11, n_train=32, n_valid=16)
    common = ["--seed=3", "--kl_increase_steps=2", "--l2_increase_steps=2"]
    flags = fast_flags(root / "data", root / "base") + common
    td.run(flags + ["--max_epochs=3"])
    other = td.run(fast_flags(root / "data", root / "other") + common
                   + ["--gen_dim=20", "--max_epochs=0"])
    base = str(root / "base")
    other.state.arch_json.assign(tf.train.load_checkpoint(
        os.path.join(base, "lfads_vae.ckpt-6")).get_tensor(ARCH_KEY))
    other.checkpoint.write(str(root / "other_model" / "ckpt"))
    listed = checkpoints.read_checkpoint_state(base, "checkpoint")
    assert [os.path.basename(p) for p in listed] \
        == ["lfads_vae.ckpt-2", "lfads_vae.ckpt-4", "lfads_vae.ckpt-6"]
    assert checkpoints.read_checkpoint_state(base, "checkpoint_lve")
    return {"root": root, "base": base, "other": str(root / "other_model" / "ckpt"),
            "flags": [f for f in flags if not f.startswith("--lfads_save_dir=")]}


def _truncate(path, fraction=3):
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // fraction)


# case -> (what it does to the newest regular checkpoint -6 or the state file, the
# file the message names, a word of the reason)
DAMAGE = {
    "truncated_data": ("lfads_vae.ckpt-6", "truncated or damaged"),
    "deleted_index": ("lfads_vae.ckpt-6", "index file missing"),
    "index_of_another_model": ("lfads_vae.ckpt-6", "damaged"),
    "tensors_of_another_shape": ("lfads_vae.ckpt-6", "the model's is float32"),
    "garbage_state_file": ("checkpoint", "state file unreadable"),
    "empty_state_file": ("checkpoint", "state file unreadable (empty)"),
}


def _damage(base, save_dir, case, other):
    """A copy of the base folder with one kind of damage."""
    shutil.copytree(base["base"], str(save_dir))
    newest = os.path.join(str(save_dir), "lfads_vae.ckpt-6")
    data = newest + ".data-00000-of-00001"
    if case == "truncated_data":
        _truncate(data)
    elif case == "deleted_index":
        os.remove(newest + ".index")
    elif case == "index_of_another_model":
        shutil.copy(other + ".index", newest + ".index")
    elif case == "tensors_of_another_shape":
        shutil.copy(other + ".index", newest + ".index")
        shutil.copy(other + ".data-00000-of-00001", data)
    elif case == "garbage_state_file":
        (save_dir / "checkpoint").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00garbage")
    elif case == "empty_state_file":
        (save_dir / "checkpoint").write_text("")
    else:
        raise ValueError(case)


def _checkpoint_equals_model(bundle, path):
    saved = td.checkpoint_values(path)
    variables = checkpoints.checkpoint_keys(bundle.checkpoint)
    assert len(variables) == len(saved) > 50
    for key, var in variables.items():
        np.testing.assert_array_equal(var.numpy(), saved[key], err_msg=key)


@pytest.mark.parametrize("case", ["truncated_data", "deleted_index",
                                  "index_of_another_model", "tensors_of_another_shape",
                                  "garbage_state_file"])
def test_training_resumes_from_the_newest_readable_checkpoint(damage_base, tmp_path,
                                                              capsys, case):
    """One note naming the damaged file, then training restores exactly -4, cuts the
    fitlog and the state file back to it and continues. Only the truncated case
    trains on (each continued run costs a trace): the seeded run replays epoch 2 and
    ends with the very checkpoint, state files and fitlog of the undamaged run."""
    replay = case == "truncated_data"
    save = tmp_path / "save"
    _damage(damage_base, save, case, damage_base["other"])
    if case == "garbage_state_file":  # and the newest checkpoint in the folder cut short
        _truncate(str(save / "lfads_vae.ckpt-6.data-00000-of-00001"))
    capsys.readouterr()
    bundle = td.run(damage_base["flags"] + ["--lfads_save_dir=" + str(save),
                                            "--max_epochs=%d" % (3 if replay else 2)])
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "unreadable" in line]
    named, reason = DAMAGE[case]
    older = os.path.join(str(save), "lfads_vae.ckpt-4")
    assert len(notes) == 1, out
    assert notes[0].startswith("note: %s: " % os.path.join(str(save), named)), notes
    assert reason in notes[0] and notes[0].endswith(
        "; resuming from %s (step 4)" % older), notes
    assert "Restored from %s (epoch 2, step 4)." % older in out
    assert not (save / "lfads.lock").exists()
    base = damage_base["base"]
    if not replay:
        _checkpoint_equals_model(bundle, older)
        assert td.fitlog_lines(str(save)) == td.fitlog_lines(base)[:2]
        assert checkpoints.read_checkpoint_state(str(save), "checkpoint") == [
            os.path.join(str(save), "lfads_vae.ckpt-%d" % s) for s in (2, 4)]
        return
    assert "Epoch:2, step:6" in out and "Epoch:1," not in out
    assert td.fitlog_lines(str(save)) == td.fitlog_lines(base)
    for state in ("checkpoint", "checkpoint_lve"):
        got = checkpoints.read_checkpoint_state(str(save), state)
        want = checkpoints.read_checkpoint_state(base, state)
        assert [os.path.basename(p) for p in got] == [os.path.basename(p) for p in want]
    assert_same_arrays(td.checkpoint_values(os.path.join(str(save), "lfads_vae.ckpt-6")),
                       td.checkpoint_values(os.path.join(base, "lfads_vae.ckpt-6")), case)


def test_training_with_no_readable_checkpoint_stops(damage_base, tmp_path):
    """All checkpoint files the state file lists are gone: an error, not a fresh start."""
    save = tmp_path / "save"
    shutil.copytree(damage_base["base"], str(save))
    for name in os.listdir(str(save)):
        if name.startswith("lfads_vae.ckpt-"):
            os.remove(str(save / name))
    before = sorted(os.listdir(str(save)))
    with pytest.raises(utils.LfadsError) as err:
        td.run(damage_base["flags"] + ["--lfads_save_dir=" + str(save), "--max_epochs=4"])
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(save) + ": no readable checkpoint"), msg
    assert "to start fresh" in msg and "lfads_vae.ckpt-6" in msg, msg
    assert sorted(os.listdir(str(save))) == before  # nothing written, lock released


def test_training_with_other_architecture_flags_still_names_the_flag(damage_base,
                                                                     tmp_path):
    """Every checkpoint fits other flags: that is the error, not 'none readable'."""
    save = tmp_path / "save"
    _damage(damage_base, save, "truncated_data", damage_base["other"])
    with pytest.raises(utils.LfadsError) as err:
        td.run(damage_base["flags"] + ["--lfads_save_dir=" + str(save), "--max_epochs=4",
                                       "--gen_dim=32"])
    msg = str(err.value)
    assert "\n" not in msg and "gen_dim=24 but the flags give gen_dim=32" in msg, msg


def _outputs(save_dir):
    return sorted(f for f in os.listdir(str(save_dir))
                  if f.startswith("model_runs_") or f.endswith(".tmp"))


@pytest.mark.parametrize("case", sorted(DAMAGE) + ["truncated_lve", "truncated_by_name"])
def test_evaluation_of_a_damaged_checkpoint_is_a_one_line_error(damage_base, tmp_path,
                                                                case):
    """No silent fallback: the checkpoint asked for, or an error naming it."""
    save = tmp_path / "save"
    extra = []
    if case == "truncated_lve":
        _damage(damage_base, save, "truncated_data", damage_base["other"])
        lve = checkpoints.read_checkpoint_state(str(save), "checkpoint_lve")[-1]
        _truncate(lve + ".data-00000-of-00001")
        extra, named, reason = ["--checkpoint_pb_load_name=checkpoint_lve"], lve, "truncated"
    elif case == "truncated_by_name":
        _damage(damage_base, save, "truncated_data", damage_base["other"])
        extra = ["--checkpoint_pb_load_name=lfads_vae.ckpt-6"]
        named, reason = os.path.join(str(save), "lfads_vae.ckpt-6"), "truncated"
    else:
        _damage(damage_base, save, case, damage_base["other"])
        named, reason = DAMAGE[case]
        named = os.path.join(str(save), named)
    before = sorted(os.listdir(str(save)))
    with pytest.raises(utils.LfadsError) as err:
        td.run(damage_base["flags"] + ["--lfads_save_dir=" + str(save),
                                       "--kind=posterior_push_mean"] + extra)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(named + ": "), msg
    assert reason in msg, msg
    assert sorted(os.listdir(str(save))) == before  # no output, nothing else written


@pytest.mark.parametrize("absolute", [False, True])
def test_evaluation_of_a_checkpoint_picked_by_its_prefix(damage_base, tmp_path, absolute):
    """--checkpoint_pb_load_name=lfads_vae.ckpt-4 restores exactly that checkpoint."""
    save = tmp_path / "save"
    _damage(damage_base, save, "truncated_data", damage_base["other"])
    path = os.path.join(str(save), "lfads_vae.ckpt-4")
    bundle = td.run(damage_base["flags"] + [
        "--lfads_save_dir=" + str(save), "--kind=write_model_params",
        "--checkpoint_pb_load_name=" + (path if absolute else "lfads_vae.ckpt-4")])
    assert int(bundle.state.global_step.numpy()) == 4
    _checkpoint_equals_model(bundle, path)
    assert os.path.isfile(str(save / "model_params"))


def test_command_line_evaluation_of_a_truncated_checkpoint(damage_base, tmp_path):
    """As a user sees it: exit status 2, one line, no traceback, no output file."""
    save = tmp_path / "save"
    _damage(damage_base, save, "truncated_data", damage_base["other"])
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run(
        [sys.executable, "run_lfads.py", "--kind=posterior_push_mean",
         "--lfads_save_dir=" + str(save)] + damage_base["flags"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr[-3000:]
    newest = os.path.join(str(save), "lfads_vae.ckpt-6")
    assert lines[0].startswith("error: %s: checkpoint unreadable (data file truncated"
                               % newest), lines
    assert lines[0].endswith("--checkpoint_pb_load_name=lfads_vae.ckpt-4"), lines
    assert _outputs(save) == []


# ------------------------------------------------------------------ variants
def test_jitter_training_runs(tmp_path, monkeypatch):
    """--temporal_spike_jitter_width: every training batch is jittered before the step sees
    it (spikes moved, each trial's count per neuron kept); validation data never are."""
    data = td.write_dataset(tmp_path / "data", seed=7, n_train=32, n_valid=16)
    train_bxtxd = np.asarray(data["train_data"])
    jitter_calls, fed = [], []
    real_jitter, real_call_step = loop.jitter_spikes, steps.call_step

    def spy_jitter(counts_bxtxd, width, rs, **kwargs):
        jitter_calls.append(width)
        return real_jitter(counts_bxtxd, width, rs, **kwargs)

    def spy_call_step(step, hps, name, batch):
        fed.append(np.array(batch["data"]))
        return real_call_step(step, hps, name, batch)

    monkeypatch.setattr(loop, "jitter_spikes", spy_jitter)
    monkeypatch.setattr(steps, "call_step", spy_call_step)
    bundle = td.run(fast_flags(tmp_path / "data", tmp_path / "save")
                    + ["--seed=1", "--max_epochs=2", "--temporal_spike_jitter_width=2"])
    assert int(bundle.state.global_step.numpy()) == 4
    assert len(finite_fitlog(str(tmp_path / "save"))) == 2
    # validation batches come from the valid split unchanged; all others are training's
    valid_rows = {row.tobytes() for row in np.asarray(data["valid_data"], np.float32)}
    is_valid = [all(row.astype(np.float32).tobytes() in valid_rows for row in batch)
                for batch in fed]
    train_fed = [batch for batch, v in zip(fed, is_valid) if not v]
    assert sum(is_valid) >= 2  # at least one validation pass an epoch
    # 2 epochs x 2 batches of 16 trials, each jittered by the flag's width
    assert jitter_calls == [2] * 4 and len(train_fed) == 4
    raw_rows = {row.tobytes() for row in train_bxtxd.astype(np.float32)}
    totals = {row.sum(axis=0).tobytes() for row in train_bxtxd.astype(np.float32)}
    for batch in train_fed:
        batch = batch.astype(np.float32)
        assert batch.shape == (16,) + train_bxtxd.shape[1:]
        # each trial keeps its spike count per neuron: it is one of the training trials
        assert all(row.sum(axis=0).tobytes() in totals for row in batch)
        # ... with its spikes moved: no row is a training trial as stored
        assert not any(row.tobytes() in raw_rows for row in batch)


def test_multi_dataset_training_has_a_readin_per_dataset(multi):
    params = multi["params"]  # evaluation.model_params of the trained bundle
    F = td.MULTI_FACTORS
    for name, D in td.MULTI_DIMS.items():
        w_in = params["LFADS_x_2_infac_%s_W:0" % name]
        assert w_in.shape == (D, F)
        assert params["LFADS_glm_fac_2_logrates_%s_W:0" % name].shape == (F, D)
        # initialised from the alignment matrix, then trained a little
        align = multi["data"][name]["alignment_matrix_cxf"]
        assert not np.array_equal(w_in, align.astype(np.float32))
        assert np.corrcoef(w_in.ravel(), align.ravel())[0, 1] > 0.9
    # 2 datasets x 2 batches of 16 trials x 2 epochs
    assert multi["step"] == 8
    assert len(finite_fitlog(multi["save_dir"])) == 2
    with open(os.path.join(multi["save_dir"], "hyperparameters-0.txt")) as f:
        hps = json.load(f)
    assert hps["dataset_dims"] == td.MULTI_DIMS


@pytest.mark.parametrize("inject", [False, True])
def test_ext_input_training_runs(tmp_path, inject):
    td.write_dataset(tmp_path / "data", seed=8, n_train=32, n_valid=16, ext_input_dim=1)
    flags = fast_flags(tmp_path / "data", tmp_path / "save") + [
        "--ext_input_dim=1", "--inject_ext_input_to_gen=%s" % str(inject).lower()]
    bundle = td.run(flags + ["--seed=1", "--max_epochs=1"])
    assert int(bundle.state.global_step.numpy()) == 2
    assert len(finite_fitlog(str(tmp_path / "save"))) == 1
    # no controller: the generator's only input is the external input, if injected;
    # otherwise the encoders read it next to the 15 data channels
    model = bundle.model
    if inject:
        assert model.generator.generator.x_2_ru.W.shape[0] == 1
        assert model.ic_encoder.ic_enc_fwd.n_in == 15
    else:
        assert model.generator.generator.x_2_ru is None
        assert model.ic_encoder.ic_enc_fwd.n_in == 16
    if inject:
        with pytest.raises(utils.LfadsError, match="inject_ext_input_to_gen"):
            td.run(flags + ["--kind=prior_sample"])


def test_gaussian_training_runs(tmp_path):
    data = td.write_dataset(tmp_path / "data", seed=9, n_train=32, n_valid=16,
                            gaussian=True)
    assert data["train_data"].dtype == np.float32
    flags = fast_flags(tmp_path / "data", tmp_path / "save") + ["--output_dist=gaussian"]
    bundle = td.run(flags + ["--seed=1", "--max_epochs=2"])
    assert int(bundle.state.global_step.numpy()) == 4
    assert len(finite_fitlog(str(tmp_path / "save"))) == 2
    params = kinds.model_params(bundle)
    assert params["LFADS_glm_fac_2_means_set0_W:0"].shape == (5, 15)
    assert params["LFADS_glm_fac_2_logvars_set0_W:0"].shape == (5, 15)
    td.run(flags + ["--kind=posterior_push_mean"])
    out = utils.read_data(str(tmp_path / "save" /
                              "model_runs_set0_valid_posterior_push_mean"))
    assert out["output_dist_params"].shape == (16, 25, 30)
    assert np.all(out["output_dist_params"][..., 15:] > 0)  # variances


def _readme_quality(python, *args):
    """`python scripts/readme_quality.py --eval_only args` in a process of its own."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return subprocess.run([python, os.path.join(ROOT, "scripts", "readme_quality.py"),
                           "--eval_only"] + list(args), env=env, capture_output=True,
                          text=True, timeout=300)


def test_quality_scores_the_lowest_validation_checkpoint_unless_told(tmp_path, warm_python):
    """readme_quality --checkpoint: auto prefers checkpoint_lve, falls back to the newest
    regular checkpoint, and a missing state file is a one-line error; each seed has a
    save folder of its own (the original sets no seed: every seed is a faithful run)."""
    # Each case imports TensorFlow: four cases cover the four rules, each a process of
    # its own from the warm interpreter (conftest.warm_python), whose import is done.
    roots = {name: tmp_path / name for name in ("regular", "both")}
    for name in ("regular", "both"):
        save_dir = str(roots[name] / "no_inputs")
        checkpoints.write_checkpoint_state(save_dir, checkpoints.CHECKPOINT_STATE,
                                           [os.path.join(save_dir, "lfads_vae.ckpt-25")])
    save_dir = str(roots["both"] / "no_inputs")
    checkpoints.write_checkpoint_state(save_dir, checkpoints.CHECKPOINT_STATE_LVE,
                                       [os.path.join(save_dir, "lfads_vae_lve.ckpt-25")])
    empty = str(tmp_path / "no_data")
    cases = [  # (root, extra flags, the line that says what happened)
        ("both", ["--seed=2"], "no 'checkpoint' state file in %s: nothing to evaluate"
         % os.path.join(roots["both"], "no_inputs_seed2")),
        ("regular", ["--checkpoint=checkpoint_lve"], "no 'checkpoint_lve' state file"),
        ("regular", [], "of the state file 'checkpoint'"),
        ("both", [], "of the state file 'checkpoint_lve'"),
    ]
    argvs = [["--examples=no_inputs", "--save_root=" + str(roots[root]),
              "--data_dir=" + empty] + extra for root, extra, _ in cases]
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        procs = list(pool.map(lambda argv: _readme_quality(warm_python, *argv), argvs))
    for (root, extra, expected), proc in zip(cases, procs):
        # every case stops before any run_lfads: no checkpoint, or (here) no data
        assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
        error = proc.stderr.splitlines()[-1]  # (TensorFlow may log lines before it)
        assert error.startswith("readme_quality: "), proc.stderr
        assert expected in proc.stdout + error, (root, extra, proc.stdout, proc.stderr)
        if "of the state file" in expected:
            assert "generate the data first" in error
    assert not os.path.exists(roots["both"] / "no_inputs_seed2" / "checkpoint")
