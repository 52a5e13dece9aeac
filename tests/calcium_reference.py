"""NumPy/SciPy references of the calcium-imaging observation models, for tests that compare
TensorFlow implementations against them (no tests here).

The zero-inflated gamma (ZIG) model of deconvolved calcium traces (RADICaL: Zhu et al.,
Nature Neuroscience 2022): an entry x is 0 with probability 1 - q, and otherwise
x = s_min + g with g ~ Gamma(shape k, scale theta), so non-zero values are at least s_min
(the smallest event the deconvolution reports). All functions broadcast their arguments
elementwise (any shape, e.g. [E, T, N]) and work in float64.
"""
import numpy as np
import scipy.stats

# The floor of x - s_min for non-zero x at or below s_min (see zig_log_likelihood).
TINY = 1e-8


def gamma_log_likelihood(x, k, theta):
    """log p(x) of Gamma(shape k, scale theta), per entry:
    log p(x) = (k - 1) log x - x / theta - k log theta - log Gamma(k)."""
    return scipy.stats.gamma.logpdf(np.asarray(x, np.float64), a=k, scale=theta)


def gamma_mean(k, theta):
    """E[x] = k * theta of Gamma(shape k, scale theta)."""
    return np.asarray(k, np.float64) * np.asarray(theta, np.float64)


def zig_log_likelihood(x, q, k, theta, s_min):
    """log p(x) of the ZIG model, per entry:

        log p(x) = log(1 - q)                                         if x == 0,
        log p(x) = log q + log Gamma_pdf(x - s_min; shape k, scale theta)  otherwise.

    A non-zero x at or below s_min has no finite density under the model (for k != 1);
    the caller should guarantee x > s_min for non-zero x. RADICaL's code evaluates the
    gamma density at x - s_min unclamped and sets s_min just below the smallest non-zero
    value of the data; here x - s_min is clamped at TINY instead, so such entries get a
    large but finite value rather than NaN or -inf (a choice of this reference, for
    comparisons that should stay finite). NaN entries (missing) give NaN.
    """
    x = np.asarray(x, np.float64)
    q = np.asarray(q, np.float64)
    excess = np.maximum(x - s_min, TINY)
    nonzero = np.log(q) + scipy.stats.gamma.logpdf(excess, a=k, scale=theta)
    # where() evaluates both branches; the unused log(0)-type values are discarded.
    with np.errstate(divide="ignore"):
        zero = np.log1p(-q)
    return np.where(np.isnan(x), np.nan, np.where(x == 0, zero, nonzero))


def zig_mean(q, k, theta, s_min):
    """E[x] = q * (s_min + k * theta) of the ZIG model."""
    q = np.asarray(q, np.float64)
    return q * (s_min + np.asarray(k, np.float64) * np.asarray(theta, np.float64))


def zig_sample(rng, q, k, theta, s_min, size=None):
    """Draws from the ZIG model with a numpy RandomState or Generator `rng`:
    x = b * (s_min + g), b ~ Bernoulli(q), g ~ Gamma(shape k, scale theta).

    size defaults to the broadcast shape of q, k and theta. The Bernoulli draws come
    first, then the gamma draws (one per entry, also where b = 0).
    """
    if size is None:
        size = np.broadcast(np.asarray(q), np.asarray(k), np.asarray(theta)).shape
    b = rng.uniform(size=size) < q
    g = rng.gamma(shape=np.broadcast_to(k, size), scale=np.broadcast_to(theta, size))
    return np.where(b, s_min + g, 0.0)
