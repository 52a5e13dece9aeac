"""Hyperparameters: the flags as a dict (HParams), their checks, and the keys derived
from the data.

    flags (lfads_tf2.train.flags) --build_hps--> hps --validate_hps--> checked
    hps + loaded datasets --add_derived_hps--> dataset names, widths, time bins

The original passed the same dict around (its build_hyperparameter_dict); so do we,
with attribute access and one-line UsageErrors for values the model cannot run with.
"""
import os

from lfads_tf2.data import checks
from lfads_tf2.errors import UsageError
from lfads_tf2.model import observation
from lfads_tf2.train import flags as run_flags

FLAGS = run_flags.FLAGS

# Flags that fix the shapes of the variables: a checkpoint can only be restored
# with the same values.
ARCHITECTURE_KEYS = (
    "output_dist", "ext_input_dim", "inject_ext_input_to_gen", "ic_dim",
    "factors_dim", "ic_enc_dim", "gen_dim", "co_dim", "ci_enc_dim", "con_dim",
    "do_causal_controller", "do_feed_factors_to_controller",
    "feedback_factors_or_rates", "dataset_names", "dataset_dims", "dataset_recon_dims")
# Keys derived from the data files, not from flags of their own.
DATA_KEYS = ("dataset_names", "dataset_dims", "dataset_recon_dims")

# Flags that are not hyperparameters (the original kept allow_gpu_growth and kind
# out of the dict; kind is added back as a derived key).
_NOT_HPS = {"allow_gpu_growth", "debug", "intra_op_threads", "inter_op_threads"}


class HParams(dict):
    """Hyperparameters: a dict with attribute access; unknown names are an error."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError("no hyperparameter %r" % name) from None

    def __setattr__(self, name, value):
        self[name] = value


def build_hps(flag_values=FLAGS):
    """The hyperparameter dict of the original: every flag but allow_gpu_growth."""
    hps = HParams()
    for name in run_flags.defined_flag_names():
        if name not in _NOT_HPS:
            hps[name] = flag_values[name].value
    hps["_clip_value"] = 80  # as the original's build_hyperparameter_dict
    return hps


def hps_from_argv(argv):
    """Parses command-line style flags (e.g. ['--co_dim=0']) into a fresh hps.

    For tests and tools that call `run` in-process; unset flags get their defaults.
    """
    FLAGS.unparse_flags()
    FLAGS(["run_lfads"] + list(argv))
    return build_hps()


def validate_hps(hps):
    """Raises UsageError (one line) for flag values the model cannot run with."""
    def bad(flag, problem):
        raise UsageError("--%s=%s: %s" % (flag, hps[flag], problem))

    for check in (_check_choices, _check_sizes, _check_priors, _check_optimisation,
                  _check_regularisers, _check_run):
        check(hps, bad)


def _check_choices(hps, bad):
    """Flags that name one of a few choices."""
    if hps.kind not in run_flags.KINDS:
        bad("kind", "unknown kind (expected one of %s)" % ", ".join(run_flags.KINDS))
    if hps.output_dist not in observation.NAMES:
        bad("output_dist", "unknown output distribution (expected one of %s)"
            % ", ".join(observation.NAMES))
    foreign = observation.foreign_flag(hps)
    if foreign is not None:
        bad(foreign[0], "only used with --output_dist=%s (not %s)" % (foreign[1],
                                                                     hps.output_dist))
    if hps.get("zig_s_min") is not None and not 0.0 <= hps.zig_s_min < float("inf"):
        bad("zig_s_min", "must be a finite value >= 0")
    if hps.feedback_factors_or_rates not in ("factors", "rates"):
        bad("feedback_factors_or_rates", "expected 'factors' or 'rates'")
    if hps.lve_metric not in ("valid", "sv"):
        bad("lve_metric", "expected 'valid' or 'sv'")


def _check_sizes(hps, bad):
    """Layer sizes and counts of the architecture."""
    for name in ("factors_dim", "gen_dim", "batch_size"):
        if hps[name] <= 0:
            bad(name, "must be a positive integer")
    for name in ("ic_dim", "co_dim", "ext_input_dim", "controller_input_lag",
                 "temporal_spike_jitter_width", "kl_start_step", "l2_start_step",
                 "max_ckpt_to_keep", "max_ckpt_to_keep_lve"):
        if hps[name] < 0:
            bad(name, "must not be negative")
    if hps.ic_dim > 0 and hps.ic_enc_dim <= 0:
        bad("ic_enc_dim", "must be positive when --ic_dim > 0")
    if hps.co_dim > 0:
        for name in ("ci_enc_dim", "con_dim"):
            if hps[name] <= 0:
                bad(name, "must be positive when --co_dim > 0")
    if hps.num_steps_for_gen_ic <= 0:
        bad("num_steps_for_gen_ic", "must be positive")
    if not hps.cell_clip_value > 0:
        bad("cell_clip_value", "must be positive")


def _check_priors(hps, bad):
    """Prior and posterior variances and the AR(1) prior of the inferred inputs."""
    if not hps.ic_prior_var_scale > 0:
        bad("ic_prior_var_scale", "must be positive")
    if not hps.ic_prior_var_min <= hps.ic_prior_var_scale <= hps.ic_prior_var_max:
        bad("ic_prior_var_scale", "must lie in [--ic_prior_var_min, --ic_prior_var_max] "
            "= [%g, %g]" % (hps.ic_prior_var_min, hps.ic_prior_var_max))
    if hps.ic_post_var_min < 0:
        bad("ic_post_var_min", "must not be negative")
    if not (hps.prior_ar_atau > 0 and hps.prior_ar_nvar > 0):
        bad("prior_ar_atau", "--prior_ar_atau and --prior_ar_nvar must be positive")


def _check_optimisation(hps, bad):
    """The learning-rate rule, the ramps and gradient clipping."""
    for name in ("kl_increase_steps", "l2_increase_steps"):
        if hps[name] <= 0:
            bad(name, "must be positive (the ramp divides by it)")
    if not hps.learning_rate_init > 0:
        bad("learning_rate_init", "must be positive")
    if not 0.0 < hps.learning_rate_decay_factor < 1.0:
        bad("learning_rate_decay_factor", "must lie in (0, 1)")
    if hps.learning_rate_n_to_compare <= 0:
        bad("learning_rate_n_to_compare", "must be positive")
    if not hps.max_grad_norm > 0:
        bad("max_grad_norm", "must be positive")


def _check_regularisers(hps, bad):
    """Dropout, coordinated dropout, sample validation and the input penalty."""
    if not 0.0 < hps.keep_prob <= 1.0:
        bad("keep_prob", "must lie in (0, 1]")
    if hps.co_mean_corr_scale > 0 and hps.co_dim < 2:
        # the original averages over the pairs of inputs, an empty list with one input
        bad("co_mean_corr_scale", "needs --co_dim >= 2 (it penalises pairs of inputs)")
    for name in ("cd_rate", "sv_rate"):
        if not 0.0 <= hps[name] < 1.0:
            bad(name, "must lie in [0, 1)")
    if not 0.0 <= hps.cd_pass_rate <= 1.0:
        bad("cd_pass_rate", "must lie in [0, 1]")
    if hps.sv_seed < 0:
        bad("sv_seed", "must not be negative")
    if hps.lve_metric == "sv" and not hps.sv_rate > 0:
        bad("lve_metric", "needs --sv_rate > 0 (it picks checkpoints on the "
            "sample-validation cost)")


def _check_run(hps, bad):
    """Epochs, evaluation sizes, recovery from non-finite steps and the save folder."""
    if hps.max_epochs is not None and hps.max_epochs < 0:
        bad("max_epochs", "must not be negative")
    if hps.ps_nexamples_to_process <= 0:
        bad("ps_nexamples_to_process", "must be positive")
    if hps.max_consecutive_nonfinite_steps <= 0:
        bad("max_consecutive_nonfinite_steps", "must be positive")
    if hps.max_nonfinite_restores < 0:
        bad("max_nonfinite_restores", "must not be negative")
    if hps.checkpoint_every_n_epochs <= 0:
        bad("checkpoint_every_n_epochs", "must be positive")
    if hps.plot_every_n_epochs < 0:
        bad("plot_every_n_epochs", "must not be negative")
    save_dir = hps.lfads_save_dir
    if os.path.exists(save_dir) and not os.path.isdir(save_dir):
        bad("lfads_save_dir", "exists and is not a folder")


def add_derived_hps(hps, datasets):
    """Adds the keys that depend on the data, as the original's run_lfads.py did
    (dataset names in sorted order, their widths, the number of time bins)."""
    names = sorted(datasets)
    hps.dataset_names = names
    hps.dataset_dims = {n: int(datasets[n]["data_dim"]) for n in names}
    hps.num_steps = int(datasets[names[0]]["num_steps"])
    hps.ndatasets = len(names)
    # Held-out neurons and forward bins (from <split>_recon_data; without it N = D and
    # no forward bins): the read-out predicts N neurons of each dataset, the generator
    # runs num_steps + fp_bins steps, the same for every dataset (checked on loading).
    extents = {n: _heldout_extent(datasets[n]) for n in names}
    hps.dataset_recon_dims = {n: extents[n][0] for n in names}
    fp_bins = sorted({extents[n][1] for n in names})
    if len(fp_bins) > 1:
        raise UsageError("train_recon_data: the datasets have %s forward bins; all must "
                         "share one number" % fp_bins)
    hps.fp_bins = fp_bins[0]
    # Values the observation model takes from the data (ZIG: s_min per neuron)
    hps.update(observation.for_dist(hps.output_dist).derived_hps(hps, datasets))
    if hps.num_steps_for_gen_ic > hps.num_steps:
        hps.num_steps_for_gen_ic = hps.num_steps
    if hps.feedback_factors_or_rates == "rates" and hps.co_dim > 0 \
            and hps.do_feed_factors_to_controller and len(names) > 1:
        raise UsageError("--feedback_factors_or_rates=rates: only possible with a "
                         "single dataset (found %d)" % len(names))
    if hps.prior_sample_dataset and hps.prior_sample_dataset not in names:
        raise UsageError("--prior_sample_dataset=%s: no such dataset (have %s)"
                         % (hps.prior_sample_dataset, ", ".join(names)))
    return hps


def _heldout_extent(data_dict):
    """(N, fp_bins) of a dataset (checks.heldout_extent); (D, 0) for a dict of sizes."""
    if "train_data" not in data_dict:
        return int(data_dict["data_dim"]), 0
    return checks.heldout_extent(data_dict)
