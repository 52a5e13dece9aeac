"""Trains the 50-unit integration-to-bound RNN used by generate_itb_data.py (TensorFlow 2).

The original shipped a trained TF1 checkpoint (trained_itb/model-65000) but not the code that made
it. This script trains the same architecture,
    h_t = tanh(h_{t-1} Wh + b + u_t Bu),  z_t = h_t Wro + bro,  h_{-1} = 0,
on fresh white-noise inputs u_t ~ N(0, u_std^2) of 100 steps, to output the running sum of u
clipped to [-1, 1], with plain Adam on the mean squared error. It writes the weights to an .npz
(keys Wh, b, Bu, Wro, bro) and prints the integration quality on 1000 fresh sequences.

    python -m synth_data.train_itb_rnn --save_path=synth_data/trained_itb/itb_rnn_weights.npz
"""
import time

import numpy as np

from synth_data.itb_rnn import DEFAULT_WEIGHTS_PATH, integration_quality, save_itb_weights


def train_itb_rnn(N=50, T=100, u_std=0.25, batch_size=256, num_steps=4000, learning_rate=1e-3,
                  seed=0, log_every=500, log=print):
    """Trains the network; returns a dict of float32 numpy weights."""
    import tensorflow as tf
    tf.random.set_seed(seed)
    init_rng = np.random.RandomState(seed)
    # Near-identity recurrence: a good starting point for an integrator (slow leak, no blow-up).
    Wh = tf.Variable(0.9 * np.eye(N) + 0.1 * init_rng.randn(N, N) / np.sqrt(N),
                     dtype=tf.float32, name="Wh")
    b = tf.Variable(np.zeros([1, N]), dtype=tf.float32, name="b")
    Bu = tf.Variable(init_rng.randn(1, N), dtype=tf.float32, name="Bu")
    Wro = tf.Variable(init_rng.randn(N, 1) / np.sqrt(N), dtype=tf.float32, name="Wro")
    bro = tf.Variable(np.zeros([1]), dtype=tf.float32, name="bro")
    variables = [Wh, b, Bu, Wro, bro]
    optimizer = tf.keras.optimizers.Adam(learning_rate=learning_rate)
    noise = tf.random.Generator.from_seed(seed)

    @tf.function
    def train_step():
        u_bxt = noise.normal([batch_size, T]) * u_std
        target_bxt = tf.clip_by_value(tf.cumsum(u_bxt, axis=1), -1.0, 1.0)
        with tf.GradientTape() as tape:
            h_bxn = tf.zeros([batch_size, N])
            z_list = []
            for t in range(T):  # unrolled; T is small and fixed
                h_bxn = tf.tanh(tf.matmul(h_bxn, Wh) + b + u_bxt[:, t:t + 1] * Bu)
                z_list.append(tf.matmul(h_bxn, Wro) + bro)
            z_bxt = tf.concat(z_list, axis=1)
            loss = tf.reduce_mean(tf.square(z_bxt - target_bxt))
        grads = tape.gradient(loss, variables)
        optimizer.apply_gradients(zip(grads, variables))
        return loss

    for step in range(1, num_steps + 1):
        loss = train_step()
        if log is not None and (step % log_every == 0 or step == 1):
            log("step %5d  train mse %.5f" % (step, float(loss)))
    return {"Wh": Wh.numpy(), "b": b.numpy(), "Bu": Bu.numpy(), "Wro": Wro.numpy(),
            "bro": bro.numpy()}


def main(argv):
    del argv
    from absl import flags
    F = flags.FLAGS
    start = time.time()
    weights = train_itb_rnn(N=F.N, T=F.T, u_std=F.u_std, batch_size=F.batch_size,
                            num_steps=F.num_steps, learning_rate=F.learning_rate, seed=F.seed)
    train_secs = time.time() - start
    save_itb_weights(F.save_path, weights)
    weights64 = {key: value.astype(np.float64) for key, value in weights.items()}
    mse, r2 = integration_quality(weights64, nseqs=1000, T=F.T, u_std=F.u_std, seed=F.seed + 1)
    print("Trained in %.1f s; wrote %s" % (train_secs, F.save_path))
    print("1000 fresh sequences: MSE %.5f, fraction of variance explained %.4f" % (mse, r2))


if __name__ == "__main__":
    from absl import flags
    flags.DEFINE_string("save_path", DEFAULT_WEIGHTS_PATH, "Output .npz file for the weights.")
    flags.DEFINE_integer("N", 50, "Number of units.")
    flags.DEFINE_integer("T", 100, "Number of time steps per sequence.")
    flags.DEFINE_float("u_std", 0.25, "Standard deviation of the white-noise input per step.")
    flags.DEFINE_integer("batch_size", 256, "Sequences per training step.")
    flags.DEFINE_integer("num_steps", 4000, "Number of Adam updates.")
    flags.DEFINE_float("learning_rate", 1e-3, "Adam learning rate.")
    flags.DEFINE_integer("seed", 0, "Seed for initialisation and training inputs.")
    from lfads_tf2 import cli
    cli.run(main, __doc__, [("Flags", ["save_path", "N", "T", "u_std", "batch_size",
                                             "num_steps", "learning_rate", "seed"])])
