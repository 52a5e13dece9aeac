"""Reading an LFADS output file next to the data file it ran on, with one-line errors.

The output file is a `posterior_sample_and_average` or `posterior_push_mean` file:
`output_dist_params` [E_out, T, D] rates, or [E_out, T, 2D] Gaussian means then
variances. The data file holds `<split>_data` [E, T, D] and optionally `<split>_truth`
and the scalars `conversion_factor`, `max_firing_rate`, `dt`. Every check raises
InputError with a message naming the file, the key and the problem.
"""
import os
import re

import h5py
import numpy as np

from lfads_tf2.evaluate import figures


class InputError(Exception):
    """A problem with the files named by the user; commands print it as one line."""


def open_h5(path, what):
    """Opens an HDF5 file read-only, turning every failure into a one-line InputError."""
    if not os.path.exists(path):
        raise InputError("%s: %s not found" % (path, what))
    try:
        return h5py.File(path, "r")
    except OSError as e:
        raise InputError("%s: %s is not a readable HDF5 file (%s)"
                         % (path, what, str(e).splitlines()[0])) from None


def require(hf, key):
    """hf[key], or an InputError naming the file, the key and what is there instead."""
    if key not in hf:
        keys = sorted(hf.keys())
        shown = ", ".join(keys[:12]) + (", ..." if len(keys) > 12 else "")
        raise InputError("%s: missing key '%s' (present: %s)" % (hf.filename, key, shown))
    return hf[key]


def read_scalar(hf, key):
    """A scalar dataset as float, or None when absent."""
    if key not in hf:
        return None
    value = np.asarray(hf[key][()])
    if value.size != 1:
        raise InputError("%s: key '%s' should be a scalar, has shape %s"
                         % (hf.filename, key, value.shape))
    return float(value.reshape(()))


_SPLIT_IN_NAME = re.compile(r"(?:^|_)(train|valid|test)_(?:posterior_sample_and_average|"
                            r"posterior_push_mean)$")


def resolve_split(split, output_file):
    """The split to use: --split, else the one in the output file's canonical name.

    A --split that contradicts the name is an error: plotting/scoring train outputs
    against valid data would silently compare unrelated trials.
    """
    m = _SPLIT_IN_NAME.search(os.path.basename(output_file))
    named = m.group(1) if m else None
    if split is None:
        if named is None:
            raise InputError("%s: cannot tell the split from the file name; pass --split"
                             % output_file)
        return named
    if named is not None and named != split:
        raise InputError("%s: file name says split '%s' but --split=%s"
                         % (output_file, named, split))
    return split


def check_shapes(out_path, params_shape, data_path, data_key, data_shape):
    """Checks output_dist_params [E_out, T, D or 2D] against the data's [E, T, D]."""
    if len(params_shape) != 3 or len(data_shape) != 3:
        raise InputError("%s: output_dist_params has shape %s, %s: %s has %s; both must be "
                         "[trials, time, channels]" % (out_path, params_shape, data_path,
                                                       data_key, data_shape))
    e_out, t_out = params_shape[:2]
    e_dat, t_dat = data_shape[:2]
    if e_out > e_dat:
        raise InputError("mismatched trial counts: %s has %d trials but %s: %s has %d "
                         "(wrong --split or data file?)" % (out_path, e_out, data_path,
                                                            data_key, e_dat))
    if t_out != t_dat:
        raise InputError("mismatched time bins: %s has %d, %s: %s has %d"
                         % (out_path, t_out, data_path, data_key, t_dat))


def resolve_output_dist(requested, width, n_chan, out_path):
    """Poisson iff output_dist_params is [.., D], Gaussian iff [.., 2D] (means, variances)."""
    inferred = {n_chan: "poisson", 2 * n_chan: "gaussian"}.get(width)
    if inferred is None:
        raise InputError("%s: output_dist_params has %d channels, the data %d: expected %d "
                         "(poisson) or %d (gaussian)" % (out_path, width, n_chan, n_chan,
                                                        2 * n_chan))
    if requested is not None and requested != inferred:
        raise InputError("%s: --output_dist=%s but output_dist_params has %d channels for "
                         "%d data channels (that is %s)" % (out_path, requested, width,
                                                            n_chan, inferred))
    return inferred


def truth_scale_from_file(hf, output_dist):
    """plots.truth_scale with the scalars read from a data file."""
    return figures.truth_scale(read_scalar(hf, "conversion_factor"),
                                  read_scalar(hf, "max_firing_rate"),
                                  read_scalar(hf, "dt"), output_dist)
