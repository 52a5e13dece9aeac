"""The NLB-style synthetic sets as the quality scripts use them (scripts/nlb_quality.py,
scripts/tune_quality.py): finding a set's file, the epochs of a training-step budget,
the scores of a model's sampled rates on the validation trials.

The sets are synth_data/run_generate_synth_data.sh's chaotic_rnn_nlb_<N>train_* files:
held-in and held-out neurons, held-in and forward bins, 500 validation trials.
"""
import math
import os

import utils
from lfads_tf2.score import lfads_score

BATCH_SIZE = 128  # the default --batch_size
# The original README's first example (no inputs), beyond the flags' defaults.
README_FLAGS = ["--co_dim=0", "--factors_dim=20", "--ext_input_dim=0",
                "--controller_input_lag=1", "--output_dist=poisson"]


def data_file(data_dir, stem):
    """The one file <stem>_* in data_dir; exits with a one-line message otherwise (the
    scripts' users then generate the sets)."""
    names = sorted(f for f in os.listdir(data_dir) if f.startswith(stem + "_"))
    if len(names) != 1:
        raise SystemExit("%s: expected one file %s_*, found %s (run "
                         "synth_data/run_generate_synth_data.sh)"
                         % (data_dir, stem, names or "none"))
    return os.path.join(data_dir, names[0])


def epochs_for_steps(steps, data_path, batch_size=BATCH_SIZE):
    """Whole epochs of at least `steps` training steps in all on the file's training
    trials (an epoch is ceil(trials / batch_size) steps)."""
    n_train = utils.read_data(data_path)["train_data"].shape[0]
    return int(math.ceil(steps / math.ceil(n_train / batch_size)))


def valid_scores(output_path, data_path):
    """lfads_score's metrics (co-bps, fp-bps, PSTH R², rate R²) of an output file on the
    validation trials of data_path."""
    return lfads_score.score_files(output_path, data_path, "valid")["metrics"]


def sampled_output(save_dir, data_path, stem):
    """The valid split's posterior_sample_and_average file run_lfads writes in save_dir
    for the data file data_path (named <stem>_<rest>)."""
    return os.path.join(save_dir, "model_runs_%s_valid_posterior_sample_and_average"
                        % os.path.basename(data_path)[len(stem) + 1:])
