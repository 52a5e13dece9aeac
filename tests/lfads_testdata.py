"""Tiny synthetic data sets and helpers shared by the end-to-end tests.

Each trial is driven by a few latent sinusoids with per-trial random phases,
mapped through a random loading matrix to log-rates (optionally plus the response
to a pulse given as external input). Counts are Poisson draws from numpy
RandomState(seed); the Gaussian variant adds white noise to the rates instead.
Keys follow the original's data format: train_data / valid_data (int),
train_truth / valid_truth (rates in counts/bin) and conversion_factor = 1.0.
"""
import math
import os
import pickle

import numpy as np

import utils
from lfads_tf2.train import hparams

STEM = "synth"


def make_dataset(seed=0, n_train=160, n_valid=48, T=25, D=15, n_latents=3,
                 base_rate=0.6, gain=1.1, ext_input_dim=0, gaussian=False):
    """Returns a data dict (numpy arrays); deterministic in `seed`."""
    rs = np.random.RandomState(seed)
    E = n_train + n_valid
    t = np.arange(T)[None, :, None]  # [1, T, 1]
    freqs = rs.uniform(0.5, 2.0, size=(1, 1, n_latents)) * 2 * np.pi / T
    phases = rs.uniform(0, 2 * np.pi, size=(E, 1, n_latents))
    latents = np.sin(freqs * t + phases)  # [E, T, L]
    W = rs.randn(n_latents, D) / np.sqrt(n_latents)
    bias = np.log(base_rate) + 0.3 * rs.randn(D)
    ext = None
    log_rates = gain * latents @ W + bias
    if ext_input_dim > 0:
        ext = np.zeros((E, T, ext_input_dim))
        pulse_t = rs.randint(3, T - 5, size=E)
        ext[np.arange(E), pulse_t, 0] = 1.0
        # the pulse raises the rates of every neuron for a few bins
        kernel = np.cumsum(ext[..., :1], axis=1) * np.exp(
            -np.maximum(t - pulse_t[:, None, None], 0) / 3.0)
        log_rates = log_rates + 0.8 * kernel
    rates = np.exp(log_rates)  # counts/bin
    if gaussian:
        data = (rates + 0.3 * rs.randn(*rates.shape)).astype(np.float32)
    else:
        data = rs.poisson(rates).astype(np.int64)
    out = {
        "train_data": data[:n_train], "valid_data": data[n_train:],
        "train_truth": rates[:n_train], "valid_truth": rates[n_train:],
        "conversion_factor": 1.0,
    }
    if ext is not None:
        out["train_ext_input"] = ext[:n_train]
        out["valid_ext_input"] = ext[n_train:]
    return out


def write_dataset(folder, name="set0", stem=STEM, **kwargs):
    """Writes make_dataset(**kwargs) to <folder>/<stem>_<name>; returns the dict."""
    data = make_dataset(**kwargs)
    os.makedirs(folder, exist_ok=True)
    utils.write_data(os.path.join(folder, "%s_%s" % (stem, name)), data)
    return data


# Small model flags shared by most tests (combine with data/save dir flags).
TINY_MODEL = [
    "--ic_dim=6", "--factors_dim=5", "--ic_enc_dim=12", "--gen_dim=24",
    "--co_dim=1", "--ci_enc_dim=8", "--con_dim=8", "--batch_size=16",
    "--kl_increase_steps=20", "--l2_increase_steps=20", "--device=cpu:0",
    "--learning_rate_init=0.02", "--keep_prob=0.95",
]
# The same without a controller: its training step traces in ~3 s instead of ~9 s,
# so the short runs that test the machinery rather than the learning use it.
TINY_NO_CONTROLLER = [f for f in TINY_MODEL if not f.startswith("--co_dim=")] + [
    "--co_dim=0"]


def run(argv, default_seed=0):
    """In-process `python run_lfads.py argv`; returns whatever run() returns.

    Adds --seed=<default_seed> unless argv has a --seed: a seeded training run
    turns on TensorFlow's op determinism for the whole process, after which every
    unseeded build fails (see test_eval_kinds.py::test_unseeded_run_after_seeded_
    training_in_the_same_process). default_seed=None passes argv unchanged.
    """
    import run_lfads
    argv = list(argv)
    if default_seed is not None and not any(a.startswith("--seed=") for a in argv):
        argv.append("--seed=%d" % default_seed)
    hps = hparams.hps_from_argv(argv)
    return run_lfads.run(hps)


def checkpoint_values(path):
    """{variable key: numpy value} of every tensor in a TF2 checkpoint."""
    import tensorflow as tf
    reader = tf.train.load_checkpoint(path)
    return {k: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
            if k != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def fitlog_lines(save_dir, csv_log="fitlog"):
    with open(os.path.join(save_dir, csv_log + ".csv")) as f:
        return [line for line in f.read().splitlines() if line.strip()]


def fitlog_tokens(line):
    return [tok.strip() for tok in line.split(",")]


def fitlog_record(line):
    """Parses one validation-variant fitlog line into a dict of numbers."""
    tok = fitlog_tokens(line)
    return {"epoch": int(tok[1]), "step": int(tok[3]),
            "total_tr": float(tok[5]), "total_va": float(tok[6]),
            "recon_tr": float(tok[8]), "recon_va": float(tok[9]),
            "kl_tr": float(tok[11]), "kl_va": float(tok[12]),
            "l2": float(tok[14]), "kl_weight": float(tok[16]),
            "l2_weight": float(tok[18])}


def poisson_nll_per_trial(counts, rates):
    """-log Poisson(counts | rates), summed over time and neurons, mean over trials."""
    counts = np.asarray(counts, np.float64)
    rates = np.asarray(rates, np.float64)
    lgam = np.vectorize(math.lgamma)(counts + 1.0)
    nll = rates - counts * np.log(rates) + lgam
    return float(nll.sum(axis=(1, 2)).mean())


def best_constant_rate_nll(counts):
    """NLL of the best constant-rate model of `counts` [E, T, D].

    The per-neuron mean rate of these very counts (the maximum-likelihood constant
    rate, so no constant model does better), as poisson_nll_per_trial.
    """
    mean_rate = np.asarray(counts, np.float64).mean(axis=(0, 1))  # [D]
    mean_rate = np.maximum(mean_rate, 1e-6)
    rates = np.broadcast_to(mean_rate, np.shape(counts))
    return poisson_nll_per_trial(counts, rates)


def corr(a, b):
    """Pearson correlation of two arrays, flattened."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    return float(np.corrcoef(a, b)[0, 1])


def loglik_and_grads(model, enc, target, mask, seed=0, variables=()):
    """One training-mode pass of `model` on dataset "ds": (total cost, ModelOutput,
    per-entry log-likelihood, gradients of the total w.r.t. [each entry's first output
    parameter, *variables]).

    The first output parameter (log-rate, mean, q logit, ...) that enters the
    likelihood gets a zero-valued variable added, whose gradient is the gradient with
    respect to that parameter, entry by entry."""
    import tensorflow as tf
    delta = tf.Variable(tf.zeros(np.shape(target)))
    record = {}
    real = model.observation.log_likelihood

    def log_likelihood(x, params):
        record["ll"] = real(x, (params[0] + delta,) + tuple(params[1:]))
        return record["ll"]

    model.observation.log_likelihood = log_likelihood
    try:
        with tf.GradientTape() as tape:
            out = model.forward("ds", enc, None, tf.random.Generator.from_seed(seed),
                                "train", recon_bxtxn=target, cost_mask_bxtxn=mask)
            total = tf.reduce_sum(model.costs(out, tf.constant(0, tf.int64)).total)
        grads = tape.gradient(total, [delta] + list(variables))
    finally:
        del model.observation.log_likelihood
    return total, out, record["ll"].numpy(), grads


def fast_flags(data_dir, save_dir):
    """Flags of a short run of the tiny model without a controller on data_dir."""
    return ["--data_dir=" + str(data_dir), "--data_filename_stem=" + STEM,
            "--lfads_save_dir=" + str(save_dir)] + TINY_NO_CONTROLLER


def assert_same_arrays(a, b, what=""):
    """Two {name: array} dicts hold the same names and bit-identical arrays."""
    assert sorted(a) == sorted(b), what
    differ = [k for k in a if not np.array_equal(a[k], b[k])]
    assert not differ, "%s: differ: %s" % (what, differ[:10])


def finite_fitlog(save_dir):
    """The fitlog's records (fitlog_record), every number in them finite."""
    recs = [fitlog_record(line) for line in fitlog_lines(save_dir)]
    for r in recs:
        assert all(math.isfinite(v) for v in r.values()), r
    return recs


# ------------------------------------------------------------------ shared trained models
# Trained once per pytest session by background jobs (tests/background.py: started when
# the tests are collected, beside the tests before the first that needs them) and reused
# by test_training_run.py, test_training_variants.py and test_eval_kinds.py. Of the
# trained bundle, which stays in the job's process, the job keeps what the tests compare
# with in <folder>/trained.pkl: every variable the checkpoint holds (bundle_state),
# evaluation.model_params and the global step. Tests must not change these folders; copy
# them (shutil.copytree) before training on.
_CACHE = {}

MAIN_EPOCHS = 30


def bundle_state(bundle):
    """Every variable the checkpoint holds: model, optimizer, loop state, rng."""
    out = {}
    for prefix, mod in (("model", bundle.model), ("opt", bundle.optimizer),
                        ("state", bundle.state)):
        for v in mod.variables:
            out[prefix + ":" + v.name] = v.numpy()
    out["rng"] = bundle.rng.state.numpy()
    return out


def _keep_trained(folder, bundle):
    from lfads_tf2.evaluate import kinds
    with open(os.path.join(folder, "trained.pkl"), "wb") as f:
        pickle.dump({"state": bundle_state(bundle), "params": kinds.model_params(bundle),
                     "step": int(bundle.state.global_step.numpy())}, f)


def _load_trained(folder, flags, data):
    with open(os.path.join(folder, "trained.pkl"), "rb") as f:
        trained = pickle.load(f)
    return dict(trained, data_dir=os.path.join(folder, "data"),
                save_dir=os.path.join(folder, "save"), data=data, flags=flags)


def _main_flags(folder):
    return ["--data_dir=" + os.path.join(folder, "data"), "--data_filename_stem=" + STEM,
            "--lfads_save_dir=" + os.path.join(folder, "save")] + TINY_MODEL


def train_main_model(folder):
    """Background job: a tiny model trained MAIN_EPOCHS epochs (300 steps) on
    make_dataset(seed=0)."""
    write_dataset(os.path.join(folder, "data"), seed=0)
    bundle = run(_main_flags(folder) + ["--seed=1", "--max_epochs=%d" % MAIN_EPOCHS,
                                        "--max_ckpt_to_keep=3", "--max_ckpt_to_keep_lve=2"])
    _keep_trained(folder, bundle)


def main_model():
    """{data_dir, save_dir, data, flags, state, params, step} of train_main_model."""
    if "main" not in _CACHE:
        import background
        folder = background.result(train_main_model)
        _CACHE["main"] = _load_trained(folder, _main_flags(folder), make_dataset(seed=0))
    return _CACHE["main"]


MULTI_DIMS = {"set0": 15, "set1": 12}
MULTI_FACTORS = 5


def _multi_datas():
    """Two datasets (D=15 and D=12, same T) with alignment matrices."""
    datas = {}
    for i, (name, D) in enumerate(sorted(MULTI_DIMS.items())):
        d = make_dataset(seed=10 + i, n_train=32, n_valid=16, D=D)
        rs = np.random.RandomState(20 + i)
        d["alignment_matrix_cxf"] = rs.randn(D, MULTI_FACTORS) / np.sqrt(D)
        d["alignment_bias_c"] = np.log(np.asarray(d["train_data"]).mean(axis=(0, 1)) + 0.1)
        datas[name] = d
    return datas


def _multi_flags(folder):
    return ["--data_dir=" + os.path.join(folder, "data"), "--data_filename_stem=" + STEM,
            "--lfads_save_dir=" + os.path.join(folder, "save")] + TINY_NO_CONTROLLER


def train_multi_model(folder):
    """Background job: a model of the two _multi_datas trained 2 epochs."""
    for name, d in _multi_datas().items():
        utils.write_data(os.path.join(folder, "data", "%s_%s" % (STEM, name)), d)
    flags = _multi_flags(folder)
    assert "--factors_dim=%d" % MULTI_FACTORS in flags
    _keep_trained(folder, run(flags + ["--seed=2", "--max_epochs=2"]))


def multi_model():
    """{data_dir, save_dir, data, flags, state, params, step} of train_multi_model."""
    if "multi" not in _CACHE:
        import background
        folder = background.result(train_multi_model)
        _CACHE["multi"] = _load_trained(folder, _multi_flags(folder), _multi_datas())
    return _CACHE["multi"]


# Three sessions of different widths, each with alignment matrices and a 2-channel
# external input (a pulse on channel 0; channel 1 is a second, weaker pulse).
SESSION_DIMS = {"s0": 15, "s1": 12, "s2": 9}
SESSION_EXT = 2


def write_sessions(folder, stem=STEM, n_train=32, n_valid=16, T=20, dims=None):
    """Writes one file per session (<stem>_<name>); returns {name: data dict}."""
    datas = {}
    for i, (name, D) in enumerate(sorted((dims or SESSION_DIMS).items())):
        d = make_dataset(seed=30 + i, n_train=n_train, n_valid=n_valid, T=T, D=D,
                         ext_input_dim=SESSION_EXT)
        rs = np.random.RandomState(40 + i)
        for split in ("train", "valid"):
            ext = d[split + "_ext_input"]
            ext[..., 1] = 0.5 * np.roll(ext[..., 0], 3, axis=1)
        d["alignment_matrix_cxf"] = rs.randn(D, MULTI_FACTORS) / np.sqrt(D)
        d["alignment_bias_c"] = np.log(np.asarray(d["train_data"]).mean(axis=(0, 1)) + 0.1)
        os.makedirs(folder, exist_ok=True)
        utils.write_data(os.path.join(folder, "%s_%s" % (stem, name)), d)
        datas[name] = d
    return datas
