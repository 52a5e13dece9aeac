"""Which object layout a checkpoint file has, and how to read the older one.

tf.train.Checkpoint finds a variable by its path through the object tree, e.g.
`model/ic_enc_fwd/gates/W`. Up to v0.1 the LFADS module held every part as a direct
attribute (`model.ic_enc_fwd`, `model.readouts[d]`, `model.generator`, ...); now the
parts are sub-modules (`model.ic_encoder.ic_enc_fwd`, `model.readinout.readouts[d]`,
`model.generator.generator`, ...), so the same variable has another path.

Choice: rather than keep v0.1's attribute names on the model for ever (which would
undo the split), a v0.1 file is read through a *v0.1 view*: plain tf.Modules whose
attribute tree mirrors v0.1's LFADS and whose leaves are the current model's layers
and variables (no copies). Reading the file through the view fills the model. The
layers (Linear, EncoderGRU, GenGRU) and the priors kept their attribute names, so
only the top of the tree needs mirroring. The layout is told by a key only v0.1
files have, never by trying one layout and catching the failure.

New layouts: add a detector and a view here; checkpoints.restore needs no change.

Optional parts: the sample-validation masks (child `sv`, lfads_tf2/model/regularisers.py) exist
only in checkpoints of runs with --sv_rate > 0. A checkpoint without them is read
without that child, so the model, its state and the mask drawn from the flags stay
usable (and a run without --sv_rate ignores the masks of a checkpoint that has them).
"""
import tensorflow as tf

# `gen_2_fac` exists in every configuration and is a direct attribute of the model
# in v0.1 only (now `model/generator/gen_2_fac`).
V0_1_KEY = "model/gen_2_fac/W/.ATTRIBUTES/VARIABLE_VALUE"


def is_v0_1(reader):
    """True if a tf.train.CheckpointReader's file has v0.1's object layout."""
    return reader.has_tensor(V0_1_KEY)


def v0_1_view(model):
    """A tf.Module whose attributes are those v0.1's LFADS module had, pointing at
    the parts of `model` (an lfads.LFADS)."""
    view = tf.Module()
    rio = model.readinout
    view.readins = dict(rio.readins)
    # v0.1 kept a Poisson read-out as one Linear, a Gaussian one as (means, logvars)
    view.readouts = {name: layers[0] if len(layers) == 1 else tuple(layers)
                     for name, layers in rio.readouts.items()}
    ic, ci, init, gen = model.ic_encoder, model.ci_encoder, model.initial_state, \
        model.generator
    parts = {}
    if ic is not None:
        parts.update({k: getattr(ic, k) for k in (
            "ic_enc_fwd", "ic_enc_rev", "ic_enc_t0_fwd", "ic_enc_t0_rev", "ic_post_mean",
            "ic_post_logvar")})
        parts.update(ic_prior=init.ic_prior, g0_2_gen_ic=init.g0_2_gen_ic)
    else:
        parts["gen_g0"] = init.gen_g0
    if ci is not None:
        parts.update({k: getattr(ci, k) for k in (
            "ci_enc_fwd", "ci_enc_t0_fwd", "ci_enc_rev", "ci_enc_t0_rev")
            if getattr(ci, k) is not None})
        parts.update({k: getattr(gen, k) for k in (
            "co_prior", "con_c0", "controller", "co_post_mean", "co_post_logvar")})
    parts.update(generator=gen.generator, gen_2_fac=gen.gen_2_fac,
                 l2_gen_vars=list(model.cost_terms.l2_gen_vars),
                 l2_con_vars=list(model.cost_terms.l2_con_vars))
    for key, value in parts.items():
        setattr(view, key, value)
    return view


SV_PREFIX = "sv/"


def has_sv(reader):
    """True if a tf.train.CheckpointReader's file holds sample-validation masks."""
    return any(key.startswith(SV_PREFIX) for key in reader.get_variable_to_shape_map())


def checkpoint_to_read(bundle, reader):
    """The tf.train.Checkpoint to read a file with: the bundle's own or, for a v0.1
    file, one with the same children whose model is `v0_1_view(bundle.model)`; the
    bundle's SV masks only if the file has them."""
    v0_1 = is_v0_1(reader)
    with_sv = bundle.sv is not None and has_sv(reader)
    if not v0_1 and with_sv == (bundle.sv is not None):
        return bundle.checkpoint
    parts = dict(model=v0_1_view(bundle.model) if v0_1 else bundle.model,
                 optimizer=bundle.optimizer, state=bundle.state, rng=bundle.rng)
    if with_sv:
        parts["sv"] = bundle.sv
    return tf.train.Checkpoint(**parts)
