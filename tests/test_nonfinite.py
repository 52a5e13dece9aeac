"""Issue 6: non-finite training steps are skipped, counted, and recovered from."""
import numpy as np
import pytest
import tensorflow as tf

import lfads_testdata as td
from lfads_tf2 import steps
import utils


def _flaky_steps(monkeypatch, bad_calls):
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

    monkeypatch.setattr(steps, "make_train_step", make)
    return calls


@pytest.fixture
def folders(tmp_path):
    data = tmp_path / "data"
    td.write_dataset(str(data))
    return str(data), str(tmp_path / "save")


def _argv(data, save, epochs, extra=()):
    return (["--data_dir=" + data, "--data_filename_stem=" + td.STEM,
             "--lfads_save_dir=" + save, "--max_epochs=%d" % epochs]
            + td.TINY_NO_CONTROLLER + list(extra))


def test_skipped_steps_are_counted_in_fitlog_and_not_applied(monkeypatch, folders, capsys):
    data, save = folders
    # 160 trials, batch 16 -> 10 steps an epoch; steps 2 and 3 of epoch 0 are non-finite
    _flaky_steps(monkeypatch, {2, 3})
    bundle = td.run(_argv(data, save, 2))
    out = capsys.readouterr().out
    assert "skipped non-finite steps: 2" in out
    lines = td.fitlog_lines(save)
    assert td.fitlog_tokens(lines[0])[-2:] == ["nonfinite", "2"]
    assert "nonfinite" not in lines[1]
    # only applied steps advance the global step
    assert int(bundle.state.global_step.numpy()) == 2 * 10 - 2
    assert int(bundle.state.bad_steps.numpy()) == 2


def test_consecutive_bad_steps_restore_checkpoint_and_lower_learning_rate(
        monkeypatch, folders, capsys):
    data, save = folders
    # epoch 0 fine (10 steps, checkpoint at step 10), then 3 bad steps in a row
    _flaky_steps(monkeypatch, {11, 12, 13})
    bundle = td.run(_argv(data, save, 3, ["--max_consecutive_nonfinite_steps=3",
                                          "--learning_rate_init=0.01"]))
    out = capsys.readouterr().out
    assert "3 consecutive non-finite steps: restored" in out
    assert "lfads_vae.ckpt-10" in out
    lr = float(bundle.state.learning_rate.numpy())
    assert lr == pytest.approx(0.01 * 0.95, rel=1e-5)
    # epoch 2 was rerun from the checkpoint and completed
    assert int(bundle.state.epoch.numpy()) == 3
    assert len(td.fitlog_lines(save)) == 3


def test_training_that_keeps_failing_stops_with_one_line_error(monkeypatch, folders):
    data, save = folders
    _flaky_steps(monkeypatch, set(range(11, 10000)))  # everything after epoch 0 fails
    with pytest.raises(utils.LfadsError) as err:
        td.run(_argv(data, save, 5, ["--max_consecutive_nonfinite_steps=2",
                                     "--max_nonfinite_restores=2"]))
    msg = str(err.value)
    assert "\n" not in msg
    assert "non-finite" in msg and "2 restores" in msg


def test_no_checkpoint_to_go_back_to(monkeypatch, folders):
    data, save = folders
    _flaky_steps(monkeypatch, set(range(1, 10000)))
    with pytest.raises(utils.LfadsError, match="no checkpoint to go back to"):
        td.run(_argv(data, save, 2, ["--max_consecutive_nonfinite_steps=3"]))
