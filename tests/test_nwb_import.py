"""lfads_from_nwb on small NWB files written here with pynwb: trials, a continuous
recording, unit selection, held-out units, one-line errors, and one epoch of training."""
import datetime
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
import lfads_testdata
from lfads_tf2 import errors
import utils

pynwb = pytest.importorskip("pynwb")

from lfads_tf2.data import nwb as nwb_import  # noqa: E402
from lfads_tf2.data import recording  # noqa: E402

BIN_MS = 10


def spike_train(rng, rate_fn, t0, t1):
    """Spike times in [t0, t1) of an inhomogeneous Poisson process (thinning)."""
    peak = 60.0
    n = rng.poisson(peak * (t1 - t0))
    t = np.sort(rng.uniform(t0, t1, n))
    return t[rng.uniform(0, peak, n) < rate_fn(t)]


def write_nwb(path, n_units=8, n_trials=40, trials=True, units=True, quality=None,
              silent_unit=None, overlap_trials=False, seed=0):
    """An NWB file: units whose rates rise after each trial's move onset, differently
    per condition (3 conditions); 1.2 s trials back to back, or no trials table."""
    rng = np.random.default_rng(seed)
    nwb = pynwb.NWBFile(session_description="test", identifier="test-%d" % seed,
                        session_start_time=datetime.datetime(2024, 1, 1,
                                                             tzinfo=datetime.timezone.utc))
    starts = 0.5 + 1.2 * np.arange(n_trials)
    onsets = starts + 0.4 + 0.1 * rng.uniform(size=n_trials)
    conds = np.arange(n_trials) % 3
    stop_all = starts[-1] + 1.2 + 0.5
    gains = rng.uniform(0.5, 2.0, size=(3, n_units))

    def rate(n):
        def f(t):
            k = np.clip(np.searchsorted(onsets, t) - 1, 0, n_trials - 1)
            dt = t - onsets[k]
            bump = np.where((dt > 0) & (dt < 0.4), np.sin(np.pi * np.clip(dt, 0, 0.4) / 0.4),
                            0.0)
            return 8.0 + 30.0 * gains[conds[k], n] * bump
        return f

    if units:
        if quality is not None:
            nwb.add_unit_column(name="quality", description="sorting quality")
        for n in range(n_units):
            spikes = [] if n == silent_unit else spike_train(rng, rate(n), 0.0, stop_all)
            kwargs = {"quality": quality[n]} if quality is not None else {}
            nwb.add_unit(spike_times=spikes, id=100 + n, **kwargs)
    if trials:
        nwb.add_trial_column(name="move_onset_time", description="movement onset (s)")
        nwb.add_trial_column(name="condition", description="reach target")
        for e in range(n_trials):
            stop = starts[e] + (1.5 if overlap_trials and e == 3 else 1.2)
            nwb.add_trial(start_time=starts[e], stop_time=stop,
                          move_onset_time=onsets[e], condition=int(conds[e]))
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwb)
    return {"onsets": onsets, "conds": conds, "stop": stop_all}


def convert(path, **kw):
    kw.setdefault("bin_ms", BIN_MS)
    return recording.to_lfads(nwb_import.read_nwb(str(path)), recording.Options(**kw))


def test_trials_are_aligned_binned_split_and_labelled(tmp_path):
    truth = write_nwb(tmp_path / "s.nwb")
    rec = nwb_import.read_nwb(str(tmp_path / "s.nwb"))
    data = convert(tmp_path / "s.nwb", align_field="move_onset_time",
                   window_ms=(-250, 450), condition_field="condition", seed=3)
    assert data["train_data"].shape[1:] == (70, 8)
    inds = np.concatenate([data["train_inds"], data["valid_inds"]])
    assert sorted(inds) == list(range(40)) and len(data["valid_inds"]) == 8
    np.testing.assert_array_equal(data["condition_labels_train"],
                                  truth["conds"][data["train_inds"]])
    # Every count equals a direct count of that unit's spikes in that bin.
    e, trial = 5, data["train_inds"][5]
    t0 = truth["onsets"][trial] - 0.25
    for n in (0, 7):
        spikes = rec.spike_times[n]
        for k in (0, 24, 69):
            lo, hi = t0 + k * 0.01, t0 + (k + 1) * 0.01
            assert data["train_data"][e, k, n] == np.sum((spikes >= lo) & (spikes < hi))
    # The rates rise after the onset (bins 25..65): the alignment is right.
    psth = np.concatenate([data["train_data"], data["valid_data"]]).mean(axis=(0, 2))
    assert psth[30:60].mean() > 2 * psth[:20].mean()
    # Same seed, same split; another seed, another split.
    again = convert(tmp_path / "s.nwb", align_field="move_onset_time",
                    window_ms=(-250, 450), seed=3)
    other = convert(tmp_path / "s.nwb", align_field="move_onset_time",
                    window_ms=(-250, 450), seed=4)
    np.testing.assert_array_equal(again["valid_inds"], data["valid_inds"])
    assert not np.array_equal(other["valid_inds"], data["valid_inds"])


def test_good_units_and_heldout_units(tmp_path):
    quality = ["good", "noise", "good", "good", "mua", "good", "good", "good"]
    write_nwb(tmp_path / "q.nwb", quality=quality)
    kw = dict(align_field="move_onset_time", window_ms=(-250, 450), seed=1)
    good = convert(tmp_path / "q.nwb", units="good", **kw)
    assert list(good["heldin_unit_ids"]) == [100, 102, 103, 105, 106, 107]
    allu = convert(tmp_path / "q.nwb", **kw)
    np.testing.assert_array_equal(good["train_data"], allu["train_data"][:, :, [0, 2, 3, 5, 6, 7]])

    held = convert(tmp_path / "q.nwb", units="good", heldout_units=("103", "107"),
                   fp_bins=5, **kw)
    assert list(held["heldin_unit_ids"]) == [100, 102, 105, 106]
    assert list(held["heldout_unit_ids"]) == [103, 107]
    for split in ("train", "valid"):
        recon, x = held[split + "_recon_data"], held[split + "_data"]
        assert recon.shape == x.shape[:1] + (75, 6)
        np.testing.assert_array_equal(recon[:, :70, :4], x)
        np.testing.assert_array_equal(recon[:, :70, 4:],
                                      allu[split + "_data"][:, :, [3, 7]])


def test_continuous_recording_is_chopped_with_what_merging_needs(tmp_path):
    truth = write_nwb(tmp_path / "c.nwb", trials=False)
    data = convert(tmp_path / "c.nwb", chop_bins=50, overlap_bins=10, seed=0)
    starts = data["segment_start_bins"]
    total = int(data["recording_bins"])
    rec = nwb_import.read_nwb(str(tmp_path / "c.nwb"))
    assert rec.start_s == 0 and truth["stop"] - 0.2 < rec.stop_s <= truth["stop"]
    assert total == int(rec.stop_s / 0.01)
    assert starts[0] == 0 and starts[-1] + 50 == total
    assert np.all(np.diff(starts)[:-1] == 40)
    assert len(data["train_inds"]) + len(data["valid_inds"]) == len(starts)
    whole = recording.continuous_counts(rec, 0.01)
    e = 3
    s = starts[data["valid_inds"][e]]
    np.testing.assert_array_equal(data["valid_data"][e], whole[s:s + 50])


ALIGN = dict(align_field="move_onset_time", window_ms=(-250, 450))


@pytest.mark.parametrize("make, options, message", [
    (dict(units=False), ALIGN, "units: this NWB file has no units table"),
    ({}, dict(ALIGN, window_ms=(-1000, 450)),
     "--window_ms=-1000,450: 1 trial(s) run off the recording [0, "),
    ({}, dict(ALIGN, align_field="go_cue_time"),
     "--align_field=go_cue_time: no such trials column (columns: start_time, stop_time, "
     "move_onset_time, condition)"),
    (dict(silent_unit=2), ALIGN, "units: 1 unit(s) have no spikes (ids 102)"),
    (dict(overlap_trials=True), ALIGN, "trials: trials 3 and 4 overlap"),
    ({}, dict(ALIGN, window_ms=(-250, 455)),
     "--window_ms=-250,455: the window of 705 ms is not a multiple of --bin_ms=10"),
])
def test_bad_input_is_one_line_naming_file_and_key(make, options, message, tmp_path):
    path = tmp_path / "bad.nwb"
    write_nwb(path, n_trials=12, **make)
    with pytest.raises(errors.DataError) as err:
        convert(path, **options)
    assert str(err.value).startswith(str(path) + ": ")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_command_error_is_one_line_with_status_2(tmp_path):
    write_nwb(tmp_path / "bad.nwb", n_trials=12)
    proc = subprocess.run([sys.executable, "-m", "lfads_tf2.data.nwb",
                           str(tmp_path / "bad.nwb"), str(tmp_path / "out"), "--bin_ms=10",
                           "--align_field=go_cue", "--window_ms=-250,450"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines() == [
        "error: %s: --align_field=go_cue: no such trials column (columns: start_time, "
        "stop_time, move_onset_time, condition)" % (tmp_path / "bad.nwb")]
    assert not os.path.exists(tmp_path / "out")


def test_missing_pynwb_names_the_extra(tmp_path):
    code = ("import sys; sys.modules['pynwb'] = None\n"
            "from lfads_tf2.data import nwb as nwb_import\n"
            "sys.argv = ['lfads_from_nwb', %r, %r, '--chop_bins=10']\n"
            "nwb_import.console_main()\n" % (str(tmp_path / "x.nwb"), str(tmp_path / "o")))
    (tmp_path / "x.nwb").write_bytes(b"")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [
        "error: (import): pynwb: " + nwb_import.MISSING_PYNWB]


def test_converted_file_trains_one_epoch(tmp_path):
    data_dir, save_dir = tmp_path / "data", tmp_path / "save"
    write_nwb(tmp_path / "s.nwb", n_trials=60)
    proc = subprocess.run([sys.executable, "-m", "lfads_tf2.data.nwb", str(tmp_path / "s.nwb"),
                           str(data_dir / "nwb_s1"), "--bin_ms=20",
                           "--align_field=move_onset_time", "--window_ms=-200,400",
                           "--condition_field=condition", "--heldout_units=101",
                           "--valid_fraction=0.3"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Wrote ")
    data = utils.read_data(str(data_dir / "nwb_s1"))
    assert data["train_data"].shape[1:] == (30, 7)
    lfads_testdata.run(["--data_dir=%s" % data_dir, "--data_filename_stem=nwb",
                        "--lfads_save_dir=%s" % save_dir, "--max_epochs=1"]
                       + lfads_testdata.TINY_NO_CONTROLLER)
    lines = lfads_testdata.fitlog_lines(str(save_dir))
    assert lines and np.isfinite(lfads_testdata.fitlog_record(lines[-1])["total_va"])
