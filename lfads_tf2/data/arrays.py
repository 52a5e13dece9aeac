"""`lfads_from_arrays IN OUT_H5`: spike times or binned counts in plain arrays as LFADS data.

Inputs (times in --time_unit, seconds by default):
  npz with `spike_times` [spikes] and `unit_ids` [spikes] (the unit of each spike);
  npz with `counts` [time, units] binned at --bin_ms from time 0 (optional
      `unit_ids` [units]);
  csv with a header `time,unit` and one spike per row.
A trial table is optional: in an npz, 1-d arrays named `trials_<column>` (e.g.
trials_start_time, trials_stop_time, trials_move_onset_time, trials_condition); for a
csv, --trials_csv names a csv with one column per trials column.
"""
import csv
import os
import sys

import numpy as np
from absl import flags

from lfads_tf2 import errors
from lfads_tf2 import cli
from lfads_tf2.data import converter_flags
from lfads_tf2.data import recording

flags.DEFINE_string("time_unit", "s", "Unit of the times in the input: s or ms.")
flags.DEFINE_string("trials_csv", "", "For csv input: a csv of the trials table (header of "
                    "column names, one trial per row).")

DESCRIPTION = """\
lfads_from_arrays IN OUT_H5 [flags]

Bins spike times (npz with spike_times and unit_ids, or csv time,unit) or takes binned
counts (npz with counts [time, units] at --bin_ms) into an LFADS data file, aligned to
a trials column (npz arrays trials_<column>, or --trials_csv) or chopped:

  lfads_from_arrays spikes.npz data/rec_day1 --bin_ms=10 --chop_bins=50 --overlap_bins=10
  lfads_from_arrays spikes.csv data/rec_day1 --trials_csv=trials.csv \\
      --align_field=go_time --window_ms=-200,600 --condition_field=target
"""
FLAG_GROUPS = [("Input", ["time_unit", "trials_csv"])] + converter_flags.SHARED_GROUPS


def _number_or_text(values):
    try:
        return np.asarray(values, np.float64)
    except ValueError:
        return np.asarray(values)


def read_trials_csv(path):
    """{column: [trials]} of a csv with a header row."""
    if not os.path.exists(path):
        raise recording.fail(path, "--trials_csv", "not found")
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise recording.fail(path, "--trials_csv", "no trials")
    return {name: _number_or_text([row[name] for row in rows]) for name in rows[0]}


def _spikes_by_unit(path, times, units):
    if len(times) != len(units):
        raise recording.fail(path, "unit_ids", "has %d entries, spike_times %d; expected one "
                             "unit id per spike" % (len(units), len(times)))
    ids = np.unique(units)
    return ids, [np.sort(times[units == u]) for u in ids]


def read_arrays(path, time_unit="s", trials_csv="", bin_ms=10.0):
    """The recording.Recording of an npz or csv file; counts are binned at bin_ms."""
    if time_unit not in ("s", "ms"):
        raise recording.fail(path, "--time_unit=%s" % time_unit, "expected s or ms")
    scale = 1.0 if time_unit == "s" else 1e-3
    if not os.path.exists(path):
        raise recording.fail(path, "(file)", "not found")
    trials = None
    counts = counts_bin_s = spikes = None
    if path.endswith(".csv"):
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"time", "unit"} <= set(reader.fieldnames):
                raise recording.fail(path, "(header)", "expected the columns time,unit, got "
                                     "%s" % ",".join(reader.fieldnames or []))
            rows = [(float(r["time"]), r["unit"]) for r in reader]
        times = np.asarray([t for t, _ in rows]) * scale
        ids, spikes = _spikes_by_unit(path, times, _number_or_text([u for _, u in rows]))
    else:
        try:
            npz = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            raise recording.fail(path, "(file)", "not a readable npz file (%s)" % e) from None
        with npz:
            keys = set(npz.files)
            trials = {k[len("trials_"):]: np.asarray(npz[k]) for k in sorted(keys)
                      if k.startswith("trials_")} or None
            if trials:
                trials = {k: v * scale if v.dtype.kind == "f" and k.endswith("time") else v
                          for k, v in trials.items()}
            if "counts" in keys:
                counts = np.asarray(npz["counts"])
                if counts.ndim != 2:
                    raise recording.fail(path, "counts", "expected [time, units], got shape "
                                         "%s" % (counts.shape,))
                ids = np.asarray(npz["unit_ids"]) if "unit_ids" in keys else np.arange(
                    counts.shape[1])
                counts_bin_s = bin_ms / 1000.0
            elif "spike_times" in keys and "unit_ids" in keys:
                ids, spikes = _spikes_by_unit(path, np.asarray(npz["spike_times"],
                                                               np.float64) * scale,
                                              np.asarray(npz["unit_ids"]))
            else:
                raise recording.fail(path, "(keys)", "expected counts, or spike_times and "
                                     "unit_ids (found: %s)" % ", ".join(sorted(keys)))
    if trials_csv:
        trials = read_trials_csv(trials_csv)
        trials = {k: v * scale if v.dtype.kind == "f" and k.endswith("time") else v
                  for k, v in trials.items()}
    if counts is not None:
        start_s, stop_s = 0.0, len(counts) * counts_bin_s
    else:
        all_t = np.concatenate(spikes) if spikes else np.zeros(0)
        start_s = min(0.0, float(all_t.min()) if all_t.size else 0.0)
        stop_s = float(all_t.max()) if all_t.size else 0.0
        if trials is not None and "stop_time" in trials:
            stop_s = max(stop_s, float(np.nanmax(trials["stop_time"])))
    return recording.Recording(path=path, unit_ids=ids, start_s=start_s, stop_s=stop_s,
                               spike_times=spikes, counts_txn=counts,
                               counts_bin_s=counts_bin_s, trials=trials)


def main(argv):
    def read(path):
        return read_arrays(path, flags.FLAGS.time_unit, flags.FLAGS.trials_csv,
                           flags.FLAGS.bin_ms)
    return converter_flags.convert_main(argv, "lfads_from_arrays", read)


def console_main():
    """Entry point of the `lfads_from_arrays` console command."""
    cli.run(main, DESCRIPTION, FLAG_GROUPS, module=sys.modules[__name__],
            errors=(errors.DataError,))


if __name__ == "__main__":
    console_main()
