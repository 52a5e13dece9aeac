"""The flags of `run_lfads`: every flag of the original run_lfads.py, with the same names,
defaults and meaning, plus the new ones (their help starts with "New:").

Defined once per process, when this module is first imported; `defined_flag_names`
lists them in definition order, FLAG_GROUPS orders `run_lfads --help` and docs/flags.md
(scripts/make_flag_table.py), and DESCRIPTION heads the help. Importing this module
needs absl only (no TensorFlow), so help and flag errors are instant.
"""
import os
import sys

from absl import flags

MAX_INT = sys.maxsize

KINDS = ("train", "posterior_sample_and_average", "posterior_push_mean",
         "prior_sample", "write_model_params")

FLAGS = flags.FLAGS

# ---------------------------------------------------------------- the original's flags
flags.DEFINE_string("kind", "train",
                    "Type of model to build {train, posterior_sample_and_average, "
                    "posterior_push_mean, prior_sample, write_model_params}.")
flags.DEFINE_string("output_dist", "poisson",
                    "Type of output distribution, 'poisson' or 'gaussian'; new: 'zig' "
                    "(zero-inflated gamma, for deconvolved calcium traces) or 'gamma' "
                    "(strictly positive data). See docs/observation_models.md.")
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
flags.DEFINE_float("zig_s_min", None,
                   "New: with --output_dist=zig, the smallest non-zero value s_min of every "
                   "neuron (non-zero entries are s_min plus a gamma variable). Default: each "
                   "neuron's smallest non-zero value in the training data.")
flags.DEFINE_boolean("nan_is_missing", False,
                     "New: a NaN in <split>_data or <split>_recon_data marks an entry that "
                     "was not observed (selective backpropagation through time): it is 0 "
                     "at the encoders (the trial's observed entries scaled by 1/(its "
                     "observed fraction)), left out of every cost, and inferred in the "
                     "outputs. Count data with NaN must be stored as float. Off: NaN is "
                     "an error. See docs/data_format.md.")
flags.DEFINE_boolean("debug", False,
                     "New: show full tracebacks instead of one-line errors "
                     "(also LFADS_DEBUG=1).")

# ---------------------------------------------------------------- help
# The topics of `run_lfads --help` and of the flag table in docs/flags.md
# (scripts/make_flag_table.py); tests/test_cli_help.py checks that every flag is in
# exactly one group.
FLAG_GROUPS = [
    ("What to run", [
        "kind", "checkpoint_pb_load_name", "output_filename_stem",
        "ps_nexamples_to_process", "prior_sample_dataset", "seed"]),
    ("Data", [
        "data_dir", "data_filename_stem", "output_dist", "zig_s_min", "ext_input_dim",
        "nan_is_missing"]),
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
    readme = os.path.join(here, os.pardir, os.pardir, "README.md")
    if os.path.isfile(readme):
        return os.path.normpath(readme)
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


def defined_flag_names():
    """Names of run_lfads's flags, in definition order."""
    return [f.name for f in FLAGS.get_flags_for_module(sys.modules[__name__])]


def flag_text(name, value):
    """`--name=value` as absl reads it back (booleans true/false, floats exactly)."""
    if isinstance(value, bool):
        value = "true" if value else "false"
    elif isinstance(value, float):
        value = repr(value)
    return "--%s=%s" % (name, value)


def flagfile_lines(hps):
    """`--flag=value` lines of every run_lfads flag of hps but --kind, for absl's
    --flagfile (a flag whose value is None, e.g. an unseeded --seed, is left out)."""
    return [flag_text(name, hps[name]) for name in defined_flag_names()
            if name != "kind" and name in hps and hps[name] is not None]

