"""`lfads_align FILE [FILE ...] --factors_dim=F`: read-in alignment of several sessions.

Principal-components regression, on the train split of each session:

    R_s   [C*T, N_s]  condition-averaged counts of session s, smoothed in time
                      (conditions: the labels every session has)
    b_s = mean of R_s over conditions and time                    [N_s]
    Z = [R_1 - b_1, ..., R_S - b_S]                               [C*T, sum N_s]
    P = Z V_F                                                     [C*T, F]
        (V_F: the top F principal directions of Z, shared by all sessions)
    W_s = argmin ||(R_s - b_s) W - P||^2 + lam_s ||W||^2          [N_s, F]
        lam_s = ridge * trace(Z_s^T Z_s) / N_s

The model's read-in then starts as (x - b_s) W_s, which maps every session's neurons
onto the same factors, and its read-out as f W_s^T + b_s. W_s and b_s are written as
`alignment_matrix_cxf` and `alignment_bias_c` into each session's file (atomically).
"""
import sys

import numpy as np
from absl import flags

from lfads_tf2 import errors
import utils
from lfads_tf2 import cli

FLAGS = flags.FLAGS

# --factors_dim is also run_lfads's flag (same meaning); where both are loaded in one
# process (tests) they are one flag.
if "factors_dim" not in FLAGS:
    flags.DEFINE_integer("factors_dim", None, "Number of factors F: the columns of "
                         "alignment_matrix_cxf; pass the same value to run_lfads.",
                         allow_override=True)
flags.DEFINE_float("smooth_ms", 20.0, "Standard deviation in ms of the Gaussian that "
                   "smooths the condition-averaged counts before the regression.")
flags.DEFINE_float("ridge", 0.1, "Ridge penalty of the regression, relative to the mean "
                   "variance of a session's neurons (0: least squares).")

DESCRIPTION = """\
lfads_align FILE [FILE ...] --factors_dim=F

Writes each session's read-in alignment (alignment_matrix_cxf [neurons, F] and
alignment_bias_c [neurons]) into its LFADS data file, by principal-components
regression of the sessions' condition-averaged rates onto shared principal
components. The sessions must share condition labels (condition_labels_train, e.g.
from lfads_from_nwb --condition_field=...).

  lfads_align data/mysession_day1 data/mysession_day2 --factors_dim=20
"""
FLAG_GROUPS = [("Alignment", ["factors_dim", "smooth_ms", "ridge"])]


def _fail(path, key, problem):
    return errors.DataError("%s: %s: %s" % (path, key, problem))


def _labels(data, path):
    if "condition_labels_train" not in data:
        raise _fail(path, "condition_labels_train", "missing; lfads_align averages trials "
                    "by condition (lfads_from_nwb --condition_field=... writes them)")
    labels = np.asarray(data["condition_labels_train"])
    return np.asarray([x.decode() if isinstance(x, bytes) else x for x in labels])


def condition_averages(data_extxn, labels_e, conditions):
    """[C, T, N]: mean over the trials of each condition."""
    return np.stack([data_extxn[labels_e == c].mean(axis=0) for c in conditions])


def smooth(x_ctn, sigma_bins):
    """Gaussian smoothing along time (axis 1)."""
    if sigma_bins <= 0:
        return x_ctn
    from scipy.ndimage import gaussian_filter1d  # scipy: slow to import, not for --help
    return gaussian_filter1d(x_ctn, sigma_bins, axis=1, mode="nearest")


def fit(rates, factors_dim, ridge=0.1):
    """[(W_s [N_s, F], b_s [N_s])] from each session's R_s [C*T, N_s] (module docstring)."""
    biases = [r.mean(axis=0) for r in rates]
    centred = [r - b for r, b in zip(rates, biases)]
    z = np.concatenate(centred, axis=1)
    if factors_dim > min(z.shape):
        raise ValueError("--factors_dim=%d is more than the %d conditions x bins or the %d "
                         "neurons of all sessions" % (factors_dim, z.shape[0], z.shape[1]))
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    scores = z @ vt[:factors_dim].T
    # The scores stay in counts, as in the original's synthetic multi-session data:
    # the read-out starts as f W^T, and W scaled to unit-variance scores was 2-3 times
    # larger, which made training from it markedly worse (valid cost after 3 epochs of
    # a tiny model on the five-session set: 631 scaled, 457 unscaled, 454 unaligned).
    out = []
    for zs, b in zip(centred, biases):
        gram = zs.T @ zs
        lam = ridge * np.trace(gram) / len(gram)
        w = np.linalg.solve(gram + lam * np.eye(len(gram)) + 1e-12 * np.eye(len(gram)),
                            zs.T @ scores)
        out.append((w, b))
    return out


def session_rates(datas, paths, smooth_bins):
    """[R_s [C*T, N_s]] over the conditions all sessions share, and those conditions."""
    labels = [_labels(d, p) for d, p in zip(datas, paths)]
    shared = set(labels[0].tolist())
    for lab in labels[1:]:
        shared &= set(lab.tolist())
    if not shared:
        raise _fail(paths[-1], "condition_labels_train", "no condition label is shared with "
                    "the other sessions")
    conditions = sorted(shared)
    rates = []
    for d, lab in zip(datas, labels):
        avg = smooth(condition_averages(np.asarray(d["train_data"], np.float64), lab,
                                        conditions), smooth_bins)
        rates.append(avg.reshape(-1, avg.shape[-1]))
    return rates, conditions


def align_files(paths, factors_dim, smooth_ms=20.0, ridge=0.1):
    """Computes and writes the alignment of every file; returns [(W_s, b_s)]."""
    datas = [utils.read_data(p) for p in paths]
    steps = {np.shape(d["train_data"])[1] for d in datas if "train_data" in d}
    for d, p in zip(datas, paths):
        if "train_data" not in d:
            raise _fail(p, "train_data", "missing")
    if len(steps) != 1:
        raise _fail(paths[-1], "train_data", "sessions differ in time bins (%s)"
                    % sorted(steps))
    # Our converters write bin_ms, the synthetic sets dt (seconds).
    bin_ms = float(datas[0]["bin_ms"]) if "bin_ms" in datas[0] else (
        1000.0 * float(datas[0]["dt"]) if "dt" in datas[0] else 10.0)
    rates, _ = session_rates(datas, paths, smooth_ms / bin_ms)
    try:
        fits = fit(rates, factors_dim, ridge)
    except ValueError as e:
        raise _fail(paths[0], "--factors_dim", str(e)) from None
    for d, p, (w, b) in zip(datas, paths, fits):
        d["alignment_matrix_cxf"] = w.astype(np.float32)
        d["alignment_bias_c"] = b.astype(np.float32)
        utils.write_data(p, d)
    return fits


def main(argv):
    paths = argv[1:]
    if not paths:
        raise cli.CommandError("expected one or more session files (lfads_align --help "
                               "shows the usage)")
    if FLAGS.factors_dim is None or FLAGS.factors_dim < 1:
        raise cli.CommandError("--factors_dim: required, a positive number of factors")
    align_files(paths, FLAGS.factors_dim, FLAGS.smooth_ms, FLAGS.ridge)
    print("Wrote alignment_matrix_cxf [neurons, %d] and alignment_bias_c into %d file(s)"
          % (FLAGS.factors_dim, len(paths)))
    return 0


def console_main():
    """Entry point of the `lfads_align` console command."""
    cli.run(main, DESCRIPTION, FLAG_GROUPS, module=sys.modules[__name__],
            errors=(errors.DataError,))


if __name__ == "__main__":
    console_main()
