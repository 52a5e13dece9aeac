"""lfads_tf2.score.metrics against the Neural Latents Benchmark's own evaluation code
(nlb_tools.evaluation: bits_per_spike, eval_psth and the whole `evaluate`), and the
`lfads_score` command end to end on small files written here.

nlb_tools is a test-only dependency installed with `pip install --no-deps
nlb-tools==0.0.4` (its evaluation module needs only numpy, h5py, scipy and
scikit-learn). Without it the comparisons are skipped locally and fail under CI.
"""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from conftest import ROOT
from lfads_tf2 import errors
from lfads_tf2.score import metrics, rate_r2, lfads_score
from lfads_tf2.score.output_files import InputError
import utils


@pytest.fixture(scope="module")
def nlb():
    try:
        from nlb_tools import evaluation
    except ImportError as e:
        message = ("nlb_tools is not importable (%s): install it with `pip install "
                   "--no-deps nlb-tools==0.0.4` (and scikit-learn)" % e)
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return evaluation


def _rates_and_spikes(seed, shape, zero_neuron=False, zero_rates=False, nan_bins=False):
    rs = np.random.RandomState(seed)
    true = rs.gamma(2.0, 0.3, size=shape)
    spikes = rs.poisson(true).astype(np.float64)
    rates = true * np.exp(0.3 * rs.randn(*shape))  # a fair but imperfect model
    if zero_neuron:
        spikes[..., 0] = 0.0  # a neuron that never fires: null rate 0
    if zero_rates:
        rates[rs.rand(*shape) < 0.05] = 0.0  # predicted zeros (NLB: 1e-9)
    if nan_bins:
        spikes[rs.rand(*shape) < 0.1] = np.nan  # bins outside a trial (NLB leaves them out)
    return rates, spikes


SHAPES = [(6, 9, 4), (25, 30, 11), (1, 50, 3), (40, 1, 2), (3, 4, 1)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("case", ["plain", "zero_neuron", "zero_rates", "nan_bins"])
def test_bits_per_spike_equals_nlb(nlb, shape, case):
    rates, spikes = _rates_and_spikes(sum(shape), shape, **({case: True}
                                                           if case != "plain" else {}))
    if np.nansum(spikes) == 0:
        spikes.flat[0] = 1.0
    # NLB replaces zero rates in place: give it copies
    expected = nlb.bits_per_spike(rates.copy(), spikes.copy())
    got = metrics.bits_per_spike(rates, spikes)
    assert np.isfinite(got)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_bits_per_spike_of_the_null_model_is_zero_and_of_the_truth_positive():
    rs = np.random.RandomState(0)
    true = rs.gamma(2.0, 0.5, size=(200, 20, 5)) * np.linspace(0.2, 2.0, 20)[:, None]
    spikes = rs.poisson(true)
    null = np.broadcast_to(spikes.mean(axis=(0, 1)), spikes.shape)
    assert abs(metrics.bits_per_spike(null, spikes)) < 1e-12
    assert metrics.bits_per_spike(true, spikes) > 0.1


def test_bits_per_spike_rejects_what_it_cannot_score():
    spikes = np.ones((2, 3, 4))
    with pytest.raises(ValueError, match="negative"):
        metrics.bits_per_spike(-spikes, spikes)
    with pytest.raises(ValueError, match="no spikes"):
        metrics.bits_per_spike(spikes, np.zeros_like(spikes))
    with pytest.raises(ValueError, match="same shape"):
        metrics.bits_per_spike(spikes[:, :2], spikes)


def _psth_case(seed, C=5, E=30, T=12, N=6, nan_tail=True, constant_neuron=True):
    rs = np.random.RandomState(seed)
    labels = rs.randint(0, C, size=E)
    labels[0] = C - 2  # ... while condition C-1 may have no trials at all
    labels[labels == C - 1] = 0
    psth = rs.gamma(2.0, 0.4, size=(C, T, N))
    if constant_neuron:
        psth[:, :, -1] = 0.7
    if nan_tail:
        psth[1, -3:, :] = np.nan  # a shorter condition (NLB pads PSTHs with NaN)
    rates = psth[labels] + 0.3 * rs.randn(E, T, N)
    return rates, labels, psth


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("edge", [False, True])
def test_psth_r2_equals_nlb_eval_psth(nlb, seed, edge):
    rates, labels, psth = _psth_case(seed, nan_tail=edge, constant_neuron=edge)
    conditions = np.arange(psth.shape[0])
    cond_idx = [np.nonzero(labels == c)[0] for c in conditions]
    expected = nlb.eval_psth(psth, rates, cond_idx)
    got = metrics.psth_r2(rates, labels, psth, conditions)
    np.testing.assert_allclose(got, expected, rtol=1e-10, atol=1e-12)


def test_psth_r2_of_a_perfect_prediction_is_one():
    rates, labels, psth = _psth_case(3, nan_tail=False, constant_neuron=False)
    exact = psth[labels]
    assert metrics.psth_r2(exact, labels, psth, np.arange(len(psth))) == pytest.approx(1.0)


def test_true_psths_average_smoothed_spikes_per_condition():
    rs = np.random.RandomState(4)
    spikes = rs.poisson(1.0, size=(9, 15, 2))
    labels = np.array(["a", "b", "a", "c", "b", "a", "c", "c", "b"])
    conditions, psth = metrics.true_psths(spikes, labels, sd_bins=0)
    assert list(conditions) == ["a", "b", "c"]
    np.testing.assert_allclose(psth[1], spikes[labels == "b"].mean(axis=0))
    _, smooth = metrics.true_psths(spikes, labels, sd_bins=2.0)
    assert smooth.shape == (3, 15, 2)
    # smoothing keeps each PSTH's total roughly and reduces its bin-to-bin variation
    assert np.all(np.abs(np.diff(smooth, axis=1)).sum() < np.abs(np.diff(psth, axis=1)).sum())


def _nlb_layout(seed, E=24, E_train=30, T=20, T_fp=5, N_in=7, N_out=4, C=4):
    """A model's rates and the spikes for them in our layout, plus NLB's dicts."""
    rs = np.random.RandomState(seed)
    N, T_all = N_in + N_out, T + T_fp
    cond_rates = rs.gamma(2.0, 0.4, size=(C, T_all, N))
    labels = np.arange(E) % C
    true = cond_rates[labels] * np.exp(0.2 * rs.randn(E, 1, N))
    recon = rs.poisson(true)
    recon[:, :, N_in] = 0  # a held-out neuron that never fires
    rates = true * np.exp(0.25 * rs.randn(*true.shape))
    psth = np.stack([cond_rates[c, :T] for c in range(C)])
    train_rates = rs.gamma(2.0, 0.4, size=(E_train, T, N))
    target = {"mc_maze": {
        "eval_spikes_heldout": recon[:, :T, N_in:].astype(float),
        "train_behavior": rs.randn(E_train, T, 2), "eval_behavior": rs.randn(E, T, 2),
        "psth": psth,
        "eval_cond_idx": np.array([np.nonzero(labels == c)[0] for c in range(C)],
                                  dtype=object),
        "eval_spikes_heldin_forward": recon[:, T:, :N_in].astype(float),
        "eval_spikes_heldout_forward": recon[:, T:, N_in:].astype(float)}}
    user = {"mc_maze": {
        "eval_rates_heldin": rates[:, :T, :N_in], "eval_rates_heldout": rates[:, :T, N_in:],
        "train_rates_heldin": train_rates[..., :N_in],
        "train_rates_heldout": train_rates[..., N_in:],
        "eval_rates_heldin_forward": rates[:, T:, :N_in],
        "eval_rates_heldout_forward": rates[:, T:, N_in:]}}
    return dict(rates=rates, recon=recon, labels=labels, psth=psth, T=T, N_in=N_in,
                target=target, user=user)


@pytest.mark.parametrize("seed", [0, 1])
def test_co_bps_fp_bps_and_psth_r2_equal_nlb_evaluate(nlb, seed):
    """NLB's whole evaluation on dicts laid out as NLB's files: the same numbers from
    our layout ([E, T + T_fp, N_in + N_out], held-in neurons and bins first)."""
    case = _nlb_layout(seed)
    [result] = nlb.evaluate(case["target"], case["user"])
    expected = result["mc_maze_split"]
    r, x, T, N_in = case["rates"], case["recon"], case["T"], case["N_in"]
    np.testing.assert_allclose(metrics.co_bps(r, x, N_in, T), expected["co-bps"], rtol=1e-10)
    np.testing.assert_allclose(metrics.fp_bps(r, x, T), expected["fp-bps"], rtol=1e-10)
    got_psth = metrics.psth_r2(r[:, :T], case["labels"], case["psth"],
                               np.arange(len(case["psth"])))
    np.testing.assert_allclose(got_psth, expected["psth R2"], rtol=1e-10)


# ------------------------------------------------------------------ the command
T_IN, T_FP, N_IN, N_OUT = 20, 5, 7, 4


def _write_data(folder, recon=True, labels=True, truth=True, seed=0):
    """A data file in the held-out layout: truth in [0, 1] with conversion_factor
    1/(max rate * dt) as the chaotic sets, counts Poisson of truth / cf."""
    rs = np.random.RandomState(seed)
    cf = 1.0 / (30.0 * 0.01)
    out = {"conversion_factor": cf, "dt": 0.01}
    for split, E in (("train", 40), ("valid", 24)):
        cond = np.arange(E) % 4
        # smooth in time, as firing rates are (the true PSTHs are smoothed spikes)
        phase = np.random.RandomState(99).uniform(0, 2 * np.pi, size=(4, 1, N_IN + N_OUT))
        t = np.arange(T_IN + T_FP)[None, :, None]
        base = 0.5 + 0.45 * np.sin(2 * np.pi * t / 25.0 + phase)
        truth_all = np.clip(base[cond] + 0.05 * rs.randn(E, 1, N_IN + N_OUT), 0, 1)
        counts = rs.poisson(truth_all / cf)
        out[split + "_data"] = counts[:, :T_IN, :N_IN]
        if recon:
            out[split + "_recon_data"] = counts
        if labels:
            out["condition_labels_" + split] = cond
        if truth:
            out[split + "_truth"] = truth_all if recon else truth_all[:, :T_IN, :N_IN]
    path = os.path.join(str(folder), "data_set0")
    utils.write_data(path, out)
    return path, out


def _write_output(folder, rates, split="valid"):
    path = os.path.join(str(folder), "model_runs_set0_%s_posterior_sample_and_average"
                        % split)
    utils.write_data(path, {"output_dist_params": rates, "factors": rates[..., :2]})
    return path


def _score_cmd(*args):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    return subprocess.run([sys.executable, "-m", "lfads_tf2.score.lfads_score"] + list(args),
                          env=env, capture_output=True, text=True, timeout=120)


def _one_error_line(proc):
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_command_scores_a_full_output_and_writes_json(tmp_path):
    data_path, data = _write_data(tmp_path)
    cf = data["conversion_factor"]
    rates = data["valid_truth"] / cf  # the true rates, in counts per bin
    out_path = _write_output(tmp_path, rates)
    proc = _score_cmd(out_path, data_path)
    assert proc.returncode == 0, proc.stderr
    with open(out_path + ".scores.json") as f:
        result = json.load(f)
    assert result["split"] == "valid" and result["trials"] == 24
    assert (result["heldin_neurons"], result["heldout_neurons"]) == (N_IN, N_OUT)
    assert (result["heldin_bins"], result["forward_bins"]) == (T_IN, T_FP)
    assert result["not_computed"] == {}
    got = result["metrics"]
    recon = data["valid_recon_data"]
    assert got["co_bps"] == pytest.approx(metrics.co_bps(rates, recon, N_IN, T_IN))
    assert got["fp_bps"] == pytest.approx(metrics.fp_bps(rates, recon, T_IN))
    assert got["co_bps"] > 0 and got["fp_bps"] > 0
    assert got["rate_r2"] == pytest.approx(1.0)
    assert got["psth_r2"] > 0.5
    conds, psth = metrics.true_psths(
        np.concatenate([data["train_recon_data"], recon])[:, :T_IN],
        np.concatenate([data["condition_labels_train"], data["condition_labels_valid"]]),
        3.0)
    assert got["psth_r2"] == pytest.approx(metrics.psth_r2(
        rates[:, :T_IN], data["condition_labels_valid"], psth, conds))
    for name in ("co_bps", "fp_bps", "psth_r2", "rate_r2"):
        assert "%s %.4f" % (name, got[name]) in proc.stdout
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".")]  # atomic write


def test_todays_output_gets_the_metrics_its_shape_allows(tmp_path):
    """The model writes T bins of the N_in held-in neurons today: PSTH and rate R² only."""
    data_path, data = _write_data(tmp_path)
    cf = data["conversion_factor"]
    rates = data["valid_truth"][:, :T_IN, :N_IN] / cf
    out_path = _write_output(tmp_path, rates)
    result = lfads_score.score_files(out_path, data_path)
    assert sorted(result["metrics"]) == ["psth_r2", "rate_r2"]
    assert result["metrics"]["rate_r2"] == pytest.approx(1.0)
    expected = rate_r2.r2_against_truth(rates, data["valid_truth"][:, :T_IN, :N_IN], cf)
    assert result["details"]["rate_r2_pooled"] == pytest.approx(expected["r2_pooled"])
    assert "has %d neurons" % N_IN in result["not_computed"]["co_bps"]
    line = _one_error_line(_score_cmd(out_path, data_path, "--metrics=co_bps"))
    assert out_path in line and "co_bps needs all %d" % (N_IN + N_OUT) in line


def test_fewer_trials_in_the_output_score_the_first_trials(tmp_path):
    data_path, data = _write_data(tmp_path)
    rates = data["valid_truth"][:10] / data["conversion_factor"]
    result = lfads_score.score_files(_write_output(tmp_path, rates), data_path)
    assert result["trials"] == 10
    assert result["metrics"]["co_bps"] == pytest.approx(
        metrics.co_bps(rates, data["valid_recon_data"][:10], N_IN, T_IN))


def test_missing_keys_are_named_in_one_line(tmp_path):
    data_path, data = _write_data(tmp_path, recon=False, labels=False, truth=False)
    out_path = _write_output(tmp_path, np.ones((24, T_IN, N_IN)))
    line = _one_error_line(_score_cmd(out_path, data_path))
    assert line.startswith("error: no metric can be computed")
    for key in ("valid_recon_data", "condition_labels_valid", "valid_truth"):
        assert "%s: missing key '%s'" % (data_path, key) in line
    line = _one_error_line(_score_cmd(out_path, data_path, "--metrics=psth_r2"))
    assert line == ("error: psth_r2 cannot be computed: %s: missing key "
                    "'condition_labels_valid'" % data_path)
    assert not os.path.exists(out_path + ".scores.json")


def _error_of(out_path, data_path, **kwargs):
    """The one-line message score_files raises."""
    with pytest.raises((InputError, errors.DataError)) as info:
        lfads_score.score_files(out_path, data_path, **kwargs)
    text = str(info.value)
    assert "\n" not in text
    return text


def test_bad_inputs_are_one_line_errors(tmp_path):
    data_path, data = _write_data(tmp_path)
    good = data["valid_truth"] / data["conversion_factor"]
    out_path = _write_output(tmp_path, good)
    # a width that fits no neuron count
    assert "output_dist_params has 5 channels" in _error_of(
        _write_output(tmp_path, good[..., :5]), data_path)
    # bins that are neither T nor T + T_fp
    assert "22 time bins" in _error_of(_write_output(tmp_path, good[:, :22]), data_path)
    # a --split that contradicts the file name
    out_path = _write_output(tmp_path, good)
    assert "file name says split 'valid'" in _error_of(out_path, data_path, split="train")
    assert _error_of(out_path, str(tmp_path / "nope")).endswith("nope: data file not found")
    # recon data whose held-in part is not the data
    data["valid_data"] = data["valid_data"].copy()
    data["valid_recon_data"][3, 2, 1] += 1
    utils.write_data(data_path, data)
    assert _error_of(out_path, data_path).startswith(
        "%s: valid_recon_data: its first %d bins and %d neurons differ from valid_data "
        "(first at index (3, 2, 1))" % (data_path, T_IN, N_IN))
    # the command: bad flags and arguments, one line and status 2 each
    line = _one_error_line(_score_cmd(out_path, data_path, "--metrics=co_bps,cobps"))
    assert "unknown metric cobps" in line
    assert "expected two arguments" in _one_error_line(_score_cmd(out_path))
    assert _one_error_line(_score_cmd(out_path, data_path, "--split=tset")) == (
        "error: --split=tset: expected train, valid or test")


def test_gaussian_outputs_get_r2_and_bits_per_entry_but_no_bits_per_spike(tmp_path):
    data_path, data = _write_data(tmp_path)
    means = data["valid_truth"] / data["conversion_factor"]
    params = np.concatenate([means, np.ones_like(means)], axis=-1)
    out_path = _write_output(tmp_path, params)
    result = lfads_score.score_files(out_path, data_path, dist="gaussian")
    assert sorted(result["metrics"]) == ["co_bpe", "fp_bpe", "psth_r2", "rate_r2"]
    assert "poisson" in result["not_computed"]["co_bps"]
    with pytest.raises(InputError, match="co_bps cannot be computed"):
        lfads_score.score_files(out_path, data_path, wanted=("co_bps",))
