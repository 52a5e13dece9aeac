"""One training run of a tiny model: what it learns and what it writes.

The model (lfads_testdata.main_model) is trained once per session by a background job
(tests/background.py) beside the tests before these. Checked: it predicts better than
constant rates; the fitlog, the hyperparameter file and the TensorBoard events hold
what the original writes; the state files keep as many checkpoints as asked; restoring
the last checkpoint gives back the trained variables; readme_quality scores the
checkpoint it should.
"""
import concurrent.futures
import glob
import json
import os
import re
import subprocess

import numpy as np
import pytest
import tensorflow as tf

import lfads_testdata as td
from conftest import ROOT
from lfads_testdata import assert_same_arrays, bundle_state as all_state, finite_fitlog

from lfads_tf2.train import checkpoints
import utils


FITLOG_TOKENS = ["epoch", None, "step", None, "total", None, None, "recon", None, None,
                 "kl", None, None, "l2", None, "klweight", None, "l2weight", None]

# Scalars every training epoch writes: the original's TensorBoard tags (the learning
# rate has the tag LFADS/Learning_rate here, LFADS/Learning_rate_1 in the original).
SCALAR_TAGS = ["LFADS/Total_cost__train_", "LFADS/Total_cost__valid_",
               "LFADS/Reconstruction_cost__train_", "LFADS/Reconstruction_cost__valid_",
               "LFADS/KL_cost__train_", "LFADS/KL_cost__valid_", "LFADS/L2_cost",
               "LFADS/KL_weight", "LFADS/L2_weight", "LFADS/Gradient_global_norm",
               "LFADS/Corr_cost"]


# the shared model, trained by a background job (lfads_testdata, tests/background.py)
BACKGROUND = {"main": td.train_main_model}


@pytest.fixture(scope="module")
def main():
    return td.main_model()


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
    """--max_ckpt_to_keep=3 and --max_ckpt_to_keep_lve=2 (the original's training
    used max_ckpt_to_keep for both)."""
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


def test_checkpoint_round_trip(main):
    """Restoring the last checkpoint gives exactly the trained variables."""
    restored = td.run(main["flags"] + ["--kind=write_model_params",
                                       "--output_filename_stem=roundtrip"])
    # main["state"]: the variables of the trained bundle, kept by the training job
    assert_same_arrays(all_state(restored), main["state"], "restore")
    assert int(restored.state.global_step.numpy()) == td.MAIN_EPOCHS * 10
    assert int(restored.state.epoch.numpy()) == td.MAIN_EPOCHS


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
