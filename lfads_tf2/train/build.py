"""Builds a model for a run: the LFADS module, its optimizer, the training state and
the tf.train.Checkpoint that holds them all (a `Bundle`), seeded by --seed.

Training, evaluation and the import of original models all start here; the
checkpoint files themselves are lfads_tf2.train.checkpoints's.
"""
import collections
import json
import random

import numpy as np
import tensorflow as tf

import lfads
from lfads_tf2.data import checks
from lfads_tf2.model import regularisers
from lfads_tf2.train import hparams, optimizer as optimizer_lib


class TrainState(tf.Module):
    """Everything besides weights and optimizer slots that a resumed run needs."""

    def __init__(self, hps, arch_json, base_seed):
        super().__init__(name=None)
        self.global_step = tf.Variable(0, dtype=tf.int64, trainable=False,
                                       name="LFADS/global_step")
        self.learning_rate = tf.Variable(hps.learning_rate_init, dtype=tf.float32,
                                         trainable=False, name="LFADS/learning_rate")
        self.epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
        # Plateau rule history: last training totals (+inf after a decay).
        self.train_costs = tf.Variable(np.zeros([0], np.float64), trainable=False,
                                       shape=tf.TensorShape([None]), name="train_costs")
        self.valid_count = tf.Variable(0, dtype=tf.int64, trainable=False,
                                       name="valid_count")
        self.lowest_valid_cost = tf.Variable(np.inf, dtype=tf.float64, trainable=False,
                                             name="lowest_valid_cost")
        self.base_seed = tf.Variable(base_seed, dtype=tf.int64, trainable=False,
                                     name="base_seed")
        self.arch_json = tf.Variable(arch_json, dtype=tf.string, trainable=False,
                                     name="arch_json")
        self.bad_steps = tf.Variable(0, dtype=tf.int64, trainable=False,
                                     name="nonfinite_steps")


# cd_rate: the coordinated-dropout rate, the model's tunables.cd_rate, a non-trainable
#   float32 variable the training step reads (None without CD, see
#   regularisers.cd_enabled), so a search may change it between epochs. Not in the
#   checkpoint: it is set from --cd_rate whenever a run starts
#   (loop.set_search_variables), as the other values of lfads_tf2/model/tunables.py.
# sv: regularisers.SampleValidation (the SV masks, checkpoint child `sv`) or None.
Bundle = collections.namedtuple(
    "Bundle", "model state optimizer rng checkpoint train_vars cd_rate sv")


def architecture_json(hps):
    """The flags that fix variable shapes, as JSON (stored in every checkpoint)."""
    arch = {k: hps.get(k) for k in hparams.ARCHITECTURE_KEYS}
    # read-out widths (held-out neurons); hps from before them have the data's widths
    arch["dataset_recon_dims"] = hps.get("dataset_recon_dims") or hps["dataset_dims"]
    return json.dumps(arch, sort_keys=True)


def datasets_info(datasets):
    """Per-dataset sizes and alignment arrays the model needs (no other data), and
    the shape of the training data (for the sample-validation mask)."""
    info = {}
    for name, d in datasets.items():
        train = d.get("train_data")
        info[name] = {"data_dim": int(d["data_dim"]),
                      "recon_dim": checks.heldout_extent(d)[0] if "train_data" in d
                      else int(d["data_dim"]),
                      "train_shape": None if train is None else tuple(np.shape(train)),
                      "alignment_matrix_cxf": d.get("alignment_matrix_cxf"),
                      "alignment_bias_c": d.get("alignment_bias_c")
                      if d.get("alignment_matrix_cxf") is not None else None}
    return info


def bundle(hps, info):
    """Creates model, training state, optimizer, random generator and checkpoint.

    info: per-dataset sizes and alignment arrays, see `datasets_info`.
    """
    seed = hps.get("seed")
    if seed is not None:
        # Python's, NumPy's and TensorFlow's global seeds, as keras.utils.set_random_seed
        # (which would import Keras, seconds at start-up, for nothing else)
        random.seed(seed)
        np.random.seed(seed)
        tf.random.set_seed(seed)
        rng = tf.random.Generator.from_seed(seed)
        base_seed = seed
    else:
        # A fresh random seed rather than from_non_deterministic_state(), which
        # TensorFlow refuses once op determinism is on in the process.
        base_seed = int(np.random.SeedSequence().generate_state(1)[0])
        rng = tf.random.Generator.from_seed(base_seed)
    model = lfads.LFADS(hps, info, init_seed=seed)
    state = TrainState(hps, architecture_json(hps), base_seed)
    train_vars = model.trainable_variables_to_train()
    # Slots for every trainable variable, not only those this run updates, so a
    # checkpoint fits every --do_train_io_only / --do_train_encoder_only setting.
    optimizer = optimizer_lib.Adam(model.trainable_variables, state.learning_rate)
    cd_rate = sv = None
    if regularisers.cd_enabled(hps):
        cd_rate = model.tunables.cd_rate
    parts = dict(model=model, optimizer=optimizer, state=state, rng=rng)
    if regularisers.sv_enabled(hps):
        # Drawn here from --sv_seed; a restored checkpoint's mask replaces it.
        sv = regularisers.SampleValidation(
            {name: i["train_shape"] for name, i in info.items()
             if i.get("train_shape") is not None}, hps.sv_rate, hps.get("sv_seed", 0))
        parts["sv"] = sv
    checkpoint = tf.train.Checkpoint(**parts)
    return Bundle(model, state, optimizer, rng, checkpoint, train_vars, cd_rate, sv)


def original_variables(bundle):
    """Our variables that exist in the original's graph (names start with LFADS/).

    Weights, global step, learning rate, Adam slots and beta powers; not our own
    loop state (epoch, plateau history, seeds), which the original did not have.
    """
    variables = list(bundle.model.variables)
    variables += [bundle.state.global_step, bundle.state.learning_rate]
    variables += list(bundle.optimizer.variables)
    unique = {}
    for v in variables:
        if v.name.startswith("LFADS/"):
            unique[v.name] = v
    return [unique[k] for k in sorted(unique)]
