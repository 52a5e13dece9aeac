"""Writes a small example NWB file: 30 units, 120 reaching trials in 4 directions.

Each unit's rate rises after movement onset by an amount that depends on the reach
direction (a cosine tuning curve), on a 10 Hz background. The trials table has
move_onset_time and condition (0..3); the units table has a quality column.

  python scripts/make_example_nwb.py /tmp/example.nwb
"""
import datetime
import os
import sys

import numpy as np


def make_example(path, n_units=30, n_trials=120, seed=0):
    import pynwb
    rng = np.random.default_rng(seed)
    starts = 1.0 + 1.5 * np.arange(n_trials)
    onsets = starts + 0.5 + 0.2 * rng.uniform(size=n_trials)
    conds = rng.integers(0, 4, size=n_trials)
    stop = starts[-1] + 2.5
    preferred = rng.uniform(0, 2 * np.pi, n_units)
    nwb = pynwb.NWBFile(session_description="example reaching session",
                        identifier="lfads-example",
                        session_start_time=datetime.datetime(2024, 1, 1,
                                                             tzinfo=datetime.timezone.utc))
    nwb.add_unit_column(name="quality", description="spike sorting quality")
    for n in range(n_units):
        peak = 80.0
        t = np.sort(rng.uniform(0, stop, rng.poisson(peak * stop)))
        k = np.clip(np.searchsorted(onsets, t) - 1, 0, n_trials - 1)
        dt = t - onsets[k]
        tuning = 1 + np.cos(conds[k] * np.pi / 2 - preferred[n])
        bump = np.where((dt > 0) & (dt < 0.5), np.sin(np.pi * np.clip(dt, 0, 0.5) / 0.5), 0)
        rate = 10.0 + 30.0 * tuning * bump
        nwb.add_unit(spike_times=t[rng.uniform(0, peak, len(t)) < rate],
                     quality="good" if n % 10 else "mua")
    nwb.add_trial_column(name="move_onset_time", description="movement onset (s)")
    nwb.add_trial_column(name="condition", description="reach direction (0..3)")
    for e in range(n_trials):
        nwb.add_trial(start_time=starts[e], stop_time=starts[e] + 1.5,
                      move_onset_time=onsets[e], condition=int(conds[e]))
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with pynwb.NWBHDF5IO(path, "w") as io:
        io.write(nwb)


def main(argv):
    if len(argv) != 2 or argv[1] in ("-h", "--help"):
        print(__doc__)
        return 0 if len(argv) == 2 else 2
    make_example(argv[1])
    print("Wrote %s" % argv[1])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
