"""Every command of the original README runs (tiny data, tiny models, 1 epoch), and
the evaluation commands run on every example, multi-session included.

The default test runs scripts/run_readme_examples.sh as a background job
(tests/background.py: started when the tests are collected, beside the tests before this
one) with a `python` that has imported TensorFlow once and forks a process per command
(tests/warm_python.py): the same commands, each a process of its own with its own output
and exit status, without the 6-8 s import in each of the 36 commands. The slow test runs
the script as users do, with a cold interpreter per command.
"""
import json
import os
import subprocess
import sys
import time

import pytest

import background
from conftest import ROOT

SMALL_MODEL = ("--batch_size=16 --ic_dim=4 --gen_dim=16 --ic_enc_dim=8 --ci_enc_dim=8 "
               "--con_dim=8 --kl_increase_steps=10 --l2_increase_steps=10 --device=cpu:0")


def run_script(folder, python, jobs):
    """Runs the script on tiny data and models in folder; returns its CompletedProcess."""
    env = dict(os.environ, DATA_DIR=os.path.join(folder, "data") + "/",
               SAVE_ROOT=os.path.join(folder, "runs"),
               SYNTH_EXTRA_FLAGS="--C=16 --nreplications=5", EXTRA_FLAGS=SMALL_MODEL,
               PS_EXTRA_FLAGS="--batch_size=4", JOBS=str(jobs), PYTHON=python)
    os.makedirs(env["SAVE_ROOT"])
    return subprocess.run(["bash", os.path.join(ROOT, "scripts", "run_readme_examples.sh"),
                           "1"], env=env, capture_output=True, text=True, timeout=900)


def readme_examples(folder):
    """Background job: the script through the warm python, in one lane beside the tests
    (two when no test runs beside it); its output and status go to folder/result.json."""
    python = os.environ.get("LFADS_WARM_PYTHON") or sys.executable
    jobs = 2 if os.environ.get("LFADS_BACKGROUND_ALONE") == "1" else 1
    start = time.time()
    proc = run_script(folder, python, jobs)
    with open(os.path.join(folder, "result.json"), "w") as f:
        json.dump({"returncode": proc.returncode, "stdout": proc.stdout,
                   "stderr": proc.stderr, "seconds": time.time() - start}, f)


BACKGROUND = {"readme_examples_run": readme_examples}
RUN_LAST = True  # conftest: after every other test, so that the job has the whole run


def check_readme_examples(folder, returncode, stdout, stderr):
    out = stdout + stderr
    assert returncode == 0, out[-3000:]
    assert "All README examples ran." in stdout
    assert "Traceback" not in out
    # the Gaussian-on-counts example is accepted with a note
    assert "integer data are treated as real values" in stdout
    runs = os.path.join(folder, "runs")
    for name in ("lfads_chaotic_rnn_no_inputs", "lfads_chaotic_rnn_no_inputs_gaussian",
                 "lfads_chaotic_rnn_inputs_g2p5", "lfads_chaotic_rnn_inputs_g2p5_gaussian",
                 "lfads_chaotic_rnn_multisession", "lfads_itb_rnn",
                 "lfads_chaotic_rnns_labeled"):
        assert os.path.exists(os.path.join(runs, name, "fitlog.csv")), name
        # the README's three evaluation commands ran on every example
        files = os.listdir(os.path.join(runs, name))
        for fname in ("model_params", "model_runs_prior_sample"):
            assert fname in files, (name, fname)
        assert sum(f.endswith("_posterior_sample_and_average") for f in files) >= 2, name
    # five sessions, each with its own read-in, and each with its own output files
    multi = os.path.join(runs, "lfads_chaotic_rnn_multisession")
    with open(os.path.join(multi, "hyperparameters-0.txt")) as f:
        assert "dataset_N100_S20_n5" in f.read()
    for kind in ("posterior_sample_and_average", "posterior_push_mean"):
        written = sorted(f for f in os.listdir(multi) if f.endswith("_" + kind))
        assert written == sorted("model_runs_dataset_N100_S20_n%d_%s_%s" % (i, split, kind)
                                 for i in range(1, 6) for split in ("train", "valid"))


@pytest.fixture(scope="module")
def readme_examples_run():
    return background.result(readme_examples)


def test_run_readme_examples(readme_examples_run):
    with open(os.path.join(readme_examples_run, "result.json")) as f:
        res = json.load(f)
    print("README examples ran in %.0f s (background job)" % res["seconds"])
    check_readme_examples(readme_examples_run, res["returncode"], res["stdout"],
                          res["stderr"])


@pytest.mark.slow  # the same with a cold interpreter per command (about 3 times longer)
def test_run_readme_examples_cold(tmp_path):
    start = time.time()
    proc = run_script(str(tmp_path), sys.executable, 2)
    print("README examples ran in %.0f s" % (time.time() - start))
    check_readme_examples(str(tmp_path), proc.returncode, proc.stdout, proc.stderr)
