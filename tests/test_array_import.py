"""lfads_from_arrays: spike times (npz, csv) and binned counts give the same LFADS data."""
import os
import subprocess
import sys

import numpy as np

from conftest import ROOT
import utils
from lfads_tf2.data import arrays
from lfads_tf2.data import recording


def spikes(seed=0, n_units=5, duration=20.0):
    """(times [spikes], unit ids [spikes]) of Poisson units, ids 10, 11, ..."""
    rng = np.random.default_rng(seed)
    times, units = [], []
    for n in range(n_units):
        t = np.sort(rng.uniform(0, duration, rng.poisson(15 * duration)))
        times.append(t)
        units.append(np.full(len(t), 10 + n))
    return np.concatenate(times), np.concatenate(units)


def run(args):
    return subprocess.run([sys.executable, "-m", "lfads_tf2.data.arrays"] + args, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


def test_npz_csv_and_counts_inputs_agree(tmp_path):
    times, units = spikes()
    starts = np.arange(1.0, 19.0, 1.5)
    trial_cols = {"trials_start_time": starts, "trials_stop_time": starts + 1.2,
                  "trials_go_time": starts + 0.5, "trials_target": np.arange(12) % 4}
    np.savez(tmp_path / "s.npz", spike_times=times, unit_ids=units, **trial_cols)
    with open(tmp_path / "s.csv", "w") as f:
        f.write("time,unit\n" + "".join("%r,%d\n" % (float(t) * 1000, u)
                                        for t, u in zip(times, units)))
    with open(tmp_path / "trials.csv", "w") as f:
        f.write("start_time,stop_time,go_time,target\n" + "".join(
            "%r,%r,%r,%d\n" % (float(a) * 1000, float(a + 1.2) * 1000,
                                float(a + 0.5) * 1000, c)
            for a, c in zip(starts, np.arange(12) % 4)))
    opts = recording.Options(bin_ms=20, align_field="go_time", window_ms=(-200, 400),
                             condition_field="target", seed=2)
    from_npz = recording.to_lfads(arrays.read_arrays(str(tmp_path / "s.npz")), opts)
    from_csv = recording.to_lfads(arrays.read_arrays(
        str(tmp_path / "s.csv"), time_unit="ms", trials_csv=str(tmp_path / "trials.csv")),
        opts)
    for key in ("train_data", "valid_data", "train_inds", "condition_labels_valid"):
        np.testing.assert_array_equal(from_npz[key], from_csv[key])
    assert from_npz["train_data"].shape[1:] == (30, 5)
    assert from_npz["train_data"].sum() > 0

    # Counts binned at 20 ms from 0 give the same windows (the windows start on bins).
    rec = arrays.read_arrays(str(tmp_path / "s.npz"))
    counts = recording.continuous_counts(rec, 0.02)
    np.savez(tmp_path / "c.npz", counts=counts, unit_ids=np.arange(10, 15), **trial_cols)
    from_counts = recording.to_lfads(arrays.read_arrays(str(tmp_path / "c.npz"),
                                                              bin_ms=20), opts)
    np.testing.assert_array_equal(from_counts["train_data"], from_npz["train_data"])


def test_command_chops_counts_and_writes_the_h5(tmp_path):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "c.npz", counts=rng.poisson(0.5, size=(1000, 4)))
    out = str(tmp_path / "rec_a")
    proc = run([str(tmp_path / "c.npz"), out, "--bin_ms=5", "--chop_bins=100",
                "--overlap_bins=20", "--heldout_units=3"])
    assert proc.returncode == 0, proc.stderr
    data = utils.read_data(out)
    assert data["train_data"].shape[1:] == (100, 3)
    assert data["train_recon_data"].shape[1:] == (100, 4)
    assert list(data["segment_start_bins"][:3]) == [0, 80, 160]
    assert float(data["bin_ms"]) == 5.0


def test_bad_input_is_one_line_with_status_2(tmp_path):
    np.savez(tmp_path / "x.npz", times=np.arange(3.0))
    proc = run([str(tmp_path / "x.npz"), str(tmp_path / "o"), "--chop_bins=5"])
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: %s: (keys): expected counts, or spike_times and unit_ids (found: times)"
        % (tmp_path / "x.npz")]
    assert not os.path.exists(tmp_path / "o")
