"""Bad input gives one clear line, never a traceback.

Every case runs in-process (`run_lfads.run`: exception type and message); a few
also from the command line (`python run_lfads.py ...`: exit status 2, exactly one
line on stderr after TensorFlow's own log lines, no 'Traceback'). Each command
line run imports TensorFlow (~5 s), so only CLI_CASES go through a subprocess.
"""
import os
import re
import subprocess
import sys

import h5py
import numpy as np
import pytest

import lfads_testdata as td
from conftest import ROOT

from lfads_tf2 import errors
from lfads_tf2.data import checks
from lfads_tf2.model import observation
import utils

# TensorFlow's C++ log lines (absl format), written even with TF_CPP_MIN_LOG_LEVEL=2;
# the program hides them (runtime.quiet_tensorflow_import), the tests check that.
TF_NOISE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """One folder per kind of broken input; each holds a single file 'synth_set0'."""
    root = tmp_path_factory.mktemp("bad_inputs")
    good = td.make_dataset(seed=0, n_train=32, n_valid=16)

    def folder(name, data=None, raw=None):
        path = root / name
        path.mkdir()
        fname = path / (td.STEM + "_set0")
        if raw is not None:
            fname.write_bytes(raw)
        elif data is not None:
            utils.write_data(str(fname), data)
        return str(path)

    negative = dict(good, train_data=good["train_data"].copy())
    negative["train_data"][3, 4, 5] = -1
    nan = dict(good, valid_data=good["valid_data"].astype(np.float64))
    nan["valid_data"][1, 2, 3] = np.nan
    a_file = root / "a_file"
    a_file.write_text("not a folder\n")
    return {
        "good": folder("good", good),
        "not_hdf5": folder("not_hdf5", raw=b"this is not an HDF5 file\n" * 10),
        "no_valid": folder("no_valid", {k: v for k, v in good.items()
                                        if not k.startswith("valid_")}),
        "negative": folder("negative", negative),
        "nan": folder("nan", nan),
        "few_trials": folder("few_trials", td.make_dataset(seed=0, n_train=8, n_valid=16)),
        "missing": str(root / "does_not_exist"),
        "a_file": str(a_file),
        "save": str(root / "save"),
    }


def data_file(folders, name):
    return os.path.join(folders[name], td.STEM + "_set0")


# name -> (folder, extra flags, exception type, substrings the message must contain)
CASES = {
    "missing_data_dir": ("missing", [], errors.DataError, ["{missing}", "--data_dir"]),
    "no_file_matches_stem": ("good", ["--data_filename_stem=other"], errors.DataError,
                             ["{good}", "--data_filename_stem=other"]),
    "not_hdf5": ("not_hdf5", [], errors.DataError,
                 ["{file:not_hdf5}", "not a readable HDF5 file"]),
    "missing_valid_data": ("no_valid", [], errors.DataError,
                           ["{file:no_valid}", "valid_data", "missing"]),
    "negative_counts": ("negative", [], errors.DataError,
                        ["{file:negative}", "train_data", "negative", "(3, 4, 5)"]),
    "nan": ("nan", [], errors.DataError, ["{file:nan}", "valid_data", "NaN", "(1, 2, 3)"]),
    "fewer_trials_than_batch": ("few_trials", [], errors.DataError,
                                ["{file:few_trials}", "train_data", "--batch_size=16"]),
    "unknown_kind": ("good", ["--kind=denoise"], errors.UsageError,
                     ["--kind=denoise"]),
    "unknown_output_dist": ("good", ["--output_dist=binomial"], errors.UsageError,
                            ["--output_dist=binomial"]),
    "keep_prob_zero": ("good", ["--keep_prob=0"], errors.UsageError, ["--keep_prob=0"]),
    "kl_increase_steps_zero": ("good", ["--kl_increase_steps=0"], errors.UsageError,
                               ["--kl_increase_steps=0"]),
    "cd_rate_one": ("good", ["--cd_rate=1"], errors.UsageError,
                    ["--cd_rate=1.0", "[0, 1)"]),
    "lve_metric_sv_without_sv_rate": ("good", ["--lve_metric=sv"], errors.UsageError,
                                      ["--lve_metric=sv", "--sv_rate > 0"]),
    "save_dir_is_a_file": ("good", ["--lfads_save_dir={a_file}"], errors.UsageError,
                           ["--lfads_save_dir={a_file}", "not a folder"]),
}


# The cases also run from the command line: a data folder, a file, a key, a flag.
CLI_CASES = ["missing_data_dir", "not_hdf5", "missing_valid_data", "unknown_kind",
             "lve_metric_sv_without_sv_rate"]


def _fill(text, folders):
    def sub(m):
        key = m.group(1)
        if key.startswith("file:"):
            return data_file(folders, key[5:])
        return folders[key]
    return re.sub(r"\{([a-z_:0-9]+)\}", sub, text)


def argv_of(case, folders):
    folder, extra, _, _ = CASES[case]
    argv = ["--data_dir=" + folders[folder], "--data_filename_stem=" + td.STEM,
            "--lfads_save_dir=" + folders["save"]] + td.TINY_MODEL
    return argv + [_fill(x, folders) for x in extra]


def run_cli(argv):
    # as a user runs it: without the TF_CPP_MIN_LOG_LEVEL that conftest sets
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([sys.executable, "run_lfads.py"] + argv, cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    lines = proc.stderr.splitlines()
    noise = [x for x in lines if TF_NOISE.match(x)]
    rest = [x for x in lines if not TF_NOISE.match(x) and x.strip()]
    return proc, rest, noise


@pytest.mark.parametrize("case", sorted(CASES))
def test_in_process_error(case, folders):
    _, _, exc_type, needles = CASES[case]
    with pytest.raises(exc_type) as err:
        td.run(argv_of(case, folders))
    msg = str(err.value)
    assert "\n" not in msg and msg.strip() == msg, msg
    for needle in needles:
        assert _fill(needle, folders) in msg, (needle, msg)


@pytest.mark.parametrize("case", CLI_CASES)
def test_command_line_error(case, folders):
    _, _, _, needles = CASES[case]
    proc, rest, noise = run_cli(argv_of(case, folders))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert len(rest) == 1, proc.stderr
    assert rest[0].startswith("error: "), rest
    for needle in needles:
        assert _fill(needle, folders) in rest[0], (needle, rest[0])
    assert not noise, noise  # TensorFlow is imported with stderr silenced


def test_command_line_no_checkpoint(folders, tmp_path):
    """An error found after TensorFlow started: still exactly one line."""
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    argv = ["--data_dir=" + folders["good"], "--data_filename_stem=" + td.STEM,
            "--lfads_save_dir=" + empty, "--kind=posterior_push_mean"] + td.TINY_MODEL
    proc, rest, noise = run_cli(argv)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert len(rest) == 1, proc.stderr
    assert rest[0].startswith("error: ") and empty in rest[0] and "no checkpoint" in rest[0]
    assert not noise, noise  # TensorFlow is imported with stderr silenced


def _broken_checkpoint_folder(folders, tmp_path):
    """A save folder whose state file names checkpoint 'lfads_vae.ckpt-7' (no files)."""
    save = tmp_path / "save"
    save.mkdir()
    (save / "checkpoint").write_text('model_checkpoint_path: "lfads_vae.ckpt-7"\n'
                                     'all_model_checkpoint_paths: "lfads_vae.ckpt-7"\n')
    argv = ["--data_dir=" + folders["good"], "--data_filename_stem=" + td.STEM,
            "--lfads_save_dir=" + str(save), "--kind=write_model_params"] + td.TINY_MODEL
    return save, argv


def test_checkpoint_files_missing(folders, tmp_path):
    """The state file names a checkpoint whose files are gone."""
    _, argv = _broken_checkpoint_folder(folders, tmp_path)
    with pytest.raises(errors.LfadsError) as err:
        td.run(argv)
    msg = str(err.value)
    assert "\n" not in msg and "lfads_vae.ckpt-7" in msg, msg


def test_checkpoint_index_damaged(folders, tmp_path):
    save, argv = _broken_checkpoint_folder(folders, tmp_path)
    (save / "lfads_vae.ckpt-7.index").write_bytes(b"garbage" * 20)
    try:
        td.run(argv)
    except errors.LfadsError as e:
        assert "\n" not in str(e) and "lfads_vae.ckpt-7" in str(e)
    except Exception as e:  # noqa: BLE001 - anything else is the bug
        raise AssertionError("%s: %s" % (type(e).__name__, e)) from None
    else:
        raise AssertionError("no error for a damaged checkpoint")


def test_truncated_hdf5_file(folders, tmp_path):
    """A data file cut short (e.g. an interrupted copy) is a DataError naming it."""
    folder = tmp_path / "truncated"
    folder.mkdir()
    src = data_file(folders, "good")
    raw = open(src, "rb").read()
    dst = folder / (td.STEM + "_set0")
    dst.write_bytes(raw[:len(raw) // 2])
    with pytest.raises(errors.DataError) as err:
        td.run(["--data_dir=" + str(folder), "--data_filename_stem=" + td.STEM,
                "--lfads_save_dir=" + folders["save"]] + td.TINY_MODEL)
    assert "\n" not in str(err.value) and str(dst) in str(err.value)


def test_valid_file_is_fine(folders):
    """The control case: the 'good' folder passes validation."""
    datasets, notes = checks.load_datasets(folders["good"], td.STEM, observation.for_dist("poisson"),
                                          factors_dim=5, batch_size=16)
    assert list(datasets) == ["set0"]
    with h5py.File(data_file(folders, "good"), "r") as hf:
        assert hf["train_data"].dtype.kind == "i"


def test_negative_ps_nexamples_to_process(folders):
    argv = ["--data_dir=" + folders["good"], "--data_filename_stem=" + td.STEM,
            "--lfads_save_dir=" + folders["save"], "--kind=posterior_push_mean",
            "--ps_nexamples_to_process=-3"] + td.TINY_MODEL
    try:
        td.run(argv)
    except errors.UsageError as e:
        assert "--ps_nexamples_to_process=-3" in str(e)
    except Exception as e:  # noqa: BLE001 - anything else is the bug
        raise AssertionError("%s: %s" % (type(e).__name__, e)) from None
    else:
        raise AssertionError("no error")


def test_second_training_on_a_locked_folder(folders, tmp_path):
    """A save folder locked by a live training process is refused with one line."""
    save = tmp_path / "locked"
    save.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (save / "lfads.lock").write_text("%d\n" % holder.pid)
        with pytest.raises(errors.LfadsError) as err:
            td.run(["--data_dir=" + folders["good"], "--data_filename_stem=" + td.STEM,
                    "--lfads_save_dir=" + str(save), "--max_epochs=1"] + td.TINY_MODEL)
        msg = str(err.value)
        assert "\n" not in msg and str(holder.pid) in msg and "lfads.lock" in msg, msg
        assert (save / "lfads.lock").read_text().split()[0] == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()
