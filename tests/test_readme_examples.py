"""Issue 5: every command of the original README runs (tiny data, tiny models, 1 epoch).

Issue 17: the evaluation commands run on every example, multi-session included.

The default test runs scripts/run_readme_examples.sh with a `python` that has imported
TensorFlow once and forks a process per command (tests/warm_python.py): the same
commands, each a process of its own with its own output and exit status, without the
6-8 s import in each of the 36 commands. The slow test runs the script as users do.
"""
import os
import subprocess
import time

import pytest

from conftest import ROOT

SMALL_MODEL = ("--batch_size=16 --ic_dim=4 --gen_dim=16 --ic_enc_dim=8 --ci_enc_dim=8 "
               "--con_dim=8 --kl_increase_steps=10 --l2_increase_steps=10 --device=cpu:0")


def run_readme_examples(tmp_path, python=None):
    env = dict(os.environ, DATA_DIR=str(tmp_path / "data") + "/",
               SAVE_ROOT=str(tmp_path / "runs"), SYNTH_EXTRA_FLAGS="--C=16 --nreplications=5",
               EXTRA_FLAGS=SMALL_MODEL, PS_EXTRA_FLAGS="--batch_size=4", JOBS="2")
    if python:
        env["PYTHON"] = python
    os.makedirs(env["SAVE_ROOT"])
    start = time.time()
    proc = subprocess.run(["bash", os.path.join(ROOT, "scripts", "run_readme_examples.sh"),
                           "1"], env=env, capture_output=True, text=True, timeout=900)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "All README examples ran." in proc.stdout
    assert "Traceback" not in out
    # the Gaussian-on-counts example is accepted with a note
    assert "integer data are treated as real values" in proc.stdout
    runs = tmp_path / "runs"
    for name in ("lfads_chaotic_rnn_no_inputs", "lfads_chaotic_rnn_no_inputs_gaussian",
                 "lfads_chaotic_rnn_inputs_g2p5", "lfads_chaotic_rnn_inputs_g2p5_gaussian",
                 "lfads_chaotic_rnn_multisession", "lfads_itb_rnn",
                 "lfads_chaotic_rnns_labeled"):
        assert (runs / name / "fitlog.csv").exists(), name
        # the README's three evaluation commands ran on every example
        files = os.listdir(runs / name)
        for fname in ("model_params", "model_runs_prior_sample"):
            assert fname in files, (name, fname)
        assert sum(f.endswith("_posterior_sample_and_average") for f in files) >= 2, name
    # five sessions, each with its own read-in, and each with its own output files
    multi = runs / "lfads_chaotic_rnn_multisession"
    with open(multi / "hyperparameters-0.txt") as f:
        assert "dataset_N100_S20_n5" in f.read()
    for kind in ("posterior_sample_and_average", "posterior_push_mean"):
        written = sorted(f for f in os.listdir(multi) if f.endswith("_" + kind))
        assert written == sorted("model_runs_dataset_N100_S20_n%d_%s_%s" % (i, split, kind)
                                 for i in range(1, 6) for split in ("train", "valid"))
    print("README examples ran in %.0f s" % (time.time() - start))


def test_run_readme_examples(tmp_path, warm_python):
    run_readme_examples(tmp_path, warm_python)


@pytest.mark.slow  # the same with a cold interpreter per command (about 3 times longer)
def test_run_readme_examples_cold(tmp_path):
    run_readme_examples(tmp_path)
