"""Chopping a continuous record into overlapping segments and merging them back."""
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
import utils
from lfads_tf2.data import binning
from lfads_tf2.data import merge
from lfads_tf2.data import recording


@pytest.mark.parametrize("total, chop, overlap", [
    (100, 20, 5), (101, 20, 5), (137, 30, 0), (64, 64, 10), (500, 50, 49), (75, 10, 3)])
def test_chop_then_merge_returns_the_record(total, chop, overlap):
    rng = np.random.default_rng(total + chop)
    record_txn = rng.gamma(2.0, size=(total, 4))
    starts = binning.chop_starts(total, chop, overlap)
    assert starts[0] == 0 and starts[-1] + chop == total
    assert np.all(np.diff(starts) <= chop - overlap)
    merged = binning.merge(binning.chop(record_txn, starts, chop), starts, total, overlap)
    np.testing.assert_allclose(merged, record_txn, rtol=1e-12, atol=0)


def test_overlap_is_blended_linearly():
    """Two segments holding 0 and 1: across their 10 shared bins the record rises
    linearly from the first's value to the second's."""
    starts = np.array([0, 10])
    segs = np.stack([np.zeros((20, 1)), np.ones((20, 1))])
    merged = binning.merge(segs, starts, 30, overlap_bins=10)[:, 0]
    np.testing.assert_allclose(merged[:10], 0)
    np.testing.assert_allclose(merged[10:20], (np.arange(10) + 0.5) / 10)
    np.testing.assert_allclose(merged[20:], 1)


def test_missing_segments_leave_nan():
    starts = binning.chop_starts(100, 20, 5)
    segs = binning.chop(np.ones((100, 2)), starts, 20)
    merged = binning.merge(segs[1:], starts[1:], 100, 5)
    assert np.isnan(merged[:15]).all() and np.isfinite(merged[15:]).all()


def test_spikes_on_bin_edges_fall_in_the_later_bin():
    counts = binning.bin_spikes([np.array([0.0, 0.01, 0.02, 0.0299999, 0.05])], 0.0, 5, 0.01)
    assert counts[:, 0].tolist() == [1, 1, 2, 0, 0]


def test_split_is_reproducible_and_complete():
    tr, va = binning.split_indices(50, 0.2, seed=7)
    tr2, va2 = binning.split_indices(50, 0.2, seed=7)
    assert np.array_equal(va, va2) and len(va) == 10
    assert sorted(np.concatenate([tr, va])) == list(range(50))


def test_round_trip_through_data_file_outputs_and_lfads_merge(tmp_path):
    """A known rate array, chopped by the converter into a data file; fake posterior
    output files hold each split's segments of it (plus forward-prediction bins, as a
    forward-predicting model writes); lfads_merge gives the rate array back."""
    rng = np.random.default_rng(0)
    total, n_units = 1000, 6
    rates_txn = np.exp(np.sin(np.arange(total)[:, None] / 17.0 + np.arange(n_units)))
    rec = recording.Recording(path="mem", unit_ids=np.arange(n_units), start_s=0.0,
                              stop_s=total * 0.02, counts_txn=rng.poisson(rates_txn),
                              counts_bin_s=0.02)
    data = recording.to_lfads(rec, recording.Options(bin_ms=20, chop_bins=40,
                                                     overlap_bins=12, seed=1, fp_bins=4))
    data_path = str(tmp_path / "rec_day1")
    utils.write_data(data_path, data)
    starts = data["segment_start_bins"]
    covered = starts[-1] + 40
    assert covered == total - 4  # room for the forward-prediction bins of the last one
    outputs = {}
    for split in ("train", "valid"):
        seg = starts[data[split + "_inds"]]
        path = str(tmp_path / ("model_runs_day1_%s_posterior_sample_and_average" % split))
        utils.write_data(path, {
            "output_dist_params": binning.chop(rates_txn, seg, 44),
            "factors": binning.chop(rates_txn[:, :3] * 2.0, seg, 44),
            "ic_post_mean": rng.normal(size=(len(seg), 8))})  # not per bin: not merged
        outputs[split] = path
    out = str(tmp_path / "merged.h5")
    proc = subprocess.run([sys.executable, "-m", "lfads_tf2.data.merge", data_path, out,
                           "--train_output=" + outputs["train"],
                           "--valid_output=" + outputs["valid"]],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    merged = utils.read_data(out)
    assert set(merged) == {"output_dist_params", "factors", "bin_ms", "dt",
                           "recording_start_s"}
    assert merged["output_dist_params"].shape == (total, n_units)
    np.testing.assert_allclose(merged["output_dist_params"][:covered], rates_txn[:covered],
                               rtol=1e-12)
    np.testing.assert_allclose(merged["factors"][:covered], 2.0 * rates_txn[:covered, :3],
                               rtol=1e-12)
    assert np.isnan(merged["output_dist_params"][covered:]).all()

    # One split only: its own segments come back exactly, the rest is NaN.
    only = merge.merge_outputs(data_path, {"valid": outputs["valid"]})["output_dist_params"]
    ok = np.isfinite(only[:, 0])
    assert 0 < ok.sum() < covered
    np.testing.assert_allclose(only[ok], rates_txn[ok], rtol=1e-12)


def test_merge_of_trial_data_is_a_one_line_error(tmp_path):
    path = str(tmp_path / "trials")
    utils.write_data(path, {"train_data": np.zeros((4, 5, 2), np.int32),
                            "valid_data": np.zeros((2, 5, 2), np.int32)})
    proc = subprocess.run([sys.executable, "-m", "lfads_tf2.data.merge", path,
                           str(tmp_path / "o"), "--train_output=" + path],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: %s: segment_start_bins: missing: not a file of chopped segments (make it "
        "with --chop_bins)" % path]
    assert not os.path.exists(tmp_path / "o")
