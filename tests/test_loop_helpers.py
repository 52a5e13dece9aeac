"""The training loop's helpers (lfads_tf2/train/loop.py) as the original's
train_model uses them: the learning-rate plateau rule, spike jitter, the epoch's
batches and the fitlog line."""
import numpy as np

from lfads_tf2.model import regularisers
from lfads_tf2.train import loop


# ------------------------------------------------------------------ learning-rate plateau rule
def test_plateau_rule_first_decay_needs_more_than_n_costs():
    n = 3
    # three (== n) recorded costs: never a decay, however large the current one
    decay, hist = loop.plateau_rule([1.0, 1.0, 1.0], 100.0, n)
    assert not decay and hist == [1.0, 1.0, 1.0, 100.0]
    # four costs; current greater than the max of the LAST n -> decay, +inf appended
    decay, hist = loop.plateau_rule([100.0, 1.0, 2.0, 3.0], 3.5, n)
    assert decay and hist[:4] == [100.0, 1.0, 2.0, 3.0] and hist[4] == np.inf
    # equal to the max is not greater
    decay, hist = loop.plateau_rule([100.0, 1.0, 2.0, 3.0], 3.0, n)
    assert not decay and hist[-1] == 3.0


def test_plateau_rule_decays_are_n_plus_1_epochs_apart():
    n = 3
    hist, decays = [], []
    for epoch in range(16):
        decay, hist = loop.plateau_rule(hist, float(epoch + 1), n)  # rising cost
        if decay:
            decays.append(epoch)
    assert decays == [4, 8, 12]
    # falling costs never decay
    hist = []
    for epoch in range(20):
        decay, hist = loop.plateau_rule(hist, 100.0 - epoch, n)
        assert not decay


# ------------------------------------------------------------------ spike jitter
def test_jitter_spikes_preserves_totals_and_moves_spikes():
    rs = np.random.RandomState(0)
    counts = rs.poisson(0.8, size=(6, 20, 7))
    out = regularisers.jitter_spikes(counts, 3, np.random.RandomState(1))
    assert out.shape == counts.shape
    np.testing.assert_array_equal(out.sum(axis=1), counts.sum(axis=1))
    assert np.all(out >= 0) and np.all(out == np.round(out))
    assert not np.array_equal(out, counts)
    # a width larger than the trial still preserves totals
    out = regularisers.jitter_spikes(counts[:, :4], 9, np.random.RandomState(2))
    np.testing.assert_array_equal(out.sum(axis=1), counts[:, :4].sum(axis=1))


def test_jitter_spikes_shifts_stay_within_width():
    w, T, n = 2, 12, 3000
    rs = np.random.RandomState(3)
    t0 = rs.randint(0, T, size=n)
    counts = np.zeros((n, T, 1), np.int32)
    counts[np.arange(n), t0, 0] = 1
    out = regularisers.jitter_spikes(counts, w, np.random.RandomState(4))
    t1 = out[:, :, 0].argmax(axis=1)
    assert np.all(out.sum(axis=(1, 2)) == 1)
    shift = t1 - t0
    assert np.all(np.abs(shift) <= w)
    interior = (t0 >= w) & (t0 <= T - 1 - w)
    seen = set(shift[interior].tolist())
    assert set(range(-w, w)) <= seen <= set(range(-w, w + 1))
    # edges reflect: a spike at t=0 lands in [0, w]
    assert np.all(t1[t0 == 0] <= w) and np.all(t1[t0 == T - 1] >= T - 1 - w)


# ------------------------------------------------------------------ batching
def _split(sizes):
    return {name: {"data": np.zeros((n, 2, 1), np.float32)} for name, n in sizes.items()}


def test_epoch_batches_cover_every_trial_with_distinct_padding():
    B = 5
    sizes = {"a": 23, "b": 16, "c": 15}
    batches = loop.epoch_batches(_split(sizes), B, np.random.RandomState(0))
    assert len(batches) == sum(-(-n // B) for n in sizes.values())  # 5 + 4 + 3
    for name, n in sizes.items():
        rows = [idx for nm, idx in batches if nm == name]
        assert all(len(r) == B for r in rows)
        idx = np.concatenate(rows)
        assert idx.dtype.kind == "i" and idx.min() >= 0 and idx.max() < n
        counts = np.bincount(idx, minlength=n)
        assert counts.min() >= 1                        # every trial at least once
        assert counts.max() <= 2                        # repeats are distinct trials
        assert (counts == 2).sum() == (-n) % B          # exactly B - (n mod B) extras
        assert len(idx) % B == 0


def test_epoch_batches_are_single_dataset_and_deterministic():
    split = _split({"a": 23, "b": 16})
    a = loop.epoch_batches(split, 4, np.random.RandomState(9))
    b = loop.epoch_batches(split, 4, np.random.RandomState(9))
    assert [(n, list(i)) for n, i in a] == [(n, list(i)) for n, i in b]
    c = loop.epoch_batches(split, 4, np.random.RandomState(10))
    assert [(n, list(i)) for n, i in a] != [(n, list(i)) for n, i in c]
    for name, idx in a:
        assert name in ("a", "b")
        assert idx.max() < (23 if name == "a" else 16)
    # batches of the datasets are interleaved in some epoch (not all a's then all b's)
    interleaved = False
    for seed in range(10):
        names = [n for n, _ in loop.epoch_batches(split, 4, np.random.RandomState(seed))]
        changes = sum(x != y for x, y in zip(names, names[1:]))
        interleaved |= changes > 1
    assert interleaved


# ------------------------------------------------------------------ fitlog line
def _tokens(line):
    return [t.strip() for t in line.strip().split(",")]


def test_csv_line_tokens_with_validation():
    tr = {"total": 123.456, "recon": 100.0, "kl": 20.123}
    va = {"total": 130.0, "recon": 110.555, "kl": 19.994}
    line = loop.csv_line(7, 420, tr, va, 0.1234567, 0.25, 0.5)
    assert line.endswith("\n") and line.count("\n") == 1
    assert _tokens(line) == [
        "epoch", "7", "step", "420", "total", "123.46", "130.00", "recon", "100.00",
        "110.56", "kl", "20.12", "19.99", "l2", "0.12346", "klweight", "0.25",
        "l2weight", "0.50"]


def test_csv_line_tokens_without_validation():
    tr = {"total": 1.0, "recon": 2.0, "kl": 3.0}
    line = loop.csv_line(0, 9, tr, None, 4.0, 1.0, 0.0)
    assert _tokens(line) == ["epoch", "0", "step", "9", "total", "1.00", "recon", "2.00",
                             "kl", "3.00", "l2", "4.00000", "klweight", "1.00",
                             "l2weight", "0.00"]
