"""Per-dataset read-in and read-out: the only parts of the model that know a
dataset's width D (§4.4).

    read_in(name, x_bxtxd)     -> [B, T, readin_dim]   x W_in + b_in
    read_out(name, f_bxtxf)    -> params, a tuple of [B, T, D] (one per parameter of
                                  the observation model)
"""
import numpy as np
import tensorflow as tf

from lfads_tf2.layers import Linear


class ReadInOut(tf.Module):
    """The read-in D -> readin_dim and read-out F -> D maps of every dataset.

    The read-in is the identity for a single dataset without an alignment matrix,
    else a learned D -> F map (readin_dim = F). An alignment matrix [D, F] and bias
    [D] initialise the read-in as (x - bias) W and the read-out as f W^T + bias.
    """

    def __init__(self, datasets_info, factors_dim, observation, init_rng,
                 train_readin=True):
        super().__init__(name=None)
        names = sorted(datasets_info)
        has_alignment = any(datasets_info[n].get("alignment_matrix_cxf") is not None
                            for n in names)
        identity = len(names) == 1 and not has_alignment
        self.readin_dim = datasets_info[names[0]]["data_dim"] if identity else factors_dim
        self.readins, self.readouts = {}, {}
        # readin then readout for each dataset: the order of the initial weights' draws
        for name in names:
            info = datasets_info[name]
            D = info["data_dim"]
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
            # leak of the previous dataset's bias, spec Q6).
            out_b = None if bias is None else np.asarray(bias, np.float32)[None, :]
            self.readouts[name] = observation.readout(
                name, factors_dim, D, init_rng, out_w, out_b, len(names) == 1)

    def read_in(self, name, x_bxtxd):
        return self.readins[name](x_bxtxd)

    def read_out(self, name, factors_bxtxf):
        return tuple(lin(factors_bxtxf) for lin in self.readouts[name])

    def io_variables(self, with_readin):
        """The read-out variables, and the read-in ones if with_readin (§7.2)."""
        out = []
        for name in sorted(self.readouts):
            layers = list(self.readouts[name])
            if with_readin:
                layers.append(self.readins[name])
            out += [v for lin in layers for v in (lin.W, lin.b) if v is not None]
        return out
