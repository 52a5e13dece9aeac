"""Every random number of one forward pass, drawn in one place and one order.

The fused and the autodiff recurrences must see exactly the same dropout masks and
posterior noise, so neither draws anything: `draw` makes all of a pass's draws up
front and both consume the result. Draws depend only on shapes, never on values, so
drawing them before the network runs gives the numbers the original order of the
code gave. The order below is part of the model's behaviour (a seeded run depends
on it): change it and seeded results change.

    1. ext_mask_bxtxi     dropout of the external inputs      (train, inputs given)
    2. data_mask_bxtxd    dropout of the data, shared by the IC and CI encoders (train)
    3. ic_enc_mask_bxe    dropout of the IC encoders' final states     (train, Z > 0)
    4. g0_noise_bxz       N(0, 1) for g0 from the posterior or, prior_sample, the
                          prior                        (Z > 0, not posterior_mean)
    5. gen_mask_txbxg     dropout of the generator states before the factors (train)
    6. co_prior_noise_txbxu  N(0, 1) driving the AR(1) prior   (prior_sample, U > 0)
    7. con_mask_bxtxk     dropout of the controller inputs [encoder part, feedback]
                                                           (train, with controller)
    8. co_noise_txbxu     N(0, 1) for u_t; drawn in posterior_mean mode too, where
                          only the KL uses it, as the original   (with controller)
Absent draws are None. B counts rows: trials times samples per trial, except for the
masks 1-3, which act before the trials are repeated. T is the encoders' number of
steps in 1-2 and the generator's (T + forward bins) in 5-8: with forward bins the
generator-side draws are longer, their number and order stay the same.
"""
import collections

import tensorflow as tf

Draws = collections.namedtuple("Draws", [
    "ext_mask_bxtxi", "data_mask_bxtxd", "ic_enc_mask_bxe", "g0_noise_bxz",
    "gen_mask_txbxg", "co_prior_noise_txbxu", "con_mask_bxtxk", "co_noise_txbxu"])

# The model's sizes the draws need: num_steps T (the encoders'), ext_dim I, ic_enc_dim
# E (per direction, 0 without IC encoders), ic_dim Z, gen_dim G, co_dim U, con_in_dim
# (controller input width), gen_steps (the generator's: T + forward bins; None: T).
Sizes = collections.namedtuple("Sizes", "num_steps ext_dim ic_enc_dim ic_dim gen_dim "
                                        "co_dim con_in_dim gen_steps", defaults=(None,))


def dropout_mask(rng, shape, keep_prob):
    """Inverted-dropout multiplier: 1/keep with probability keep, else 0."""
    u = rng.uniform(shape)
    return tf.cast(u < keep_prob, tf.float32) / keep_prob


def draw(rng, sizes, mode, keep_prob, batch, rows, data_dim, has_ext):
    """All draws of one pass in the order of the module docstring -> Draws.

    batch: trials (a scalar tensor); rows: trials x samples; data_dim D.
    """
    T, U = sizes.num_steps, sizes.co_dim
    T_gen = sizes.gen_steps or T
    training, prior = mode == "train", mode == "prior_sample"

    def mask(*shape):
        return dropout_mask(rng, tf.stack(shape), keep_prob) if training else None

    ext_mask = mask(batch, T, sizes.ext_dim) if has_ext else None
    data_mask = mask(batch, T, data_dim)
    ic_enc_mask = mask(batch, 2 * sizes.ic_enc_dim) if sizes.ic_dim > 0 else None
    g0_noise = None
    if sizes.ic_dim > 0 and mode != "posterior_mean":
        g0_noise = rng.normal(tf.stack([rows, sizes.ic_dim]))
    gen_mask = mask(T_gen, rows, sizes.gen_dim)
    co_prior_noise = con_mask = co_noise = None
    if U > 0 and prior:
        co_prior_noise = rng.normal(tf.stack([T_gen, rows, U]))
    elif U > 0:
        con_mask = mask(rows, T_gen, sizes.con_in_dim)
        co_noise = rng.normal(tf.stack([T_gen, rows, U]))
    return Draws(ext_mask, data_mask, ic_enc_mask, g0_noise, gen_mask, co_prior_noise,
                 con_mask, co_noise)
