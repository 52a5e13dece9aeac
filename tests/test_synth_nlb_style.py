"""The NLB-style generator (held-out neurons, forward bins, conditions) on small sizes:
keys, shapes, the held-in part of recon_data, subsets of training trials, and that
lfads_score rates its true rates as a perfect model should."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from lfads_tf2.score import lfads_score
from synth_data import generate_nlb_style_data as nlb_mod
import utils
from lfads_tf2.data import checks
from lfads_tf2.model import observation

SMALL = dict(synth_data_seed=5, T=0.5, T_forward=0.1, C=6, N=14, n_heldout=4,
             nreplications=10, train_percentage=0.8, g=1.5, dt=0.01)
KEYS = {"train_data", "valid_data", "train_recon_data", "valid_recon_data", "train_truth",
        "valid_truth", "condition_labels_train", "condition_labels_valid", "train_inds",
        "valid_inds", "train_percentage", "nreplications", "dt", "conversion_factor"}


@pytest.fixture(scope="module")
def full():
    return nlb_mod.generate_nlb_style_datasets(**SMALL)["dataset_N14_heldin10"]


def test_keys_shapes_and_the_held_in_part(full):
    assert set(full) == KEYS
    assert full["train_data"].shape == (48, 50, 10)
    assert full["valid_data"].shape == (12, 50, 10)
    assert full["train_recon_data"].shape == (48, 60, 14)
    assert full["valid_truth"].shape == (12, 60, 14)
    for split in ("train", "valid"):
        recon = full[split + "_recon_data"]
        assert recon.dtype == np.int64 and recon.min() >= 0
        np.testing.assert_array_equal(recon[:, :50, :10], full[split + "_data"])
        truth = full[split + "_truth"]
        # rates min-max normalised per trial and neuron over all bins, forward ones too
        np.testing.assert_allclose(truth.min(axis=1), 0.0, atol=1e-12)
        np.testing.assert_allclose(truth.max(axis=1), 1.0, atol=1e-12)
        # counts follow truth / conversion_factor (counts per bin)
        rate = truth / full["conversion_factor"]
        assert abs(recon.mean() - rate.mean()) < 0.05 * rate.mean()
    # condition-major: each condition gives 8 training and 2 validation trials
    assert np.array_equal(np.bincount(full["condition_labels_train"]), [8] * 6)
    assert np.array_equal(np.bincount(full["condition_labels_valid"]), [2] * 6)
    assert np.array_equal(full["condition_labels_valid"], full["valid_inds"] // 10)
    assert full["conversion_factor"] == pytest.approx(1.0 / 0.3)
    # the data pass the checks of every run_lfads load
    checks.validate_datasets({"d": dict(full)}, observation.for_dist("poisson"))


def test_trials_of_a_condition_share_their_rates_until_the_noise(full):
    same = full["train_truth"][full["condition_labels_train"] == 2]
    np.testing.assert_allclose(same, np.broadcast_to(same[0], same.shape))
    assert not np.array_equal(full["train_recon_data"][0], full["train_recon_data"][1])


def test_fewer_training_trials_are_a_subset_with_the_same_validation_trials(full):
    small = nlb_mod.generate_nlb_style_datasets(ntrain=12, **SMALL)["dataset_N14_heldin10"]
    assert small["train_data"].shape == (12, 50, 10)
    assert np.array_equal(np.bincount(small["condition_labels_train"]), [2] * 6)
    for key in ("valid_data", "valid_recon_data", "valid_truth", "valid_inds"):
        np.testing.assert_array_equal(small[key], full[key])
    rows = np.searchsorted(full["train_inds"], small["train_inds"])
    np.testing.assert_array_equal(small["train_recon_data"], full["train_recon_data"][rows])
    with pytest.raises(ValueError, match="multiple of --C=6"):
        nlb_mod.generate_nlb_style_datasets(ntrain=13, **SMALL)


def test_true_rates_score_as_a_perfect_model(full, tmp_path):
    data_path = str(tmp_path / "nlb_set")
    utils.write_data(data_path, full)
    out_path = str(tmp_path / "truth_valid_posterior_push_mean")
    utils.write_data(out_path, {"output_dist_params": full["valid_truth"]
                                / full["conversion_factor"]})
    result = lfads_score.score_files(out_path, data_path)
    got = result["metrics"]
    assert sorted(got) == ["co_bps", "fp_bps", "psth_r2", "rate_r2"]
    assert got["co_bps"] > 0.1 and got["fp_bps"] > 0.1
    assert got["rate_r2"] == pytest.approx(1.0)
    assert got["psth_r2"] > 0


def test_command_writes_both_sizes(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    flags = ["--save_dir=%s" % tmp_path, "--C=4", "--N=12", "--n_heldout=2", "--T=0.3",
             "--T_forward=0.05", "--nreplications=5"]
    for stem, ntrain in (("nlb_16train", 16), ("nlb_8train", 8)):
        proc = subprocess.run([sys.executable, "-m", "synth_data.generate_nlb_style_data",
                               "--datafile_name=" + stem, "--ntrain=%d" % ntrain] + flags,
                              env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        path = os.path.join(str(tmp_path), stem + "_dataset_N12_heldin10")
        assert "Wrote " + path in proc.stdout
        data = utils.read_data(path)
        assert data["train_recon_data"].shape == (ntrain, 35, 12)
        assert data["valid_data"].shape == (4, 30, 10)


def test_help_lists_every_flag_and_bad_flags_are_one_line(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    cmd = [sys.executable, "-m", "synth_data.generate_nlb_style_data"]
    proc = subprocess.run(cmd + ["--help"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    for _, name, _, _ in nlb_mod._FLAGS:
        assert "--%s (" % name in proc.stdout, name
    proc = subprocess.run(cmd + ["--n_heldot=3"], env=env, capture_output=True, text=True,
                          timeout=60, cwd=str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: unknown flag --n_heldot (did you mean --n_heldout?)"
