"""The `run_lfads` command: flags, hyperparameters and the dispatch on --kind.

Every flag of the original run_lfads.py, with the same names, defaults and meaning
as the original, plus a few new ones (listed under "New flags" below). The training loop
lives in training.py and the evaluation kinds in evaluation.py; the help text and the
one-line flag errors come from lfads_tf2/cli.py. Users see DESCRIPTION and FLAG_GROUPS
(`run_lfads --help`), not this docstring.
"""
import os
import signal
import sys
import traceback

from absl import flags

# TensorFlow's C++ log lines (CUDA probing, oneDNN notes) are not for users; real
# problems reach Python as exceptions. See utils.quiet_tensorflow_import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

if __name__ == "__main__":
    # Modules that `import run_lfads` must get this very module, not a second copy
    # that would define every flag again.
    sys.modules.setdefault("run_lfads", sys.modules[__name__])

MAX_INT = sys.maxsize

KINDS = ("train", "posterior_sample_and_average", "posterior_push_mean",
         "prior_sample", "write_model_params")

FLAGS = flags.FLAGS

# ---------------------------------------------------------------- the original's flags
flags.DEFINE_string("kind", "train",
                    "Type of model to build {train, posterior_sample_and_average, "
                    "posterior_push_mean, prior_sample, write_model_params}.")
flags.DEFINE_string("output_dist", "poisson",
                    "Type of output distribution, 'poisson' or 'gaussian'.")
flags.DEFINE_boolean("allow_gpu_growth", False,
                     "If true, only allocate GPU memory as needed.")
flags.DEFINE_string("data_dir", "/tmp/rnn_synth_data_v1.0/", "Data for training.")
flags.DEFINE_string("data_filename_stem", "chaotic_rnn_inputs_g1p5",
                    "Every file in --data_dir whose name starts with this stem is one "
                    "dataset (session); its name is the rest of the file name after "
                    "the stem and one separator. Datasets are used in sorted name order.")
flags.DEFINE_string("lfads_save_dir", "/tmp/lfads_chaotic_rnn_inputs_g1p5/",
                    "Directory for checkpoints, logs and outputs.")
flags.DEFINE_string("checkpoint_pb_load_name", "checkpoint",
                    "Name of the checkpoint state file to restore from: 'checkpoint' "
                    "(regular) or 'checkpoint_lve' (lowest validation error); or one "
                    "checkpoint's path prefix, e.g. 'lfads_vae.ckpt-12' (relative to "
                    "--lfads_save_dir, or absolute), to pick an older checkpoint by hand.")
flags.DEFINE_string("checkpoint_name", "lfads_vae", "Name of checkpoint files.")
flags.DEFINE_string("output_filename_stem", "",
                    "Prefix of the output files of the evaluation kinds.")
flags.DEFINE_string("device", "gpu:0",
                    "Device to run on, e.g. 'cpu:0' or 'gpu:0'. Without a GPU, gpu:N "
                    "falls back to the CPU with a note.")
flags.DEFINE_string("csv_log", "fitlog",
                    "Name of the per-epoch CSV log (<lfads_save_dir>/<csv_log>.csv); "
                    "empty disables it.")
flags.DEFINE_integer("max_ckpt_to_keep", 5, "Max # of regular checkpoints to keep.")
flags.DEFINE_integer("ps_nexamples_to_process", MAX_INT,
                     "Number of examples of each split to process for posterior "
                     "sampling / push-mean.")
flags.DEFINE_integer("max_ckpt_to_keep_lve", 5,
                     "Max # of lowest-validation-error checkpoints to keep.")
flags.DEFINE_integer("ext_input_dim", 0, "Dimension of external inputs.")
flags.DEFINE_integer("num_steps_for_gen_ic", MAX_INT,
                     "Number of leading time bins the IC encoder reads (clipped to T).")
flags.DEFINE_boolean("inject_ext_input_to_gen", False,
                     "Feed external inputs to the generator (true) or to the encoders "
                     "(false).")
flags.DEFINE_float("cell_weight_scale", 1.0,
                   "Input/gate weight init scale of the encoder GRUs and of the "
                   "controller GRU.")
flags.DEFINE_integer("ic_dim", 64, "Dimension of the initial condition g0 (0: none).")
flags.DEFINE_integer("factors_dim", 50, "Number of factors.")
flags.DEFINE_integer("ic_enc_dim", 128, "Size of each direction of the IC encoder.")
flags.DEFINE_integer("gen_dim", 200, "Size of the generator GRU.")
flags.DEFINE_float("gen_cell_input_weight_scale", 1.0,
                   "Input weight init scale of the generator.")
flags.DEFINE_float("gen_cell_rec_weight_scale", 1.0,
                   "Recurrent weight init scale of the generator.")
flags.DEFINE_float("ic_prior_var_min", 0.1, "Minimum variance of the IC prior.")
flags.DEFINE_float("ic_prior_var_scale", 0.1, "Initial variance of the IC prior.")
flags.DEFINE_float("ic_prior_var_max", 0.1,
                   "Maximum variance of the IC prior (== min: fixed variance).")
flags.DEFINE_float("ic_post_var_min", 0.0001, "Minimum variance of the IC posterior.")
flags.DEFINE_float("co_prior_var_scale", 0.1,
                   "Unused (kept for compatibility with the original).")
flags.DEFINE_float("prior_ar_atau", 10.0,
                   "Initial autocorrelation time (bins) of the AR(1) input prior.")
flags.DEFINE_float("prior_ar_nvar", 0.1,
                   "Initial noise variance of the AR(1) input prior.")
flags.DEFINE_boolean("do_train_prior_ar_atau", True, "Train the AR(1) prior's tau.")
flags.DEFINE_boolean("do_train_prior_ar_nvar", True,
                     "Train the AR(1) prior's noise variance.")
flags.DEFINE_integer("co_dim", 1, "Number of inferred inputs (controller outputs).")
flags.DEFINE_boolean("do_causal_controller", False,
                     "Controller sees only the forward CI encoding.")
flags.DEFINE_boolean("do_feed_factors_to_controller", True,
                     "Feed the previous step's factors (or rates) to the controller.")
flags.DEFINE_string("feedback_factors_or_rates", "factors",
                    "What is fed back to the controller: 'factors' or 'rates' "
                    "(rates: single dataset only).")
flags.DEFINE_integer("controller_input_lag", 1,
                     "Controller at t reads the forward encoding at t-lag and the "
                     "reverse encoding at t+lag.")
flags.DEFINE_integer("ci_enc_dim", 128,
                     "Size of each direction of the controller-input encoder.")
flags.DEFINE_integer("con_dim", 128, "Size of the controller GRU.")
flags.DEFINE_float("co_mean_corr_scale", 0.0,
                   "Penalty on correlations of the controller-output means.")
flags.DEFINE_integer("batch_size", 128,
                     "Batch size for training; number of posterior samples per trial "
                     "for posterior_sample_and_average; number of trials for "
                     "prior_sample.")
flags.DEFINE_float("learning_rate_init", 0.01, "Initial learning rate.")
flags.DEFINE_float("learning_rate_decay_factor", 0.95, "Learning rate decay factor.")
flags.DEFINE_float("learning_rate_stop", 0.00001,
                   "Stop training when the learning rate falls below this.")
flags.DEFINE_integer("learning_rate_n_to_compare", 6,
                     "Window (epochs) of the learning-rate plateau rule.")
flags.DEFINE_float("max_grad_norm", 200.0, "Max global norm of the gradients.")
flags.DEFINE_float("cell_clip_value", 5.0, "Clip value of every GRU state.")
flags.DEFINE_boolean("do_train_io_only", False,
                     "Train only the read-in/read-out matrices.")
flags.DEFINE_boolean("do_train_encoder_only", False,
                     "Train only the IC encoder and IC posterior layers.")
flags.DEFINE_boolean("do_reset_learning_rate", False,
                     "Reset the learning rate to --learning_rate_init after restoring.")
flags.DEFINE_boolean("do_train_readin", True,
                     "Train the per-dataset read-in matrices.")
flags.DEFINE_float("keep_prob", 0.95, "Dropout keep probability during training.")
flags.DEFINE_integer("temporal_spike_jitter_width", 0,
                     "Jitter spikes in time by up to this many bins (Poisson only).")
flags.DEFINE_float("l2_gen_scale", 2000.0, "L2 scale on generator recurrent weights.")
flags.DEFINE_float("l2_con_scale", 0.0, "L2 scale on controller recurrent weights.")
flags.DEFINE_float("kl_ic_weight", 1.0, "Weight of the IC KL term.")
flags.DEFINE_float("kl_co_weight", 1.0, "Weight of the controller-output KL term.")
flags.DEFINE_integer("kl_start_step", 0, "Step at which the KL ramp starts.")
flags.DEFINE_integer("kl_increase_steps", 2000, "Length of the linear KL ramp 0->1.")
flags.DEFINE_integer("l2_start_step", 0, "Step at which the L2 ramp starts.")
flags.DEFINE_integer("l2_increase_steps", 2000, "Length of the linear L2 ramp 0->1.")

# ---------------------------------------------------------------- new flags
flags.DEFINE_integer("seed", None,
                     "New: seed for weights, batching, dropout and sampling; the same "
                     "seed on the same machine gives the same numbers. Default: unseeded "
                     "(as the original).")
flags.DEFINE_integer("max_epochs", None,
                     "New: stop training after this many epochs in total (default: no "
                     "limit; training stops by the learning-rate rule as the original).")
flags.DEFINE_integer("checkpoint_every_n_epochs", 1,
                     "New: regular checkpoint interval in epochs (the original: 10).")
flags.DEFINE_integer("plot_every_n_epochs", 0,
                     "New: write the example figure to TensorBoard every N epochs "
                     "(0: never; the original plotted every epoch).")
flags.DEFINE_string("prior_sample_dataset", "",
                    "New: dataset (name) whose read-out is used by prior_sample "
                    "(default: the first in sorted order).")
flags.DEFINE_integer("max_consecutive_nonfinite_steps", 10,
                     "New: after this many training steps in a row with a non-finite cost "
                     "or gradient (each is skipped), restore the last checkpoint and lower "
                     "the learning rate by --learning_rate_decay_factor.")
flags.DEFINE_integer("max_nonfinite_restores", 5,
                     "New: stop with an error after this many such restores.")
flags.DEFINE_integer("intra_op_threads", -1,
                     "New: threads TensorFlow may use inside one op; 0: TensorFlow's "
                     "default (all cores); -1: 1 for training, whose ops are small enough "
                     "that splitting them costs more than it gains (25 to 30 percent faster "
                     "on 2 cores, scripts/benchmark_train.py), and the default for the "
                     "evaluation kinds, whose batches are large.")
flags.DEFINE_integer("inter_op_threads", 0,
                     "New: threads TensorFlow may use to run independent ops at once, e.g. "
                     "the forward and reverse encoders (0: TensorFlow's default, all cores).")
flags.DEFINE_boolean("kl_ar_analytic", False,
                     "New: compute the KL between the controller-output posterior and "
                     "the AR(1) prior in closed form over the whole sequence, instead of "
                     "the original's one-sample estimate (lower-variance gradients; the "
                     "KL values it reports are exact rather than sampled).")
flags.DEFINE_float("cd_rate", 0.0,
                   "New: coordinated dropout. The fraction of the input entries (trial x "
                   "time bin x neuron) hidden from the encoders at each training step; "
                   "the others are scaled by 1/(1 - rate) and the reconstruction "
                   "gradient comes only from the hidden entries, so the model cannot "
                   "learn to copy its input to its output. Off in validation and in the "
                   "evaluation kinds; 0: off. The training recon reported stays the cost "
                   "of all entries.")
flags.DEFINE_float("cd_pass_rate", 0.0,
                   "New: with --cd_rate, the fraction of the entries the encoders saw "
                   "whose reconstruction gradient passes anyway.")
flags.DEFINE_float("sv_rate", 0.0,
                   "New: sample validation. The fraction of the training entries (trial "
                   "x time bin x neuron) held out for good: drawn once per data set from "
                   "--sv_seed and kept in the checkpoint, never shown to the encoders "
                   "(the others are scaled by 1/(1 - rate)) and left out of the training "
                   "cost (the rest weighted by 1/(1 - rate)). Their reconstruction cost, "
                   "scaled to a trial's entries to be comparable with recon, is reported "
                   "as sv_recon on the epoch line, in the fitlog and in TensorBoard. 0: "
                   "off.")
flags.DEFINE_integer("sv_seed", 0,
                     "New: seed of the sample-validation entries (--sv_rate).")
flags.DEFINE_string("lve_metric", "valid",
                    "New: what the lowest-validation-error checkpoints minimise: 'valid' "
                    "(the validation total, as the original) or 'sv' (sv_recon; needs "
                    "--sv_rate > 0).")
flags.DEFINE_boolean("debug", False,
                     "New: show full tracebacks instead of one-line errors "
                     "(also LFADS_DEBUG=1).")

# ---------------------------------------------------------------- help
# The topics of `run_lfads --help` and of the README's flag table
# (scripts/make_flag_table.py); tests/test_cli_help.py checks that every flag is in
# exactly one group.
FLAG_GROUPS = [
    ("What to run", [
        "kind", "checkpoint_pb_load_name", "output_filename_stem",
        "ps_nexamples_to_process", "prior_sample_dataset", "seed"]),
    ("Data", [
        "data_dir", "data_filename_stem", "output_dist", "ext_input_dim"]),
    ("Save folder, checkpoints and logs", [
        "lfads_save_dir", "checkpoint_name", "max_ckpt_to_keep", "max_ckpt_to_keep_lve",
        "checkpoint_every_n_epochs", "csv_log", "plot_every_n_epochs"]),
    ("Model: encoders, generator and factors", [
        "ic_dim", "ic_enc_dim", "num_steps_for_gen_ic", "gen_dim", "factors_dim",
        "inject_ext_input_to_gen", "cell_weight_scale", "gen_cell_input_weight_scale",
        "gen_cell_rec_weight_scale", "cell_clip_value"]),
    ("Model: controller (inferred inputs)", [
        "co_dim", "ci_enc_dim", "con_dim", "controller_input_lag", "do_causal_controller",
        "do_feed_factors_to_controller", "feedback_factors_or_rates"]),
    ("Model: priors and posteriors", [
        "ic_prior_var_min", "ic_prior_var_scale", "ic_prior_var_max", "ic_post_var_min",
        "co_prior_var_scale", "prior_ar_atau", "prior_ar_nvar", "do_train_prior_ar_atau",
        "do_train_prior_ar_nvar", "kl_ar_analytic"]),
    ("Training: optimisation and stopping", [
        "batch_size", "learning_rate_init", "learning_rate_decay_factor",
        "learning_rate_stop", "learning_rate_n_to_compare", "do_reset_learning_rate",
        "max_grad_norm", "max_epochs", "max_consecutive_nonfinite_steps",
        "max_nonfinite_restores"]),
    ("Training: regularisation", [
        "keep_prob", "temporal_spike_jitter_width", "l2_gen_scale", "l2_con_scale",
        "co_mean_corr_scale", "kl_ic_weight", "kl_co_weight", "kl_start_step",
        "kl_increase_steps", "l2_start_step", "l2_increase_steps"]),
    ("Training: coordinated dropout and sample validation", [
        "cd_rate", "cd_pass_rate", "sv_rate", "sv_seed", "lve_metric"]),
    ("Training: which weights are trained", [
        "do_train_io_only", "do_train_encoder_only", "do_train_readin"]),
    ("Hardware and diagnostics", [
        "device", "allow_gpu_growth", "intra_op_threads", "inter_op_threads", "debug"]),
]


def _readme_location():
    here = os.path.dirname(os.path.abspath(__file__))
    readme = os.path.join(here, "README.md")
    if os.path.isfile(readme):
        return readme
    return "README.md in the lfads-tf2 source folder"


DESCRIPTION = """\
run_lfads: LFADS (Latent Factor Analysis via Dynamical Systems) on TensorFlow 2.

LFADS fits a sequential variational auto-encoder to binned spike counts (trials x time
bins x neurons, h5 files) and infers denoised firing rates, low-dimensional factors, an
initial condition per trial and the inputs that drive its generator RNN. The flags, data
files and output files are those of the original LFADS run_lfads.py; flags whose meaning
starts with "New:" do not exist in the original.

Kinds (--kind):
  train                         fit a model; checkpoints and logs go to --lfads_save_dir,
                                and starting the same command again continues it
  posterior_sample_and_average  per trial: rates, factors and inferred inputs averaged
                                over --batch_size posterior samples
  posterior_push_mean           the same from one pass at the posterior means
  prior_sample                  --batch_size new trials generated from the priors
  write_model_params            every variable of the model to one h5 file

Example (evaluation kinds take the training flags again, which define the model):
  run_lfads --kind=train --data_dir=/tmp/rnn_synth_data_v1.0/ \\
      --data_filename_stem=chaotic_rnn_inputs_g2p5 \\
      --lfads_save_dir=/tmp/lfads_chaotic_rnn_inputs_g2p5 --co_dim=1 --factors_dim=20

Usage: run_lfads --flag=value ...  (from the source folder also: python run_lfads.py ...)
Boolean flags: --name, --noname or --name=true/false.
Documentation (data format, outputs, examples): %s.
""" % _readme_location()


# Flags that are not hyperparameters (the original kept allow_gpu_growth and kind
# out of the dict; kind is added back as a derived key).
_NOT_HPS = {"allow_gpu_growth", "debug", "intra_op_threads", "inter_op_threads"}


class UsageError(ValueError):
    """A bad flag value, reported as one line."""


class HParams(dict):
    """Hyperparameters: a dict with attribute access; unknown names are an error."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError("no hyperparameter %r" % name) from None

    def __setattr__(self, name, value):
        self[name] = value


def defined_flag_names():
    """Names of this module's flags, in definition order."""
    return [f.name for f in FLAGS.get_flags_for_module(sys.modules[__name__])]


def build_hps(flag_values=FLAGS):
    """The hyperparameter dict of the original: every flag but allow_gpu_growth."""
    hps = HParams()
    for name in defined_flag_names():
        if name not in _NOT_HPS:
            hps[name] = flag_values[name].value
    hps["_clip_value"] = 80  # as the original's build_hyperparameter_dict (spec §16.1)
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

    if hps.kind not in KINDS:
        bad("kind", "unknown kind (expected one of %s)" % ", ".join(KINDS))
    if hps.output_dist not in ("poisson", "gaussian"):
        bad("output_dist", "unknown output distribution (expected poisson or gaussian)")
    if hps.feedback_factors_or_rates not in ("factors", "rates"):
        bad("feedback_factors_or_rates", "expected 'factors' or 'rates'")
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
    if not 0.0 < hps.keep_prob <= 1.0:
        bad("keep_prob", "must lie in (0, 1]")
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
    if not hps.cell_clip_value > 0:
        bad("cell_clip_value", "must be positive")
    if not hps.ic_prior_var_scale > 0:
        bad("ic_prior_var_scale", "must be positive")
    if not hps.ic_prior_var_min <= hps.ic_prior_var_scale <= hps.ic_prior_var_max:
        bad("ic_prior_var_scale", "must lie in [--ic_prior_var_min, --ic_prior_var_max] "
            "= [%g, %g]" % (hps.ic_prior_var_min, hps.ic_prior_var_max))
    if hps.ic_post_var_min < 0:
        bad("ic_post_var_min", "must not be negative")
    if not (hps.prior_ar_atau > 0 and hps.prior_ar_nvar > 0):
        bad("prior_ar_atau", "--prior_ar_atau and --prior_ar_nvar must be positive")
    if hps.co_mean_corr_scale > 0 and hps.co_dim < 2:
        # the original takes the mean of an empty list here (spec Q18)
        bad("co_mean_corr_scale", "needs --co_dim >= 2 (it penalises pairs of inputs)")
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
    for name in ("cd_rate", "sv_rate"):
        if not 0.0 <= hps[name] < 1.0:
            bad(name, "must lie in [0, 1)")
    if not 0.0 <= hps.cd_pass_rate <= 1.0:
        bad("cd_pass_rate", "must lie in [0, 1]")
    if hps.sv_seed < 0:
        bad("sv_seed", "must not be negative")
    if hps.lve_metric not in ("valid", "sv"):
        bad("lve_metric", "expected 'valid' or 'sv'")
    if hps.lve_metric == "sv" and not hps.sv_rate > 0:
        bad("lve_metric", "needs --sv_rate > 0 (it picks checkpoints on the "
            "sample-validation cost)")
    save_dir = hps.lfads_save_dir
    if os.path.exists(save_dir) and not os.path.isdir(save_dir):
        bad("lfads_save_dir", "exists and is not a folder")


def add_derived_hps(hps, datasets):
    """Adds the data-dependent keys of spec §2.2 (dataset names in sorted order)."""
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
    """(N, fp_bins) of a dataset (utils.heldout_extent); (D, 0) for a dict of sizes."""
    if "train_data" not in data_dict:
        return int(data_dict["data_dim"]), 0
    import utils
    return utils.heldout_extent(data_dict)


def configure_threads(intra_op_threads, inter_op_threads):
    """Sets TensorFlow's thread pools and its graph optimization
    (`configure_graph_optimizer`); only possible before TensorFlow runs an op."""
    import utils
    tf = utils.quiet_tensorflow_import()
    try:
        if intra_op_threads:
            tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
        if inter_op_threads:
            tf.config.threading.set_inter_op_parallelism_threads(inter_op_threads)
    except RuntimeError:
        pass  # already running (e.g. a second run in one process): keep the pools
    configure_graph_optimizer(tf)


def configure_graph_optimizer(tf):
    """Graph optimization (grappler) with one round of the passes that change LFADS's
    graphs. The layout pass is turned off at any time (public option, read when a
    function is first called); the round count, memory and tfg passes only before
    TensorFlow runs an op (the context's start-up config), else they are left alone.

    Measured on the README's first example (TF_CPP_VMODULE=meta_optimizer=1): the
    training step's first call spent 1.6 s in grappler, a third of the start-up after
    the imports. Its second round of passes changed 33 of 2,800 nodes; the tfg, memory
    and layout passes changed none (no convolutions, no GPU) but took 0.5 s. Without
    them the first call is 0.8 s shorter and the step as fast
    (scripts/benchmark_startup.py, scripts/benchmark_train.py; see the README).
    """
    tf.config.optimizer.set_experimental_options({"layout_optimizer": False})
    try:
        # no public API for these three: the eager context's base ConfigProto, read
        # when the context starts
        from tensorflow.core.protobuf import config_pb2, rewriter_config_pb2
        from tensorflow.python.eager import context
        ctx = context.context()
        if ctx._context_handle is not None:
            return  # already started: leave it
        config = config_pb2.ConfigProto()
        if ctx._config is not None:
            config.CopyFrom(ctx._config)
        rewrite = config.graph_options.rewrite_options
        rewrite.meta_optimizer_iterations = rewriter_config_pb2.RewriterConfig.ONE
        rewrite.memory_optimization = rewriter_config_pb2.RewriterConfig.NO_MEM_OPT
        rewrite.disable_tfg_optimizer = True
        ctx._config = config
    except (ImportError, AttributeError):
        pass  # another TensorFlow's internals: its default optimization, only slower


def _select_device(device, allow_gpu_growth):
    """Returns the tf.device string to use, falling back to the CPU without a GPU."""
    import utils
    tf = utils.quiet_tensorflow_import()
    tf.config.set_soft_device_placement(True)
    gpus = tf.config.list_physical_devices("GPU")
    if allow_gpu_growth:
        for gpu in gpus:
            tf.config.experimental.set_memory_growth(gpu, True)
    dev = device.lower().lstrip("/")
    if dev.startswith("device:"):
        dev = dev[len("device:"):]
    if dev.startswith("gpu") and not gpus:
        print("note: --device=%s but no GPU is visible; running on the CPU." % device)
        return "/cpu:0"
    return "/" + dev


def run(hps, allow_gpu_growth=False, intra_op_threads=-1, inter_op_threads=0):
    """Loads the data and runs hps.kind. Raises DataError/UsageError on bad input."""
    import utils
    validate_hps(hps)
    batch_for_check = hps.batch_size if hps.kind == "train" else None
    datasets, notes = utils.load_datasets(
        hps.data_dir, hps.data_filename_stem, hps.output_dist,
        ext_input_dim=hps.ext_input_dim, factors_dim=hps.factors_dim,
        batch_size=batch_for_check, kind=hps.kind)
    for note in notes:
        print("note: " + note)
    add_derived_hps(hps, datasets)
    utils.quiet_tensorflow_import()  # only now: bad flags and data fail fast
    if intra_op_threads < 0:
        intra_op_threads = 1 if hps.kind == "train" else 0
    configure_threads(intra_op_threads, inter_op_threads)
    device = _select_device(hps.device, allow_gpu_growth)
    import tensorflow as tf
    with tf.device(device):
        if hps.kind == "train":
            from lfads_tf2.evaluate import kinds
            from lfads_tf2.train import loop
            # The example figure is evaluation's (posterior samples); the loop only
            # calls it, so training does not import evaluation.
            return loop.train(hps, datasets, make_plotter=kinds.ExamplePlotter)
        from lfads_tf2.evaluate import kinds
        return kinds.run_kind(hps, datasets)


_stop_signum = None  # set once SIGTERM or SIGINT has arrived


def _exit_on_stop_signal(signum, frame):
    """SIGTERM (`kill`, a job scheduler's time limit) and SIGINT (Ctrl-C) exit with
    128 + signum and a one-line note instead of a traceback. Python's clean-up runs,
    so a half-written output's temporary file is removed and the save-folder lock
    released (checkpoints are written atomically regardless)."""
    del frame
    global _stop_signum
    _stop_signum = signum
    print("Stopped by signal %d." % signum, file=sys.stderr)
    sys.exit(128 + signum)


def main(argv):
    del argv
    from absl import logging
    logging.set_verbosity(logging.WARNING)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_on_stop_signal)
    debug = FLAGS.debug or os.environ.get("LFADS_DEBUG", "") not in ("", "0")
    hps = build_hps()
    try:
        run(hps, allow_gpu_growth=FLAGS.allow_gpu_growth,
            intra_op_threads=FLAGS.intra_op_threads,
            inter_op_threads=FLAGS.inter_op_threads)
    except Exception as e:  # one line for users; the traceback only with --debug
        if _stop_signum is not None:
            # The SystemExit of _exit_on_stop_signal can come out of TensorFlow as another
            # exception when it lands mid-way in TF code (seen: "Exiting device scope
            # without proper scope nesting" from the checkpoint writer). Clean-up has
            # run all the same on the way out: exit as the signal asked.
            sys.exit(128 + _stop_signum)
        import utils
        known = (utils.DataError, utils.LfadsError, UsageError)
        if debug or not isinstance(e, known):
            traceback.print_exc()
            if not isinstance(e, known):
                sys.exit(1)
        print("error: %s" % str(e).splitlines()[0] if str(e) else repr(e),
              file=sys.stderr)
        sys.exit(2)


def run_command(argv=None):
    """Runs the command line: help and flag errors as lfads_tf2.cli, then main."""
    from lfads_tf2 import cli
    cli.run(main, DESCRIPTION, FLAG_GROUPS, module=sys.modules[__name__], argv=argv)


def console_main():
    """Entry point of the `run_lfads` console command."""
    run_command()


if __name__ == "__main__":
    run_command()
