"""Per-dataset read-in and read-out: the only parts of the model that know a
dataset's width D.

    read_in(dataset, x_bxtxd)     -> [B, T, readin_dim]   x W_in + b_in
    read_out(dataset, f_bxtxf)    -> params, a tuple of [B, T, N] (one per parameter of
                                     the observation model), then the model's
                                     per-neuron constants of that dataset, [N] each
                                     (ZIG: s_min; none for Poisson and Gaussian)

The read-out is wider than the read-in when a dataset has held-out neurons: it predicts
N = D held-in + held-out neurons (`recon_dim` of the dataset's info, default D), the
held-in ones first.

`dataset` is a dataset name (a Python string: that dataset's maps are built into the
graph) or an int32 scalar tensor indexing the sorted names: then tf.switch_case picks
that dataset's weights inside the graph, and one traced step serves every session.
Tracing a step with a controller takes seconds, so one trace per session made a
five-session run start slowly (and TensorFlow warned about "retracing"). Only the
weights are picked inside the switch; the affine map is the same op on the same
values in both forms, so outputs and gradients are bit-identical. (Switching the whole
affine map instead changed the last bits of some generator gradients in training: the
graph around the switch let Grappler's arithmetic optimizer sum them in another order.)
"""
import numpy as np
import tensorflow as tf

from lfads_tf2.model.layers import Linear, init_normal, matmul_last


class ReadInOut(tf.Module):
    """The read-in D -> readin_dim and read-out F -> N maps of every dataset.

    The read-in is the identity for a single dataset without an alignment matrix,
    else a learned D -> F map (readin_dim = F). An alignment matrix [D, F] and bias
    [D] initialise the read-in as (x - bias) W and the read-out as f W^T + bias; the
    read-out's columns of held-out neurons (N > D) start as without alignment.
    """

    def __init__(self, datasets_info, factors_dim, observation, init_rng,
                 train_readin=True):
        super().__init__(name=None)
        names = sorted(datasets_info)
        self.names = names
        has_alignment = any(datasets_info[n].get("alignment_matrix_cxf") is not None
                            for n in names)
        identity = len(names) == 1 and not has_alignment
        self.readin_dim = datasets_info[names[0]]["data_dim"] if identity else factors_dim
        self.readins, self.readouts, self.constants = {}, {}, {}
        # readin then readout for each dataset: the order of the initial weights' draws
        for name in names:
            info = datasets_info[name]
            D = info["data_dim"]
            N = info.get("recon_dim") or D
            matrix, bias = info.get("alignment_matrix_cxf"), info.get("alignment_bias_c")
            in_bias = None
            if matrix is not None and bias is not None:
                # realises (x - bias) W as x W - bias W
                in_bias = -(np.asarray(bias, np.float32)[None, :]
                            @ np.asarray(matrix, np.float32))
            self.readins[name] = Linear(
                D, self.readin_dim, "LFADS/x_2_infac_" + name, init_rng, mat_init=matrix,
                bias_init=in_bias, trainable=train_readin, identity=identity)
            out_w = None if matrix is None else np.asarray(matrix, np.float32).T
            # Each dataset gets its own alignment bias only (fixes the original's
            # leak of the previous dataset's bias into datasets without one).
            out_b = None if bias is None else np.asarray(bias, np.float32)[None, :]
            if N > D and out_w is not None:
                # held-out neurons: no alignment rows, the default initial weights
                out_w = np.concatenate(
                    [out_w, init_normal(init_rng, (factors_dim, N - D), 1.0)], axis=1)
            if N > D and out_b is not None:
                out_b = np.concatenate([out_b, np.zeros((1, N - D), np.float32)], axis=1)
            self.readouts[name] = observation.readout(
                name, factors_dim, N, init_rng, out_w, out_b, len(names) == 1)
            self.constants[name] = tuple(observation.constants(name, N))

    def _apply(self, dataset, layer_of, x):
        """layer_of(name)(x) for the dataset `dataset` (a name or an index tensor)."""
        if isinstance(dataset, str):
            return layer_of(dataset)(x)
        if len(self.names) == 1:
            return layer_of(self.names[0])(x)

        def weights(name):  # with several datasets no map is the identity
            layer = layer_of(name)
            return tf.identity(layer.weight()), tf.identity(layer.b)

        w, b = tf.switch_case(dataset, [lambda n=n: weights(n) for n in self.names])
        return matmul_last(x, w) + b

    def read_in(self, dataset, x_bxtxd):
        return self._apply(dataset, lambda n: self.readins[n], x_bxtxd)

    def read_out(self, dataset, factors_bxtxf):
        n_params = len(self.readouts[self.names[0]])
        return tuple(self._apply(dataset, lambda n, k=k: self.readouts[n][k], factors_bxtxf)
                     for k in range(n_params)) + self._constants(dataset)

    def _constants(self, dataset):
        """The observation model's constants of `dataset` (a name or an index tensor)."""
        def of(name):
            return [tf.constant(c) for c in self.constants[name]]

        if not self.constants[self.names[0]]:
            return ()
        if isinstance(dataset, str):
            return tuple(of(dataset))
        if len(self.names) == 1:
            return tuple(of(self.names[0]))
        return tuple(tf.switch_case(dataset, [lambda n=n: of(n) for n in self.names]))

    def io_variables(self, with_readin):
        """The read-out variables, and the read-in ones if with_readin."""
        out = []
        for name in sorted(self.readouts):
            layers = list(self.readouts[name])
            if with_readin:
                layers.append(self.readins[name])
            out += [v for lin in layers for v in (lin.W, lin.b) if v is not None]
        return out
