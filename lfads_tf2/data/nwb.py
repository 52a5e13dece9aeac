"""`lfads_from_nwb NWB_FILE OUT_H5`: an NWB file's spikes as an LFADS data file.

Reads the units table (spike times, ids, `quality` when present) and, when present,
the trials table with pynwb, then bins, aligns or chops, selects units and splits as
recording.to_lfads does. pynwb is an optional dependency (the `nwb` extra): the rest
of the package imports without it.
"""
import os
import sys

import numpy as np
from absl import flags

from lfads_tf2 import errors
from lfads_tf2 import cli
from lfads_tf2.data import converter_flags
from lfads_tf2.data import recording

flags.DEFINE_string("units", "all", "Units to use: all, or good (those whose 'quality' "
                    "column says good).")

DESCRIPTION = """\
lfads_from_nwb NWB_FILE OUT_H5 [flags]

Bins the spike times of an NWB file's units table into an LFADS data file. Either
each trial becomes a window around an event of the trials table:

  lfads_from_nwb session.nwb data/mysession_day1 --bin_ms=10 \\
      --align_field=move_onset_time --window_ms=-250,450 --condition_field=condition

or a recording without trials is cut into overlapping segments (lfads_merge puts the
model's outputs back together):

  lfads_from_nwb session.nwb data/mysession_day1 --bin_ms=10 --chop_bins=50 \\
      --overlap_bins=10

Needs pynwb: pip install -e ".[nwb]".
"""
FLAG_GROUPS = [("Units", ["units"])] + converter_flags.SHARED_GROUPS

MISSING_PYNWB = ("lfads_from_nwb needs pynwb, which the core package does not install: "
                 "pip install -e \".[nwb]\" (or pip install pynwb)")


def _import_pynwb():
    try:
        import pynwb
    except ImportError:
        raise recording.fail("(import)", "pynwb", MISSING_PYNWB) from None
    return pynwb


def _column(table, name):
    return np.asarray(table[name].data[:])


def read_nwb(path):
    """The recording.Recording of an NWB file (spike times in seconds)."""
    if not os.path.exists(path):
        raise recording.fail(path, "(file)", "not found")
    pynwb = _import_pynwb()
    try:
        io = pynwb.NWBHDF5IO(path, "r")
        nwb = io.read()
    except Exception as e:  # noqa: BLE001  (h5py, hdmf and pynwb raise many kinds)
        raise recording.fail(path, "(file)", "not a readable NWB file (%s)"
                             % (str(e).splitlines() or [type(e).__name__])[0]) from None
    with io:
        units = nwb.units
        if units is None or len(units) == 0:
            raise recording.fail(path, "units", "this NWB file has no units table (LFADS "
                                 "needs sorted spike times)")
        ids = np.asarray(units.id[:])
        spikes = [np.asarray(units.get_unit_spike_times(i), np.float64)
                  for i in range(len(ids))]
        quality = _column(units, "quality") if "quality" in units.colnames else None
        trials = None
        if nwb.trials is not None and len(nwb.trials) > 0:
            trials = {name: _column(nwb.trials, name) for name in nwb.trials.colnames}
        stops = [t.max() for t in spikes if len(t)]
        starts = [0.0] + [t.min() for t in spikes if len(t)]
        if trials is not None:
            stops.append(float(np.nanmax(trials["stop_time"])))
            starts.append(float(np.nanmin(trials["start_time"])))
        if "obs_intervals" in units.colnames:
            # Where the units were observed, when the file says so.
            spans = [np.asarray(units["obs_intervals"][i]) for i in range(len(ids))]
            spans = [s for s in spans if s.size]
            if spans:
                starts.append(min(s.min() for s in spans))
                stops.append(max(s.max() for s in spans))
    return recording.Recording(path=path, unit_ids=ids, spike_times=spikes,
                               quality=quality, trials=trials,
                               start_s=float(min(starts)),
                               stop_s=float(max(stops) if stops else 0.0))


def main(argv):
    return converter_flags.convert_main(argv, "lfads_from_nwb", read_nwb,
                                     units=flags.FLAGS.units)


def console_main():
    """Entry point of the `lfads_from_nwb` console command."""
    cli.run(main, DESCRIPTION, FLAG_GROUPS, module=sys.modules[__name__],
            errors=(errors.DataError,))


if __name__ == "__main__":
    console_main()
