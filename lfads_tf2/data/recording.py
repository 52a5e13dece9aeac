"""A recording (spike times or binned counts, unit ids, trial table) to an LFADS data dict.

The readers (nwb_import, array_import) fill a `Recording`; `to_lfads` turns it into
the keys that utils.read_datasets reads:

    train_data, valid_data     [E, T, N_in] int32 counts (held-in units)
    train_inds, valid_inds     [E] the trial (or segment) number of each row
    condition_labels_train/_valid   [E] when --condition_field names a trials column
    train_recon_data, valid_recon_data   [E, T + fp_bins, N_in + N_out] with held-out
                               units or forward prediction; first N_in columns and
                               first T bins equal *_data
    heldin_unit_ids [N_in], heldout_unit_ids [N_out], bin_ms, dt (seconds)

Trial-aligned data also get `align_times_s` [trials] (every trial, by number);
chopped continuous data get what merging needs: `segment_start_bins` [segments],
`overlap_bins`, `recording_bins` and `recording_start_s`.

Every problem is a errors.DataError with one line '<file>: <key or flag>: <problem>'.
"""
import dataclasses
from typing import Optional

import numpy as np

from lfads_tf2 import errors
import utils
from lfads_tf2.data import binning


@dataclasses.dataclass
class Recording:
    """What the readers produce. Times in seconds.

    Either spike_times (one 1-d array per unit) or counts_txn [T_rec, N] binned at
    counts_bin_s from start_s. trials maps column name -> [trials] array; None when
    the source has no trial table.
    """
    path: str
    unit_ids: np.ndarray
    start_s: float
    stop_s: float
    spike_times: Optional[list] = None
    counts_txn: Optional[np.ndarray] = None
    counts_bin_s: Optional[float] = None
    quality: Optional[np.ndarray] = None
    trials: Optional[dict] = None


@dataclasses.dataclass
class Options:
    """The conversion flags (see the commands' --help)."""
    bin_ms: float = 10.0
    align_field: str = ""
    window_ms: tuple = ()
    chop_bins: int = 0
    overlap_bins: int = 0
    valid_fraction: float = 0.2
    seed: int = 0
    condition_field: str = ""
    units: str = "all"
    heldout_units: tuple = ()
    fp_bins: int = 0


def fail(path, key, problem):
    """A one-line DataError '<path>: <key>: <problem>'."""
    return errors.DataError(" ".join(("%s: %s: %s" % (path, key, problem)).split()))


def _ids_text(ids, limit=8):
    ids = [str(i) for i in ids]
    return ", ".join(ids[:limit]) + (", ..." if len(ids) > limit else "")


def parse_window_ms(text):
    """'-250,450' -> (-250.0, 450.0)."""
    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    try:
        w0, w1 = (float(p) for p in parts)
    except ValueError:
        raise fail("(flags)", "--window_ms=%s" % text, "expected two numbers START,STOP "
                   "in ms relative to the align time, e.g. -250,450") from None
    if w1 <= w0:
        raise fail("(flags)", "--window_ms=%s" % text, "STOP must be after START")
    return w0, w1


def parse_unit_list(text):
    """'3,7,12' -> ('3', '7', '12'): unit ids as written (matched as text)."""
    return tuple(p for p in str(text).replace(" ", "").split(",") if p)


def select_units(rec, opts):
    """Indices of the units used: all, or those whose quality is 'good'."""
    if opts.units == "all":
        keep = np.arange(len(rec.unit_ids))
    elif opts.units == "good":
        if rec.quality is None:
            raise fail(rec.path, "--units=good", "the units table has no 'quality' column; "
                       "use --units=all")
        quality = np.asarray([q.decode() if isinstance(q, bytes) else q
                              for q in rec.quality], dtype=object)
        keep = np.flatnonzero([str(q).strip().lower() in ("good", "true", "1")
                               for q in quality])
        if keep.size == 0:
            raise fail(rec.path, "--units=good", "no unit has quality 'good'")
    else:
        raise fail(rec.path, "--units=%s" % opts.units, "expected all or good")
    if rec.spike_times is not None:
        empty = [rec.unit_ids[i] for i in keep if len(rec.spike_times[i]) == 0]
    else:
        empty = [rec.unit_ids[i] for i in keep if not rec.counts_txn[:, i].any()]
    if empty:
        # A silent unit has no rate to infer and would make the read-out's rate 0.
        raise fail(rec.path, "units", "%d unit(s) have no spikes (ids %s); remove them or "
                   "select others with --units" % (len(empty), _ids_text(empty)))
    return keep


def split_heldout(rec, keep, opts):
    """(held-in indices, held-out indices) into the recording's units."""
    if not opts.heldout_units:
        return keep, keep[:0]
    ids = [str(rec.unit_ids[i]) for i in keep]
    missing = [u for u in opts.heldout_units if u not in ids]
    if missing:
        raise fail(rec.path, "--heldout_units", "unit id(s) %s are not among the selected "
                   "units (ids %s)" % (_ids_text(missing), _ids_text(ids)))
    out = np.asarray([keep[ids.index(u)] for u in opts.heldout_units])
    held_in = np.asarray([i for i in keep if i not in set(out.tolist())])
    if held_in.size == 0:
        raise fail(rec.path, "--heldout_units", "holds out every unit; keep some held in")
    return held_in, out


def _trial_column(rec, name, flag):
    if rec.trials is None:
        raise fail(rec.path, "trials", "%s=%s needs a trials table, and this recording has "
                   "none" % (flag, name))
    if name not in rec.trials:
        raise fail(rec.path, "%s=%s" % (flag, name), "no such trials column (columns: %s)"
                   % ", ".join(rec.trials))
    return np.asarray(rec.trials[name])


def check_trials_do_not_overlap(rec):
    """Trials (start_time, stop_time) in time order must not overlap."""
    if rec.trials is None or "start_time" not in rec.trials or "stop_time" not in rec.trials:
        return
    start = np.asarray(rec.trials["start_time"], np.float64)
    stop = np.asarray(rec.trials["stop_time"], np.float64)
    order = np.argsort(start, kind="stable")
    for a, b in zip(order[:-1], order[1:]):
        if start[b] < stop[a] - 1e-9:  # back-to-back trials share an edge
            raise fail(rec.path, "trials", "trials %d and %d overlap ([%g, %g] s and "
                       "[%g, %g] s)" % (a, b, start[a], stop[a], start[b], stop[b]))


def _window_bins(path, window, ms, bin_ms):
    """The window's length in bins; it must hold a whole number of bins."""
    n = ms / bin_ms
    if abs(n - round(n)) > 1e-6:
        raise fail(path, window, "the window of %g ms is not a multiple of --bin_ms=%g"
                   % (ms, bin_ms))
    return int(round(n))


def aligned_counts(rec, opts, bin_s):
    """(counts [E, T + fp, N_all], T, align times [E], trial numbers [E])."""
    if not opts.window_ms:
        raise fail("(flags)", "--window_ms", "required with --align_field (e.g. "
                   "--window_ms=-250,450)")
    w0, w1 = opts.window_ms
    window = "--window_ms=%g,%g" % (w0, w1)
    n_bins = _window_bins(rec.path, window, w1 - w0, opts.bin_ms)
    align_s = _trial_column(rec, opts.align_field, "--align_field").astype(np.float64)
    check_trials_do_not_overlap(rec)
    # Trials without the event (NaN) are left out, as they have nothing to align to.
    trial_nums = np.flatnonzero(np.isfinite(align_s))
    if trial_nums.size == 0:
        raise fail(rec.path, "--align_field=%s" % opts.align_field, "no trial has a value")
    starts_s = align_s[trial_nums] + w0 / 1000.0
    stops_s = starts_s + (n_bins + opts.fp_bins) * bin_s
    off = np.flatnonzero((starts_s < rec.start_s - 1e-9) | (stops_s > rec.stop_s + 1e-9))
    if off.size:
        e = off[0]
        fp = " plus %d forward-prediction bins" % opts.fp_bins if opts.fp_bins else ""
        raise fail(rec.path, window, "%d trial(s) run off the recording [%g, %g] s, first "
                   "trial %d: [%g, %g] s%s" % (off.size, rec.start_s, rec.stop_s,
                                               trial_nums[e], starts_s[e], stops_s[e], fp))
    if rec.spike_times is not None:
        counts = binning.window_spikes(rec.spike_times, starts_s, n_bins + opts.fp_bins,
                                       bin_s)
    else:
        first = binning.bin_index(starts_s, rec.start_s, bin_s)
        counts = binning.window_counts(rec.counts_txn, first, n_bins + opts.fp_bins)
    return counts, n_bins, align_s, trial_nums


def continuous_counts(rec, bin_s):
    """The whole recording binned: [T_rec, N_all]."""
    if rec.spike_times is None:
        return rec.counts_txn
    n_bins = int(np.floor(np.round((rec.stop_s - rec.start_s) / bin_s, 9)))
    return binning.bin_spikes(rec.spike_times, rec.start_s, n_bins, bin_s)


def to_lfads(rec, opts):
    """The LFADS data dict of a recording (see the module docstring)."""
    if opts.bin_ms <= 0:
        raise fail("(flags)", "--bin_ms=%g" % opts.bin_ms, "must be positive")
    if rec.counts_txn is not None and abs(rec.counts_bin_s * 1000.0 - opts.bin_ms) > 1e-9:
        raise fail(rec.path, "counts", "are binned at %g ms, --bin_ms=%g"
                   % (rec.counts_bin_s * 1000.0, opts.bin_ms))
    if opts.fp_bins < 0:
        raise fail("(flags)", "--fp_bins=%d" % opts.fp_bins, "must be 0 or more")
    bin_s = opts.bin_ms / 1000.0
    keep = select_units(rec, opts)
    held_in, held_out = split_heldout(rec, keep, opts)
    extra = {"bin_ms": float(opts.bin_ms), "dt": bin_s}

    if opts.align_field:
        if opts.chop_bins:
            raise fail("(flags)", "--chop_bins", "chops continuous data; leave it out with "
                       "--align_field")
        counts, n_bins, align_s, numbers = aligned_counts(rec, opts, bin_s)
        extra["align_times_s"] = align_s
        labels = None
        if opts.condition_field:
            labels = _trial_column(rec, opts.condition_field, "--condition_field")[numbers]
    else:
        if opts.chop_bins <= 0:
            raise fail("(flags)", "--chop_bins", "give --align_field (trials) or --chop_bins "
                       "(continuous data) to cut the recording into trials")
        if not 0 <= opts.overlap_bins < opts.chop_bins:
            raise fail("(flags)", "--overlap_bins=%d" % opts.overlap_bins,
                       "must be in [0, --chop_bins)")
        if opts.condition_field:
            raise fail("(flags)", "--condition_field", "needs trials (--align_field); chopped "
                       "segments have no conditions")
        record = continuous_counts(rec, bin_s)
        try:
            starts = binning.chop_starts(len(record), opts.chop_bins, opts.overlap_bins,
                                         tail_bins=opts.fp_bins)
        except ValueError as e:
            raise fail(rec.path, "--chop_bins=%d" % opts.chop_bins, str(e)) from None
        n_bins = opts.chop_bins
        counts = binning.chop(record, starts, opts.chop_bins + opts.fp_bins)
        numbers, labels = np.arange(len(starts)), None
        extra.update(segment_start_bins=starts, overlap_bins=int(opts.overlap_bins),
                     recording_bins=int(len(record)), recording_start_s=float(rec.start_s))

    try:
        train, valid = binning.split_indices(len(numbers), opts.valid_fraction, opts.seed)
    except ValueError as e:
        raise fail(rec.path, "--valid_fraction=%g" % opts.valid_fraction, str(e)) from None
    counts = counts.astype(np.int32)
    data = {"train_data": counts[train][:, :n_bins][:, :, held_in],
            "valid_data": counts[valid][:, :n_bins][:, :, held_in],
            "train_inds": numbers[train], "valid_inds": numbers[valid],
            "heldin_unit_ids": np.asarray(rec.unit_ids)[held_in]}
    if held_out.size or opts.fp_bins:
        cols = np.concatenate([held_in, held_out])
        data["train_recon_data"] = counts[train][:, :, cols]
        data["valid_recon_data"] = counts[valid][:, :, cols]
        data["heldout_unit_ids"] = np.asarray(rec.unit_ids)[held_out]
    if labels is not None:
        data["condition_labels_train"] = labels[train]
        data["condition_labels_valid"] = labels[valid]
    data.update(extra)
    return data


def write(out_path, data):
    """Writes the data dict with the project's writer (atomically) and says what it holds."""
    utils.write_data(out_path, data)
    n_train, T, n_in = data["train_data"].shape
    what = "%d train and %d valid %s of %d bins x %d units" % (
        n_train, len(data["valid_data"]), "segments" if "segment_start_bins" in data
        else "trials", T, n_in)
    if "heldout_unit_ids" in data:
        what += " (+ %d held-out units, %d forward bins)" % (
            len(data["heldout_unit_ids"]),
            data["train_recon_data"].shape[1] - T)
    print("Wrote %s: %s" % (out_path, what))
