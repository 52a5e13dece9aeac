"""Checkpoints written by v0.1 (before the model was split into lfads_tf2's parts)
restore with the current code: same outputs, and training resumes from them.

tests/data/v0_1 was made by tests/v0_1_checkpoint.py with the v0.1 code. The resumed
training runs as a background job (tests/background.py) beside earlier tests.
"""
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import background
import conftest
import lfads_testdata as td

import v0_1_checkpoint as v0_1
from lfads_tf2.train import checkpoint_layout


@pytest.fixture
def save_dir(tmp_path):
    """A copy of the v0.1 save folder (runs write into it)."""
    out = str(tmp_path / "save")
    shutil.copytree(v0_1.SAVE, out)
    yield out
    conftest.reset_op_determinism()


def test_committed_checkpoint_has_the_v0_1_layout():
    path = tf.train.latest_checkpoint(v0_1.SAVE)
    assert checkpoint_layout.is_v0_1(tf.train.load_checkpoint(path))


def test_v0_1_checkpoint_restores_with_the_same_outputs(save_dir):
    expected = np.load(os.path.join(v0_1.OUT, "expected.npz"))
    got = v0_1.posterior_means(save_dir)
    assert sorted(got) == sorted(expected.files)
    for key in expected.files:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-6, atol=1e-6,
                                   err_msg=key)


def resume_v0_1(folder):
    """Background job (tests/background.py): a copy of the v0.1 save folder trained on
    to epoch 3 with the current code."""
    save = os.path.join(folder, "save")
    shutil.copytree(v0_1.SAVE, save)
    td.run(v0_1.FLAGS + ["--lfads_save_dir=" + save, "--kind=train", "--max_epochs=3"])


BACKGROUND = {"resumed_v0_1": resume_v0_1}


@pytest.fixture(scope="module")
def resumed_v0_1():
    return os.path.join(background.result(resume_v0_1), "save")


def test_training_resumes_from_a_v0_1_checkpoint(resumed_v0_1):
    """Resumes at the saved epoch and step, then writes the current layout, which
    restores to the same outputs."""
    save_dir = resumed_v0_1
    lines = td.fitlog_lines(save_dir)
    assert [td.fitlog_record(line)["epoch"] for line in lines] == [2]
    assert td.fitlog_record(lines[0])["step"] == 12  # 8 steps in v0.1, 4 an epoch
    path = tf.train.latest_checkpoint(save_dir)
    assert path.endswith("-12")
    assert not checkpoint_layout.is_v0_1(tf.train.load_checkpoint(path))
    conftest.reset_op_determinism()
    for key, value in v0_1.posterior_means(save_dir).items():
        assert np.all(np.isfinite(value)), key
