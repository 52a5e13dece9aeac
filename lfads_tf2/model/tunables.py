"""Hyperparameters a search may change while a run trains: variables the graph reads.

A compiled step reads a Python number once, when it is traced, and keeps it as a
constant; a variable it reads at every call. So every hyperparameter that population-based
training (lfads_tf2/search/lfads_tune.py) may perturb mid-run lives in a non-trainable float32
variable, and changing it never retraces:

    learning_rate_init  the learning-rate variable of the training state
                        (build.TrainState.learning_rate, in the checkpoint)
    cd_rate, keep_prob, kl_ic_weight, kl_co_weight, l2_gen_scale, l2_con_scale
                        `Tunables`, owned by the model (lfads.LFADS.tunables); the
                        coordinated-dropout rate is read by the input regularisers
                        (lfads_tf2/model/regularisers.py; build.Bundle.cd_rate is this
                        variable when CD is compiled in)

The other input regularisers' settings are not here: the sample-validation entries
(--sv_rate) are drawn once and kept in the checkpoint, so a new rate mid-run would not
match them; the spike-jitter width is read from hps on the host at every epoch, outside
any graph.

Only the learning rate is in the checkpoint (as in the original); the others are set
from the flags whenever a run starts (training.train), so a resumed run takes the
values it is started with, as it always did.

Terms that a value of 0 leaves out of the graph (coordinated dropout, the L2 cost of a
scale of 0) are compiled in when the flag is in `hps.search_keys` (the flags a search
changes; absent in ordinary runs), so that a search may move the value away from 0.
Ordinary runs build exactly the graph they built before, and since a float32
variable holds the value the Python number was converted to, they compute the same
numbers.

TensorFlow is imported when Tunables are built, not with the module: lfads_tune reads
PERTURBABLE to check a search space before anything else starts.
"""
# Read in the graph from Tunables.
IN_GRAPH = ("cd_rate", "keep_prob", "kl_ic_weight", "kl_co_weight", "l2_gen_scale",
            "l2_con_scale")
# Every flag a search may change in a running trial (population-based training).
PERTURBABLE = ("learning_rate_init",) + IN_GRAPH


def searched(hps, name):
    """Whether a search may change flag `name` during the run (hps.search_keys)."""
    return name in (hps.get("search_keys") or ())


def _value(hps, name):
    # hps written before coordinated dropout existed lack cd_rate: they had none
    return float(hps.get(name, 0.0) if name == "cd_rate" else hps[name])


class Tunables:
    """The in-graph hyperparameters (IN_GRAPH), one float32 variable each, set from hps.

    A plain object, not a tf.Module: the variables stay out of the model's
    `variables`, its checkpoints and write_model_params, which hold what was learned.
    Attribute access gives the variable: `tunables.keep_prob`.
    """

    def __init__(self, hps):
        import tensorflow as tf
        self.variables = {name: tf.Variable(_value(hps, name), dtype=tf.float32,
                                            trainable=False, name="tunable_" + name)
                          for name in IN_GRAPH}

    def __getattr__(self, name):
        variables = self.__dict__.get("variables", {})
        if name in variables:
            return variables[name]
        raise AttributeError(name)

    def assign(self, hps):
        """Sets every variable from hps (a run that starts, or an exploit)."""
        for name, var in self.variables.items():
            var.assign(_value(hps, name))

    def values(self):
        """{name: float} the values in effect."""
        return {name: float(var.numpy()) for name, var in self.variables.items()}
