"""Resuming training. A run stopped after 2 epochs and started again to 4 continues
from its checkpoint with the learning rate and plateau history it had, and (seeded)
ends bit for bit where a 4-epoch run does; a finished run trained on with
--do_reset_learning_rate or --do_train_io_only changes only what the flag says. The
runs are made by one background job (resume_runs) beside earlier tests.
"""
import contextlib
import io
import os
import pathlib
import pickle
import re
import shutil

import numpy as np
import pytest

import background
import lfads_testdata as td
from lfads_testdata import assert_same_arrays, bundle_state as all_state, fast_flags

from lfads_tf2.train import checkpoints


def model_weights(bundle):
    return {v.name: v.numpy() for v in bundle.model.variables}


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


BACKGROUND = {"resumed": resume_runs}


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
