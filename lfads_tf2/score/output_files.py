"""Reading an LFADS output file next to the data file it ran on, with one-line errors.

The output file is a `posterior_sample_and_average` or `posterior_push_mean` file:
`output_dist_params` [E_out, T, P*D], the P parameters of its observation model (Poisson
rates; Gaussian means then variances; ...), `output_dist_mean` [E_out, T, D] and the
attribute `output_dist` (both absent in files of older versions). The data file holds
`<split>_data` [E, T, D] and optionally `<split>_truth` and the scalars
`conversion_factor`, `max_firing_rate`, `dt`. Every check raises InputError with a
message naming the file, the key and the problem.
"""
import os
import re

import h5py
import numpy as np

from lfads_tf2.evaluate import figures
from lfads_tf2.model import observation
from lfads_tf2.errors import InputError


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


def stored_output_dist(hf):
    """The --output_dist a posterior file was written with (its attribute
    `output_dist`), or None for files from before the attribute."""
    value = hf.attrs.get("output_dist")
    if value is None:
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


def resolve_output_dist(requested, width, n_chan, out_path, stored=None):
    """The observation model whose output_dist_params are `width` wide for `n_chan`
    channels (Poisson [.., D], Gaussian [.., 2D], ...); `requested` if given must fit.
    stored: the file's own model (stored_output_dist), which decides when the width
    fits several (Gaussian and gamma are both [.., 2D]); a file without one comes from a
    version with Poisson and Gaussian only."""
    if stored is not None and requested not in (None, stored):
        raise InputError("%s: --output_dist=%s but the file was written by an "
                         "--output_dist=%s model" % (out_path, requested, stored))
    unnamed = stored is None and requested is None
    requested = stored if stored is not None else requested
    fits = observation.names_for_width(width, n_chan, unnamed)
    if not fits:
        raise InputError("%s: output_dist_params has %d channels, the data %d: expected %s"
                         % (out_path, width, n_chan, observation.describe_widths(n_chan)))
    if requested is not None:
        if requested not in fits:
            raise InputError("%s: --output_dist=%s but output_dist_params has %d channels for "
                             "%d data channels (that is %s)" % (out_path, requested, width,
                                                                n_chan, " or ".join(fits)))
        return requested
    if len(fits) > 1:
        raise InputError("%s: output_dist_params has %d channels for %d data channels, which "
                         "fits %s; pass --output_dist" % (out_path, width, n_chan,
                                                          " and ".join(fits)))
    return fits[0]


def model_of_file(hf, output_dist):
    """The observation model `output_dist` with the constants the file holds
    (`output_dist_<name>`, e.g. ZIG's output_dist_s_min), for reading its parameters."""
    model = observation.MODELS[output_dist]
    return observation.for_dist(output_dist, **{
        name: np.asarray(require(hf, "output_dist_" + name)[()])
        for name in model.constant_names})


def mean_of_file(hf, output_dist):
    """The observation model's mean [E, T, N] of a posterior file: `output_dist_mean`,
    else (files from before that key) the mean of `output_dist_params`."""
    if "output_dist_mean" in hf:
        return np.asarray(hf["output_dist_mean"][()], np.float64)
    return model_of_file(hf, output_dist).mean(require(hf, "output_dist_params")[()])


def truth_scale_from_file(hf, output_dist):
    """plots.truth_scale with the scalars read from a data file."""
    return figures.truth_scale(read_scalar(hf, "conversion_factor"),
                                  read_scalar(hf, "max_firing_rate"),
                                  read_scalar(hf, "dt"), output_dist)
