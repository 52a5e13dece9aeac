"""Damaged checkpoints. Training resumes from the newest readable checkpoint after a
one-line note naming the damaged file (and, seeded, ends exactly where an undamaged run
does), and stops when none is readable; evaluation never falls back silently: it
restores the checkpoint asked for or stops with a one-line error naming it.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import lfads_testdata as td
from conftest import ROOT
from lfads_testdata import assert_same_arrays, fast_flags

from lfads_tf2 import errors
from lfads_tf2.train import checkpoints


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


# ------------------------------------------------------------------ training
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
    with pytest.raises(errors.LfadsError) as err:
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
    with pytest.raises(errors.LfadsError) as err:
        td.run(damage_base["flags"] + ["--lfads_save_dir=" + str(save), "--max_epochs=4",
                                       "--gen_dim=32"])
    msg = str(err.value)
    assert "\n" not in msg and "gen_dim=24 but the flags give gen_dim=32" in msg, msg


# ------------------------------------------------------------------ evaluation
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
    with pytest.raises(errors.LfadsError) as err:
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
