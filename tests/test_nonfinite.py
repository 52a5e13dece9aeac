"""Non-finite training steps are skipped, counted, and recovered from.

The four training runs (each with a compiled step made to report non-finite steps on
given calls) are one background job (tests/background.py) beside earlier tests; it keeps
each run's stdout, fitlog and end state, or its one-line error."""
import contextlib
import io
import os
import pickle

import numpy as np
import pytest
import tensorflow as tf

import background
import lfads_testdata as td
from lfads_tf2 import errors
from lfads_tf2.train import steps


@contextlib.contextmanager
def _flaky_steps(bad_calls):
    """Makes the compiled training step report a non-finite step on the given calls."""
    real = steps.make_train_step
    calls = {"n": 0}

    def make(bundle, hps):
        step = real(bundle, hps)

        def flaky(*args):
            calls["n"] += 1
            if calls["n"] in bad_calls:
                # what the real step returns when the cost is NaN: nothing applied
                nan = tf.constant(np.nan, tf.float32)
                bundle.state.bad_steps.assign_add(1)
                return {"total": nan, "recon": nan, "kl": nan, "l2": nan,
                        "kl_weight": nan, "l2_weight": nan, "corr": nan,
                        "grad_norm": nan, "applied": tf.constant(False)}
            return step(*args)
        return flaky

    steps.make_train_step = make
    try:
        yield calls
    finally:
        steps.make_train_step = real


def _argv(data, save, epochs, extra=()):
    return (["--data_dir=" + data, "--data_filename_stem=" + td.STEM,
             "--lfads_save_dir=" + save, "--max_epochs=%d" % epochs]
            + td.TINY_NO_CONTROLLER + list(extra))


# case -> (calls of the training step that are non-finite, epochs, extra flags)
CASES = {
    # 160 trials, batch 16 -> 10 steps an epoch; steps 2 and 3 of epoch 0 are non-finite
    "skipped": ({2, 3}, 2, []),
    # epoch 0 fine (10 steps, checkpoint at step 10), then 3 bad steps in a row
    "restored": ({11, 12, 13}, 3, ["--max_consecutive_nonfinite_steps=3",
                                   "--learning_rate_init=0.01"]),
    # everything after epoch 0 fails
    "keeps_failing": (set(range(11, 10000)), 5, ["--max_consecutive_nonfinite_steps=2",
                                                 "--max_nonfinite_restores=2"]),
    "no_checkpoint": (set(range(1, 10000)), 2, ["--max_consecutive_nonfinite_steps=3"]),
}


def nonfinite_runs(root):
    """Background job: each case trained on its own copy of make_dataset() in
    root/<case>; root/runs.pkl holds {case: {stdout, step, bad_steps, learning_rate,
    epoch} or {error: (exception type name, message)}}."""
    results = {}
    for case, (bad_calls, epochs, extra) in sorted(CASES.items()):
        data, save = os.path.join(root, case, "data"), os.path.join(root, case, "save")
        td.write_dataset(data)
        out = io.StringIO()
        try:
            with _flaky_steps(bad_calls), contextlib.redirect_stdout(out):
                bundle = td.run(_argv(data, save, epochs, extra))
        except errors.LfadsError as e:
            results[case] = {"error": (type(e).__name__, str(e)), "stdout": out.getvalue()}
            continue
        results[case] = {"stdout": out.getvalue(),
                         "step": int(bundle.state.global_step.numpy()),
                         "bad_steps": int(bundle.state.bad_steps.numpy()),
                         "learning_rate": float(bundle.state.learning_rate.numpy()),
                         "epoch": int(bundle.state.epoch.numpy())}
    with open(os.path.join(root, "runs.pkl"), "wb") as f:
        pickle.dump(results, f)


BACKGROUND = {"runs": nonfinite_runs}


@pytest.fixture(scope="module")
def runs():
    root = background.result(nonfinite_runs)
    with open(os.path.join(root, "runs.pkl"), "rb") as f:
        results = pickle.load(f)
    for case, res in results.items():
        res["save"] = os.path.join(root, case, "save")
    return results


def _error(res):
    """The message of the LfadsError the run stopped with (the job keeps no other)."""
    assert "error" in res, "no error; the run ended at step %s" % res.get("step")
    return res["error"][1]


def test_skipped_steps_are_counted_in_fitlog_and_not_applied(runs):
    res = runs["skipped"]
    assert "skipped non-finite steps: 2" in res["stdout"]
    lines = td.fitlog_lines(res["save"])
    assert td.fitlog_tokens(lines[0])[-2:] == ["nonfinite", "2"]
    assert "nonfinite" not in lines[1]
    # only applied steps advance the global step
    assert res["step"] == 2 * 10 - 2
    assert res["bad_steps"] == 2


def test_consecutive_bad_steps_restore_checkpoint_and_lower_learning_rate(runs):
    res = runs["restored"]
    out = res["stdout"]
    assert "3 consecutive non-finite steps: restored" in out
    assert "lfads_vae.ckpt-10" in out
    assert res["learning_rate"] == pytest.approx(0.01 * 0.95, rel=1e-5)
    # epoch 2 was rerun from the checkpoint and completed
    assert res["epoch"] == 3
    assert len(td.fitlog_lines(res["save"])) == 3


def test_training_that_keeps_failing_stops_with_one_line_error(runs):
    msg = _error(runs["keeps_failing"])
    assert "\n" not in msg
    assert "non-finite" in msg and "2 restores" in msg


def test_no_checkpoint_to_go_back_to(runs):
    assert "no checkpoint to go back to" in _error(runs["no_checkpoint"])
