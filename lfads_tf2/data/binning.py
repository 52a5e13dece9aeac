"""Spike times to counts, trial windows, chopping and merging (pure numpy).

Times are in seconds, bins are half-open: bin k of a window starting at s holds the
spikes with s + k*bin_s <= t < s + (k + 1)*bin_s.

Chopping cuts a continuous record [T_rec, ...] into segments of `chop_bins` that
start every `chop_bins - overlap_bins` bins; merging puts segments back, blending
each overlap linearly (the earlier segment's weight falls from 1 to 0 across it while
the later one's rises), so a record chopped and merged again is returned unchanged.
"""
import numpy as np

# Times are floats; a spike exactly on a bin edge must not fall into the bin before it
# because (t - s) / bin_s came out as 49.999999999.
_EDGE_DECIMALS = 9


def bin_index(times_s, start_s, bin_s):
    """floor((t - start) / bin) for every t, robust to rounding at bin edges."""
    return np.floor(np.round((np.asarray(times_s, np.float64) - start_s) / bin_s,
                             _EDGE_DECIMALS)).astype(np.int64)


def bin_spikes(spike_times_s, start_s, n_bins, bin_s):
    """Counts [n_bins, N] of N units' spike times (a list of 1-d arrays) in the window
    [start_s, start_s + n_bins * bin_s)."""
    counts_txn = np.zeros((n_bins, len(spike_times_s)), np.int32)
    for n, times in enumerate(spike_times_s):
        k = bin_index(times, start_s, bin_s)
        k = k[(k >= 0) & (k < n_bins)]
        counts_txn[:, n] = np.bincount(k, minlength=n_bins)
    return counts_txn


def window_spikes(spike_times_s, starts_s, n_bins, bin_s):
    """Counts [E, n_bins, N]: one window of n_bins bins from each start time."""
    # Sorting once lets every window take its spikes with a binary search.
    sorted_times = [np.sort(np.asarray(t, np.float64)) for t in spike_times_s]
    counts_extxn = np.zeros((len(starts_s), n_bins, len(sorted_times)), np.int32)
    length_s = n_bins * bin_s
    for n, times in enumerate(sorted_times):
        lo = np.searchsorted(times, np.asarray(starts_s) - bin_s, side="left")
        hi = np.searchsorted(times, np.asarray(starts_s) + length_s + bin_s, side="right")
        for e, start in enumerate(starts_s):
            k = bin_index(times[lo[e]:hi[e]], start, bin_s)
            k = k[(k >= 0) & (k < n_bins)]
            counts_extxn[e, :, n] = np.bincount(k, minlength=n_bins)
    return counts_extxn


def window_counts(counts_txn, start_bins, n_bins):
    """Windows [E, n_bins, N] of a binned record, starting at the given bins."""
    return np.stack([counts_txn[s:s + n_bins] for s in start_bins])


def chop_starts(total_bins, chop_bins, overlap_bins, tail_bins=0):
    """Start bins of the segments that cover [0, total_bins).

    Segments start every chop_bins - overlap_bins bins; when that leaves the end of
    the record uncovered, one more segment ends exactly there (its overlap with the
    one before is then larger). `tail_bins` more bins must exist after each segment
    (forward prediction), so the segments cover [0, total_bins - tail_bins).
    """
    if not 0 <= overlap_bins < chop_bins:
        raise ValueError("overlap_bins must be in [0, chop_bins)")
    usable = total_bins - tail_bins
    if usable < chop_bins:
        raise ValueError("a record of %d bins is shorter than one segment (%d bins%s)"
                         % (total_bins, chop_bins,
                            " + %d forward-prediction bins" % tail_bins if tail_bins else ""))
    stride = chop_bins - overlap_bins
    starts = list(range(0, usable - chop_bins + 1, stride))
    if starts[-1] + chop_bins < usable:
        starts.append(usable - chop_bins)
    return np.asarray(starts, np.int64)


def chop(record_txn, starts, chop_bins):
    """Segments [S, chop_bins, ...] of a record [T_rec, ...]."""
    return np.stack([record_txn[s:s + chop_bins] for s in starts])


def blend_weights(starts, chop_bins, total_bins, overlap_bins):
    """Weights [S, chop_bins] of each segment's bins in the merged record.

    Inside a segment the weight is 1; over its first and last overlap_bins it ramps
    linearly, (i + 1/2) / overlap up and 1 - that down, so that two segments
    overlapping by overlap_bins have weights summing to 1. Ramps are left out at the
    two ends of the record, where no other segment shares the bins.
    """
    w_sxt = np.ones((len(starts), chop_bins))
    if overlap_bins > 0:
        up = (np.arange(overlap_bins) + 0.5) / overlap_bins
        for i, s in enumerate(starts):
            if s > 0:
                w_sxt[i, :overlap_bins] = up
            if s + chop_bins < total_bins:
                w_sxt[i, -overlap_bins:] = np.minimum(w_sxt[i, -overlap_bins:], up[::-1])
    return w_sxt


def merge(segments_sxtx, starts, total_bins, overlap_bins):
    """The record [total_bins, ...] from segments [S, chop_bins, ...] at `starts`.

    Each bin is the weighted mean (blend_weights) of the segments covering it, so
    segments that agree where they overlap give back exactly what they hold. Bins no
    segment covers (e.g. only one split's segments were given) are NaN.
    """
    segments_sxtx = np.asarray(segments_sxtx, np.float64)
    chop_bins = segments_sxtx.shape[1]
    w_sxt = blend_weights(starts, chop_bins, total_bins, overlap_bins)
    trailing = (1,) * (segments_sxtx.ndim - 2)
    total = np.zeros((total_bins,) + segments_sxtx.shape[2:])
    weight = np.zeros((total_bins,) + trailing)
    for seg, s, w in zip(segments_sxtx, starts, w_sxt):
        w = w.reshape((chop_bins,) + trailing)
        total[s:s + chop_bins] += w * seg
        weight[s:s + chop_bins] += w
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(weight > 0, total / np.where(weight > 0, weight, 1), np.nan)


def split_indices(n, valid_fraction, seed):
    """(train_inds, valid_inds), sorted, from a permutation drawn with `seed`.

    The same n, fraction and seed always give the same split. Both parts get at
    least one element (LFADS needs a validation split).
    """
    if n < 2:
        raise ValueError("need at least 2 trials or segments to split, got %d" % n)
    if not 0 < valid_fraction < 1:
        raise ValueError("valid_fraction must be in (0, 1), got %g" % valid_fraction)
    n_valid = int(np.clip(round(n * valid_fraction), 1, n - 1))
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_valid:]), np.sort(order[:n_valid])
