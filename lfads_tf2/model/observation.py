"""Observation models: what the read-out's parameters mean for the data.

One class per distribution, in the registry MODELS; `for_dist(name)` gives the model of
--output_dist, and no other module compares the names. A model owns
  * its read-out maps (one `Linear` per parameter, named as in the original), and the
    per-entry log-likelihood of the data given their outputs `params` (a tuple of
    [B, T, D] tensors);
  * what the output files report: `output_dist_params` [.., P*D], the P parameters
    `reported_names` concatenated on the last axis, and its mean [.., D];
  * the checks its data must pass, and how to read the reported parameters back
    (numpy, for scores and figures: mean, log-likelihood, sampling, the per-neuron
    null model of bits per entry);
  * values it takes from the data rather than learning (`constant_names`, ZIG's s_min:
    `derived_hps` puts them in hps, `constants` appends them to `params`, posterior
    files hold them) and the flags only it reads (`own_flags`).
Adding a model is one class here and one entry in MODELS. Which model fits which data:
docs/observation_models.md.

TensorFlow is imported inside the methods that build graphs only: the data checks,
lfads_score and the figures use the same classes without TensorFlow's start-up. SciPy
(0.2 s to import) only inside the numpy likelihoods and fits that scoring uses, so that
run_lfads's start-up and its flag errors do not pay for it.
"""
import numpy as np

from lfads_tf2.errors import UsageError, bad_values, data_error, note

# Reported rates / variances are exp(clip(log value, -80, 80)), as the original's lfads.py
# (its _clip_value = 80 keeps exp finite); the likelihood itself always uses the
# unclipped values.
CLIP_VALUE = 80.0
# Counts are fed to the model as float32; beyond int32 they are not exact counts.
_INT32_MAX = np.iinfo(np.int32).max
# The gamma models' log-shape and log-scale are clipped to +-LOG_GAMMA_CLIP, in the
# likelihood as in the reported values: with exp(+-20) every term of the gamma
# log-density and the mean k*theta <= e^40 stay finite in float32 (lgamma(e^20) ~ 9e9),
# while shapes and scales from 2e-9 to 5e8 cover any trace (one spike is ~1 in
# deconvolved units, ~100 in raw fluorescence counts).
LOG_GAMMA_CLIP = 20.0
# The ZIG's q = Q_EPS + (1 - 2 Q_EPS) sigmoid(logit): q never reaches 0 or 1, so the
# likelihood computed from the written parameters (float32 q, as lfads_score reads it)
# stays finite for every entry; near q = 1 float32 resolves 1 - q to 0.6 %.
Q_EPS = 1e-5
# The floor of a gamma variable's value: x - s_min for a non-zero ZIG entry at or below
# s_min (the smallest non-zero entry itself with the default s_min), where the density
# is 0 or infinite; the same floor as tests/calcium_reference.py.
TINY = 1e-8


def _exp_clipped(x):
    import tensorflow as tf
    return tf.exp(tf.clip_by_value(x, -CLIP_VALUE, CLIP_VALUE))


def _per_neuron(stat, x_etn):
    """stat (np.nanmean, ...) over every trial and bin of each neuron -> [N] float64."""
    import warnings
    x = np.asarray(x_etn, np.float64)
    with warnings.catch_warnings():  # an all-NaN neuron: NaN, unused by the callers
        warnings.simplefilter("ignore", RuntimeWarning)
        return stat(x.reshape(-1, x.shape[-1]), axis=0)


def _gamma_log_density_tf(y, log_k, log_theta):
    """log Gamma(y; shape k = exp(log_k), scale theta = exp(log_theta)), y > 0:
    (k - 1) log y - y / theta - k log theta - lgamma(k); log_k, log_theta clipped."""
    import tensorflow as tf
    log_k = tf.clip_by_value(log_k, -LOG_GAMMA_CLIP, LOG_GAMMA_CLIP)
    log_theta = tf.clip_by_value(log_theta, -LOG_GAMMA_CLIP, LOG_GAMMA_CLIP)
    k = tf.exp(log_k)
    return ((k - 1.0) * tf.math.log(y) - y * tf.exp(-log_theta) - k * log_theta
            - tf.math.lgamma(k))


def _gamma_log_density_np(y, k, theta):
    """The same in numpy from k and theta (float64)."""
    from scipy import special
    y, k, theta = (np.asarray(a, np.float64) for a in (y, k, theta))
    return (k - 1.0) * np.log(y) - y / theta - k * np.log(theta) - special.gammaln(k)


def _exp_gamma_clipped(x):
    """exp(clip(x, +-LOG_GAMMA_CLIP)): a gamma shape or scale from its log."""
    import tensorflow as tf
    return tf.exp(tf.clip_by_value(x, -LOG_GAMMA_CLIP, LOG_GAMMA_CLIP))


def fit_gamma(y_sxn, use_sxn):
    """Maximum-likelihood shape and scale [N] each of Gamma samples y [S, N] (rows where
    use [S, N] is True; y > 0 there). The shape solves log k - digamma(k) = s with
    s = log mean(y) - mean(log y), by Minka's Newton iteration on 1/k (Minka, "Estimating
    a Gamma distribution", 2002), which converges in a few steps from his closed-form
    start; theta = mean(y) / k. A neuron without samples gets k = theta = 1."""
    from scipy import special
    use = np.asarray(use_sxn, bool)
    y = np.where(use, np.asarray(y_sxn, np.float64), 1.0)  # unused rows: log(1) = 0
    empty = ~use.any(axis=0)
    n = np.maximum(use.sum(axis=0), 1)
    mean = np.where(empty, 1.0, np.sum(np.where(use, y, 0.0), axis=0) / n)
    mean_log = np.sum(np.log(y), axis=0) / n
    # s >= 0 (Jensen); 0 when all samples are equal, where k is unbounded: floored where
    # k ~ 1 / (2 s) reaches the models' largest shape
    s = np.maximum(np.log(mean) - mean_log, 0.5 * np.exp(-LOG_GAMMA_CLIP))
    k = (3.0 - s + np.sqrt((s - 3.0) ** 2 + 24.0 * s)) / (12.0 * s)
    for _ in range(20):
        step = (np.log(k) - special.digamma(k) - s) / (
            k * k * (1.0 / k - special.polygamma(1, k)))
        k = 1.0 / (1.0 / k + step)
    k = np.clip(k, np.exp(-LOG_GAMMA_CLIP), np.exp(LOG_GAMMA_CLIP))
    return np.where(empty, 1.0, k), np.where(empty, 1.0, mean / k)


def smallest_nonzero(x_etn):
    """Each neuron's smallest value > 0 [N] (as float32, the model's input type), over
    every trial and bin; a neuron without one gets the smallest of the others (0 if
    there is none). NaN entries are left out."""
    x = np.asarray(x_etn, np.float32)
    x = x.reshape(-1, x.shape[-1])
    low = np.where(x > 0, x, np.inf).min(axis=0)
    found = np.isfinite(low)
    return np.where(found, low, low[found].min() if found.any() else 0.0).astype(np.float32)


class ObservationModel:
    """What every model has; subclasses set the names and write the equations."""

    name = None            # the value of --output_dist
    reported_names = ()    # the parameters in output_dist_params, in this order
    counts = False         # the data are counts (spike jitter applies)
    values = "real values" # what the data hold, for error messages
    # How the synthetic generators relate this model's mean to `<split>_truth`
    # (figures.truth_scale): "rates" as Poisson rates, "gaussify_data" as the original's
    # gaussify_data (means = max_firing_rate * truth).
    truth_convention = "rates"

    # Per-neuron values the model takes from the data rather than learning them (ZIG:
    # s_min); they follow the read-out's parameters in `params` as [N] tensors, and
    # posterior files hold them as `output_dist_<name>` [N].
    constant_names = ()
    # The run_lfads flags that only this model reads (an error with any other model).
    own_flags = ()
    # Output files without the attribute `output_dist` come from versions that had only
    # Poisson and Gaussian: a width that fits another model too still means these.
    in_unnamed_files = False

    @property
    def num_params(self):
        return len(self.reported_names)

    def with_hps(self, hps):
        """The model as a run uses it: with its constants from hps (see derived_hps)."""
        del hps
        return self

    def derived_hps(self, hps, datasets):
        """Keys this model adds to hps from the data (hparams.add_derived_hps)."""
        del hps, datasets
        return {}

    def constants(self, dataset, n_neurons):
        """The constants of `dataset` (n_neurons each, float32 [N]), in constant_names'
        order; they follow the read-out's parameters in `params`."""
        del dataset, n_neurons
        return ()

    def null_params(self, x_etn):
        """Each neuron's constant parameters [P*N] fitted to x [E, T, N] by maximum
        likelihood (NaN entries left out): the null model of bits per entry."""
        raise NotImplementedError

    def sample(self, rng, params_xp):
        """Draws data from the reported parameters with a numpy RandomState/Generator."""
        raise NotImplementedError

    def split_reported(self, params_xp):
        """output_dist_params [..., P*D] -> {reported name: [..., D]} (numpy)."""
        parts = np.split(np.asarray(params_xp), self.num_params, axis=-1)
        return dict(zip(self.reported_names, parts))

    def take_neurons(self, params_xp, neurons):
        """(model, params) of some of the N neurons (`neurons` indexes them: a slice or
        an index array): each reported parameter's columns of output_dist_params
        [..., P*N], and the constants' entries (numpy)."""
        parts = self.split_reported(params_xp)
        n_all = parts[self.reported_names[0]].shape[-1]
        constants = {name: np.broadcast_to(getattr(self, name), (n_all,))[neurons]
                     for name in self.constant_names}
        params = np.concatenate([parts[name][..., neurons] for name in self.reported_names],
                                axis=-1)
        return type(self)(**constants), params

    def check_values(self, path, key, x):
        """Raises a one-line DataError for values this model cannot fit; returns notes.
        x: a data array [E, T, D] that has passed the shape and finiteness checks."""
        raise NotImplementedError


class Poisson(ObservationModel):
    """counts ~ Poisson(exp(log_rates)); params = (log_rates [B, T, D],);
    output_dist_params = rates [.., D]; the mean is the rates."""

    name = "poisson"
    reported_names = ("rates",)
    in_unnamed_files = True
    counts = True
    values = "integer counts"

    def readout(self, dataset, F, D, init_rng, mat_init, bias_init, single_dataset):
        """(F -> D log-rates,): the identity when there is one dataset and F == D."""
        from lfads_tf2.model.layers import Linear
        return (Linear(F, D, "LFADS/glm/fac_2_logrates_" + dataset, init_rng,
                       mat_init=mat_init, bias_init=bias_init,
                       identity=single_dataset and F == D),)

    def log_likelihood(self, x_bxtxd, params):
        import distributions as dist
        return dist.poisson_log_likelihood(x_bxtxd, params[0])

    def reported(self, params):
        """(output params [B, T, D] = rates, mean [B, T, D] = rates), rates clipped."""
        rates = _exp_clipped(params[0])
        return rates, rates

    def feedback(self, params, clip=True):
        """Rates fed back to the controller. The feedback before the first step is
        unclipped, as the original computes it outside its clipped read-out."""
        import tensorflow as tf
        return _exp_clipped(params[0]) if clip else tf.exp(params[0])

    def mean(self, params_xp):
        return np.asarray(params_xp)

    def log_likelihood_np(self, x, params_xp):
        """log Poisson(x | rates) per entry (numpy)."""
        from scipy import special
        rates = np.asarray(params_xp, np.float64)
        x = np.asarray(x, np.float64)
        return special.xlogy(x, rates) - rates - special.gammaln(x + 1.0)

    def null_params(self, x_etn):
        """Each neuron's mean count [N] (NLB's null model)."""
        return _per_neuron(np.nanmean, x_etn)

    def sample(self, rng, params_xp):
        return rng.poisson(np.asarray(params_xp, np.float64))

    def check_values(self, path, key, x):
        notes = []
        if x.dtype.kind == "f":
            frac = x != np.floor(x)
            if frac.any():
                raise data_error(path, key, "non-integer counts for --output_dist=poisson "
                                 "(dtype %s, %s)" % (x.dtype, bad_values(frac)))
            notes.append(note(path, key, "%s data with whole-number values are treated as "
                              "counts for --output_dist=poisson" % x.dtype))
        neg = x < 0
        if neg.any():
            raise data_error(path, key, "negative counts in %s" % bad_values(neg))
        if x.max() > _INT32_MAX:
            raise data_error(path, key, "counts exceed the int32 range (max %s)" % x.max())
        return notes


class Gaussian(ObservationModel):
    """x ~ N(means, exp(logvars)); params = (means, logvars), each [B, T, D];
    output_dist_params = [means, variances] [.., 2D]; the mean is the means."""

    name = "gaussian"
    reported_names = ("means", "variances")
    in_unnamed_files = True
    truth_convention = "gaussify_data"

    def readout(self, dataset, F, D, init_rng, mat_init, bias_init, single_dataset):
        """(F -> D means, F -> D log-variances); the latter start at W = 0, b = 1."""
        from lfads_tf2.model.layers import Linear
        means = Linear(F, D, "LFADS/glm/fac_2_means_" + dataset, init_rng,
                       mat_init=mat_init, bias_init=bias_init)
        logvars = Linear(F, D, "LFADS/glm/fac_2_logvars_" + dataset, init_rng,
                         mat_init=np.zeros((F, D), np.float32),
                         bias_init=np.ones((1, D), np.float32))
        return means, logvars

    def log_likelihood(self, x_bxtxd, params):
        import distributions as dist
        return dist.gaussian_log_likelihood(x_bxtxd, params[0], params[1])

    def reported(self, params):
        """(output params [B, T, 2D] = [means, variances], mean [B, T, D] = means)."""
        import tensorflow as tf
        means, logvars = params
        return tf.concat([means, _exp_clipped(logvars)], axis=-1), means

    def feedback(self, params, clip=True):
        return params[0]

    def mean(self, params_xp):
        return self.split_reported(params_xp)["means"]

    def log_likelihood_np(self, x, params_xp):
        """log N(x | means, variances) per entry (numpy)."""
        p = self.split_reported(np.asarray(params_xp, np.float64))
        var = p["variances"]
        return -0.5 * (np.log(2 * np.pi * var) + (np.asarray(x) - p["means"]) ** 2 / var)

    def null_params(self, x_etn):
        """[means, variances] [2N]: each neuron's mean and (biased, ML) variance."""
        return np.concatenate([_per_neuron(np.nanmean, x_etn),
                               np.maximum(_per_neuron(np.nanvar, x_etn), TINY)])

    def sample(self, rng, params_xp):
        p = self.split_reported(np.asarray(params_xp, np.float64))
        return p["means"] + np.sqrt(p["variances"]) * rng.standard_normal(p["means"].shape)

    def check_values(self, path, key, x):
        if x.dtype.kind in "iu":
            return [note(path, key, "integer data are treated as real values for "
                         "--output_dist=gaussian")]
        return []


class Gamma(ObservationModel):
    """x ~ Gamma(shape k, scale theta) for strictly positive data; params = (log k,
    log theta), each [B, T, D] (clipped to +-LOG_GAMMA_CLIP);
    output_dist_params = [shape, scale] [.., 2D]; the mean is k * theta."""

    name = "gamma"
    reported_names = ("shape", "scale")
    values = "positive real values"

    def readout(self, dataset, F, D, init_rng, mat_init, bias_init, single_dataset):
        """(F -> D log-shapes, F -> D log-scales). An alignment initialises the scales'
        map (the mean's scale); the shapes' starts at W = 0, b = 0 (k = 1)."""
        from lfads_tf2.model.layers import Linear
        return (Linear(F, D, "LFADS/glm/fac_2_logshape_" + dataset, init_rng,
                       mat_init=np.zeros((F, D), np.float32),
                       bias_init=np.zeros((1, D), np.float32)),
                Linear(F, D, "LFADS/glm/fac_2_logscale_" + dataset, init_rng,
                       mat_init=mat_init, bias_init=bias_init))

    def log_likelihood(self, x_bxtxd, params):
        import tensorflow as tf
        log_k, log_theta = params[:2]
        x = tf.cast(x_bxtxd, log_k.dtype)
        # Values that are not > 0 (never in checked data; NaN of missing entries) are
        # evaluated at 1 and score 0: log(0) there would make the gradient NaN even
        # where a cost mask drops the entry.
        positive = x > 0
        ll = _gamma_log_density_tf(tf.where(positive, x, 1.0), log_k, log_theta)
        return tf.where(positive, ll, 0.0)

    def reported(self, params):
        """(output params [B, T, 2D] = [k, theta], mean [B, T, D] = k theta)."""
        import tensorflow as tf
        k, theta = _exp_gamma_clipped(params[0]), _exp_gamma_clipped(params[1])
        return tf.concat([k, theta], axis=-1), k * theta

    def feedback(self, params, clip=True):
        return self.reported(params)[1]

    def mean(self, params_xp):
        p = self.split_reported(np.asarray(params_xp, np.float64))
        return p["shape"] * p["scale"]

    def log_likelihood_np(self, x, params_xp):
        """log Gamma(x; k, theta) per entry (numpy; NaN where x is NaN)."""
        p = self.split_reported(np.asarray(params_xp, np.float64))
        return _gamma_log_density_np(x, p["shape"], p["scale"])

    def null_params(self, x_etn):
        """[shape, scale] [2N]: each neuron's maximum-likelihood gamma."""
        x = np.asarray(x_etn, np.float64).reshape(-1, np.shape(x_etn)[-1])
        k, theta = fit_gamma(x, x > 0)
        return np.concatenate([k, theta])

    def sample(self, rng, params_xp):
        p = self.split_reported(np.asarray(params_xp, np.float64))
        return rng.gamma(shape=p["shape"], scale=p["scale"])

    def check_values(self, path, key, x):
        neg = x < 0
        if neg.any():
            raise data_error(path, key, "negative values for --output_dist=gamma in %s"
                             % bad_values(neg))
        zero = x == 0
        if zero.any():
            raise data_error(path, key, "zeros for --output_dist=gamma, which needs values "
                             "> 0 (data with exact zeros: --output_dist=zig), in %s"
                             % bad_values(zero))
        return []


class ZeroInflatedGamma(ObservationModel):
    """Zero-inflated gamma (ZIG) for deconvolved calcium traces (RADICaL: Zhu et al.,
    Nature Neuroscience 2022): an entry is 0 with probability 1 - q, otherwise
    s_min + g with g ~ Gamma(shape k, scale theta):

        log p(x) = log(1 - q)                                            x = 0
        log p(x) = log q + log Gamma(max(x - s_min, TINY); k, theta)     x > 0
        mean     = q (s_min + k theta)

    params = (q logits a, log k, log theta) [B, T, N] and s_min [N] (a constant:
    `constants`); q = Q_EPS + (1 - 2 Q_EPS) sigmoid(a), k and theta are exp of values
    clipped to +-LOG_GAMMA_CLIP. output_dist_params = [q, shape, scale] [.., 3N].

    s_min is per neuron: --zig_s_min for all, else the neuron's smallest non-zero value
    in the training data (RADICaL's choice; `derived_hps`), kept in hps as
    dataset_zig_s_min. Non-zero values at or below s_min (possible with --zig_s_min)
    score as x - s_min = TINY. For numpy use, s_min is the one dataset's [N] values
    (or a scalar); for the model it may be a dict dataset -> [N].
    """

    name = "zig"
    reported_names = ("q", "shape", "scale")
    constant_names = ("s_min",)
    own_flags = ("zig_s_min",)
    values = "non-negative real values"

    def __init__(self, s_min=None):
        self.s_min = s_min

    def with_hps(self, hps):
        return ZeroInflatedGamma(s_min=hps.get("dataset_zig_s_min"))

    def derived_hps(self, hps, datasets):
        """{"dataset_zig_s_min": {dataset: [N floats]}}: --zig_s_min for each of the
        read-out's N neurons, else `smallest_nonzero` of train_recon_data (all N
        neurons) or train_data. Recomputed from the same data at evaluation, so the
        evaluation kinds use the values training did."""
        out = {}
        for name in sorted(datasets):
            d = datasets[name]
            if hps.get("zig_s_min") is not None:
                out[name] = [float(hps.zig_s_min)] * int(hps.dataset_recon_dims[name])
            elif d.get("train_data") is not None:
                x = d.get("train_recon_data")
                x = d["train_data"] if x is None else x
                out[name] = [float(v) for v in smallest_nonzero(x)]
        return {"dataset_zig_s_min": out} if out else {}

    def _s_min_of(self, dataset=None):
        s = self.s_min.get(dataset) if isinstance(self.s_min, dict) else self.s_min
        if s is None:
            raise ValueError("--output_dist=zig: no s_min%s (hparams.add_derived_hps sets "
                             "it from the training data)"
                             % ("" if dataset is None else " for dataset %s" % dataset))
        return s

    def constants(self, dataset, n_neurons):
        s = np.asarray(self._s_min_of(dataset), np.float32)
        return (np.broadcast_to(s, (n_neurons,)).copy(),)

    def readout(self, dataset, F, D, init_rng, mat_init, bias_init, single_dataset):
        """(F -> D q logits, F -> D log-shapes, F -> D log-scales). An alignment
        initialises the q logits' map (q carries most of a sparse trace's changes); the
        others start at W = 0, b = 0 (k = theta = 1, an exponential of mean 1)."""
        from lfads_tf2.model.layers import Linear
        zero_w, zero_b = np.zeros((F, D), np.float32), np.zeros((1, D), np.float32)
        return (Linear(F, D, "LFADS/glm/fac_2_logitq_" + dataset, init_rng,
                       mat_init=mat_init, bias_init=bias_init),
                Linear(F, D, "LFADS/glm/fac_2_logshape_" + dataset, init_rng,
                       mat_init=zero_w, bias_init=zero_b),
                Linear(F, D, "LFADS/glm/fac_2_logscale_" + dataset, init_rng,
                       mat_init=zero_w, bias_init=zero_b))

    @staticmethod
    def _q(logit_q):
        """(q, 1 - q), each computed directly (not 1 - q) so that neither loses digits."""
        import tensorflow as tf
        return (Q_EPS + (1.0 - 2.0 * Q_EPS) * tf.sigmoid(logit_q),
                Q_EPS + (1.0 - 2.0 * Q_EPS) * tf.sigmoid(-logit_q))

    def log_likelihood(self, x_bxtxd, params):
        import tensorflow as tf
        logit_q, log_k, log_theta, s_min_d = params
        x = tf.cast(x_bxtxd, logit_q.dtype)
        event = x > 0
        q, one_minus_q = self._q(logit_q)
        # tf.where passes gradients through both branches: where x is not an event
        # (zeros, and NaN of missing entries) the gamma branch sees x - s_min = 1, so
        # that its unused value and gradient stay finite.
        excess = tf.maximum(tf.where(event, x - s_min_d, 1.0), TINY)
        ll_event = tf.math.log(q) + _gamma_log_density_tf(excess, log_k, log_theta)
        return tf.where(event, ll_event, tf.math.log(one_minus_q))

    def reported(self, params):
        """(output params [B, T, 3D] = [q, k, theta], mean [B, T, D] = q (s_min + k theta))."""
        import tensorflow as tf
        logit_q, log_k, log_theta, s_min_d = params
        q = self._q(logit_q)[0]
        k, theta = _exp_gamma_clipped(log_k), _exp_gamma_clipped(log_theta)
        return tf.concat([q, k, theta], axis=-1), q * (s_min_d + k * theta)

    def feedback(self, params, clip=True):
        return self.reported(params)[1]

    def mean(self, params_xp):
        p = self.split_reported(np.asarray(params_xp, np.float64))
        return p["q"] * (self._s_min_of() + p["shape"] * p["scale"])

    def log_likelihood_np(self, x, params_xp):
        """log p(x) per entry as the class docstring (numpy; NaN where x is NaN)."""
        p = self.split_reported(np.asarray(params_xp, np.float64))
        x = np.asarray(x, np.float64)
        excess = np.maximum(np.where(x > 0, x - self._s_min_of(), 1.0), TINY)
        ll_event = np.log(p["q"]) + _gamma_log_density_np(excess, p["shape"], p["scale"])
        ll = np.where(x > 0, ll_event, np.log1p(-p["q"]))
        return np.where(np.isnan(x), np.nan, ll)

    def null_params(self, x_etn):
        """[q, shape, scale] [3N]: each neuron's fraction of non-zero entries (kept in
        [Q_EPS, 1 - Q_EPS], as the model's q) and the maximum-likelihood gamma of its
        non-zero entries' excess over s_min."""
        x = np.asarray(x_etn, np.float64).reshape(-1, np.shape(x_etn)[-1])
        observed, event = ~np.isnan(x), x > 0
        q = event.sum(axis=0) / np.maximum(observed.sum(axis=0), 1)
        excess = np.maximum(np.where(event, x - self._s_min_of(), 1.0), TINY)
        k, theta = fit_gamma(excess, event)
        return np.concatenate([np.clip(q, Q_EPS, 1.0 - Q_EPS), k, theta])

    def sample(self, rng, params_xp):
        """x = b (s_min + g), b ~ Bernoulli(q), g ~ Gamma(k, theta): the Bernoulli draws
        (uniforms) first, then one gamma draw per entry."""
        p = self.split_reported(np.asarray(params_xp, np.float64))
        event = rng.uniform(size=p["q"].shape) < p["q"]
        g = rng.gamma(shape=p["shape"], scale=p["scale"])
        return np.where(event, self._s_min_of() + g, 0.0)

    def check_values(self, path, key, x):
        neg = x < 0
        if neg.any():
            raise data_error(path, key, "negative values for --output_dist=zig (it models "
                             "traces that are 0 or positive) in %s" % bad_values(neg))
        return []


# The registry: --output_dist name -> model class.
MODELS = {model.name: model for model in (Poisson, Gaussian, ZeroInflatedGamma, Gamma)}
NAMES = tuple(MODELS)


def names_for_width(width, n_chan, unnamed_file=False):
    """The models whose output_dist_params are `width` wide for n_chan channels; of a
    file without the attribute output_dist (unnamed_file), those it can come from."""
    return [name for name, model in MODELS.items()
            if len(model.reported_names) * n_chan == width
            and (model.in_unnamed_files or not unnamed_file)]


def describe_widths(n_chan):
    """'30 (poisson) or 60 (gaussian)': the widths of output_dist_params, model by model."""
    return " or ".join("%d (%s)" % (len(model.reported_names) * n_chan, name)
                       for name, model in MODELS.items())


def for_dist(output_dist, **constants):
    """The observation model of --output_dist (one of NAMES); else a UsageError.
    constants: its constant_names' values for numpy use (ZIG: s_min=[N])."""
    if output_dist not in MODELS:
        raise UsageError("--output_dist=%s: unknown output distribution (expected one of %s)"
                         % (output_dist, ", ".join(NAMES)))
    return MODELS[output_dist](**constants)


def for_hps(hps):
    """The observation model of a run's model: --output_dist with its constants from
    hps (those add_derived_hps put there)."""
    return for_dist(hps.output_dist).with_hps(hps)


def foreign_flag(hps):
    """(flag, its model's name) of the first model-specific flag (own_flags) that is set
    while --output_dist is another model; None if there is none."""
    for name, model in MODELS.items():
        for flag in model.own_flags:
            if name != hps.output_dist and hps.get(flag) is not None:
                return flag, name
    return None
