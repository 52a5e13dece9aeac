"""The ensemble's output files: the members' posterior outputs averaged, key by key.

    rates_bxtxn(ensemble) = 1/M sum_k rates_bxtxn(member k)

Only the keys that live in the data's space are averaged (AVERAGED_KEYS): the output
distribution's parameters (Poisson rates; Gaussian means then variances) and its mean
where the files have one. Everything else in a member's file lives in that member's own
latent space (factors, generator states and initial conditions, controller outputs, the
g0 prior and posterior) or is that member's own bound on its own likelihood (costs,
nll_bound_vaes, nll_bound_iwaes) or step count (train_steps): two members trained from
other seeds have unrelated factor axes, so a mean of them means nothing, and is left out.

For a Gaussian model the averaged parameters are the mean of the means and the mean of
the variances; the variance of the members' mixture would add the variance of their means.
For ZIG and gamma, the mean of [q, shape, scale] is not the mixture's parameters either:
`output_dist_mean`, the mean of the members' means, is the ensemble's prediction.
The data's own constants (the ZIG's per-neuron s_min, `output_dist_s_min`) and the file
attributes (the observation model's name) are the same in every member and are copied.
"""
import os

import h5py
import numpy as np

import utils
from lfads_tf2.errors import LfadsError

ENSEMBLE_FOLDER = "ensemble"
AVERAGED_KEYS = ("output_dist_params", "output_dist_mean")
COPIED_KEYS = ("output_dist_s_min",)
AVERAGED_KINDS = ("posterior_sample_and_average", "posterior_push_mean")


def output_names(hps, dataset_splits, kind):
    """File names of a kind's outputs, as run_lfads writes them in a save folder
    (lfads_tf2.evaluate.kinds.output_file_name): <stem><dataset>_<split>_<kind>, with
    the stem model_runs_ unless --output_filename_stem; one per dataset and split.

    dataset_splits: {dataset name: splits it holds (train, valid, test)}.
    """
    prefix = hps.output_filename_stem or "model_runs_"
    return ["%s%s_%s_%s" % (prefix, name, split, kind)
            for name in sorted(dataset_splits) for split in ("train", "valid", "test")
            if split in dataset_splits[name]]


def mean_of_files(paths):
    """{key: float64 mean over the files} of the AVERAGED_KEYS the first file holds.

    Raises LfadsError when a file is missing or unreadable, lacks one of those keys, or
    holds it in another shape (members evaluated with other flags or data)."""
    sums, first = {}, paths[0]
    for path in paths:
        if not os.path.exists(path):
            raise LfadsError("%s: member output missing" % path)
        try:
            hf = h5py.File(path, "r")
        except OSError as e:
            raise LfadsError("%s: member output unreadable (%s)"
                             % (path, str(e).splitlines()[0])) from None
        with hf:
            if path == first:
                keys = [k for k in AVERAGED_KEYS if k in hf]
                if not keys:
                    raise LfadsError("%s: none of %s to average"
                                     % (path, ", ".join(AVERAGED_KEYS)))
            for key in keys:
                if key not in hf:
                    raise LfadsError("%s: no key '%s', which %s has" % (path, key, first))
                value = np.asarray(hf[key][()], np.float64)
                if key in sums and value.shape != sums[key].shape:
                    raise LfadsError("%s: %s has shape %s, %s's %s" % (
                        path, key, list(value.shape), first, list(sums[key].shape)))
                sums[key] = value if key not in sums else sums[key] + value
    return {key: total / len(paths) for key, total in sums.items()}


def copied_parts(paths):
    """({key: value} of COPIED_KEYS, {attribute: value}) of the first member's file;
    LfadsError when another member's differ (members trained on other data)."""
    copies = []
    for path in paths:
        with h5py.File(path, "r") as hf:
            copies.append(({k: np.asarray(hf[k][()]) for k in COPIED_KEYS if k in hf},
                           dict(hf.attrs)))
    keys, attrs = copies[0]
    for path, (other_keys, other_attrs) in zip(paths[1:], copies[1:]):
        same = (sorted(other_keys) == sorted(keys) and other_attrs == attrs
                and all(np.array_equal(other_keys[k], keys[k]) for k in keys))
        if not same:
            raise LfadsError("%s: its %s differ from %s's (members trained on other data "
                             "or with another --output_dist)"
                             % (path, ", ".join(sorted(keys)) or "attributes", paths[0]))
    return keys, attrs


def write_ensemble_outputs(member_dirs, root, names):
    """Averages each output file `name` of the member folders into
    <root>/ensemble/<name>; returns the paths written."""
    folder = os.path.join(root, ENSEMBLE_FOLDER)
    os.makedirs(folder, exist_ok=True)
    written = []
    for name in names:
        paths = [os.path.join(d, name) for d in member_dirs]
        means = mean_of_files(paths)
        copied, attrs = copied_parts(paths)
        path = os.path.join(folder, name)
        with utils.atomic_path(path) as tmp:
            with h5py.File(tmp, "w-") as hf:
                hf.attrs.update(attrs)
                for key, value in {**means, **copied}.items():
                    hf.create_dataset(key, data=value, compression="gzip")
        written.append(path)
    return written
