"""Missing entries (--nan_is_missing; selective backpropagation through time, Zhu, Sedler
et al. 2021): lfads_tf2/model/regularisers.py's MissingEntries against NumPy (encoder
input, target, the masked objective with SV and CD), no cost and no gradient from a
missing entry in every observation model, evaluation scoring observed entries only, the
data checks with and without the flag, spike jitter around missing entries, and a short
run with 20 % missing entries."""
import os

import h5py
import numpy as np
import pytest
import tensorflow as tf
from scipy import special

import lfads_testdata as td

import lfads
import utils
from lfads_tf2 import errors
from lfads_tf2.data import checks
from lfads_tf2.evaluate import kinds
from lfads_tf2.model import observation, regularisers
from lfads_tf2.train import build, hparams, steps

B, T, D = 6, 8, 7


def _seed(a):
    return tf.constant([a, 0], tf.int64)


def _with_nan(x, rs, fraction=0.2):
    """x (float32) with a random `fraction` of its entries NaN, and neuron 1 of trial 0
    missing in every bin (a neuron not recorded in a trial)."""
    x = np.array(x, np.float32)
    x[rs.rand(*x.shape) < fraction] = np.nan
    x[0, :, 1] = np.nan
    return x


def _poisson_ll(x, rates):
    return special.xlogy(x, rates) - rates - special.gammaln(x + 1.0)


# ------------------------------------------------------------------ the regulariser
def test_encoder_input_target_and_objective_against_numpy():
    """Missing, CD and SV together: the encoders see the observed, unhidden, non-SV
    entries scaled by 1 / (the trial's observed fraction x (1 - cd) x (1 - sv)); the
    objective is the per-entry log-likelihood of the observed non-SV entries / (1 - sv);
    sv_recon counts observed SV entries only, in trials of their observed entries."""
    rs = np.random.RandomState(0)
    data = _with_nan(rs.poisson(2.0, size=(B, T, D)), rs)
    sv = regularisers.draw_sv_mask(data.shape, 0.2, 0, "ds").astype(np.float32)
    regs = [regularisers.MissingEntries(), regularisers.CoordinatedDropout(0.3),
            regularisers.SampleValidationEntries(0.2)]
    out = regularisers.run(regs, {"data": data, "sv_mask": sv}, _seed(1))
    mask = out["cost_mask"]
    observed = ~np.isnan(data)
    fraction_b = observed.mean(axis=(1, 2), keepdims=True)
    assert fraction_b[0, 0, 0] < fraction_b[1:].max()  # trial 0 lost a whole neuron
    hidden = mask.grad_bxtxd.numpy() > 0  # cd_pass_rate 0: the gradient passes iff hidden
    shown = observed & (sv == 0) & ~hidden
    expected = np.where(shown, np.nan_to_num(data) / (fraction_b * 0.7 * 0.8), 0.0)
    np.testing.assert_allclose(out["data"], expected, rtol=1e-5)
    assert np.isfinite(out["data"].numpy()).all()
    np.testing.assert_array_equal(out["recon"], np.where(observed, data, 1.0))
    np.testing.assert_array_equal(mask.observed_bxtxn, observed.astype(np.float32))

    ll = rs.randn(B, T, D).astype(np.float32)
    objective, sv_b = regularisers.objective_loglik(tf.constant(ll), mask)
    is_sv = (sv > 0) & observed
    np.testing.assert_allclose(objective, np.where(observed & ~is_sv, ll / 0.8, 0.0),
                               rtol=1e-6)
    np.testing.assert_allclose(sv_b, np.where(is_sv, ll, 0.0).sum(axis=(1, 2)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        regularisers.sv_trials(mask),
        (is_sv.sum(axis=(1, 2)) / observed.sum(axis=(1, 2))).sum(), rtol=1e-6)


def test_recon_with_more_bins_and_neurons_than_the_data():
    """Held-out neurons and forward bins: the target's own NaN entries are missing; the
    encoders read only the data's."""
    rs = np.random.RandomState(1)
    recon = _with_nan(rs.poisson(1.0, size=(B, T + 2, D + 3)), rs)
    data = recon[:, :T, :D]
    out = regularisers.run([regularisers.MissingEntries()],
                           {"data": data, "recon": recon}, None)
    observed = ~np.isnan(recon)
    np.testing.assert_array_equal(out["cost_mask"].observed_bxtxn, observed)
    np.testing.assert_array_equal(out["recon"], np.where(observed, recon, 1.0))
    assert out["data"].shape == (B, T, D) and np.isfinite(out["data"].numpy()).all()
    assert out["cost_mask"].grad_bxtxd is None and out["cost_mask"].sv_bxtxd is None


def _tiny(output_dist, data, extra=()):
    """hps and an LFADS model of data [B, T, D] (tiny, no dropout)."""
    hps = hparams.hps_from_argv(td.TINY_MODEL + ["--keep_prob=1.0", "--nan_is_missing",
                                                 "--output_dist=" + output_dist]
                                + list(extra))
    filled = np.where(np.isnan(data), np.nanmax(data), data)
    hps = hparams.add_derived_hps(hps, {"ds": {"train_data": filled, "valid_data": filled,
                                               "data_dim": D, "num_steps": T}})
    return hps, lfads.LFADS(hps, {"ds": {"data_dim": D}}, init_seed=0)


def _data_for(output_dist, rs):
    """Data [B, T, D] in the support of each observation model."""
    if output_dist == "poisson":
        return rs.poisson(1.5, size=(B, T, D)).astype(np.float32)
    if output_dist == "gaussian":
        return rs.randn(B, T, D).astype(np.float32)
    positive = rs.gamma(2.0, 0.5, size=(B, T, D)).astype(np.float32) + 0.1
    if output_dist == "gamma":
        return positive
    return np.where(rs.rand(B, T, D) < 0.4, 0.0, positive).astype(np.float32)


def _cost_and_grads(model, enc, target, mask):
    """(total cost, ModelOutput, per-entry log-likelihood, gradients of the total w.r.t.
    [each entry's first output parameter, every trainable variable])."""
    total, out, ll, grads = td.loglik_and_grads(model, enc, target, mask, seed=3,
                                                variables=model.trainable_variables)
    return float(total), out, ll, grads


@pytest.mark.parametrize("output_dist", observation.NAMES)
def test_missing_entries_have_no_cost_and_no_gradient(output_dist):
    """Every observation model: the reconstruction term sums the observed entries'
    log-likelihood only, a missing entry's gradient is exactly 0 and every gradient is
    finite, and whatever value stands in for a missing entry, cost and gradients stay."""
    rs = np.random.RandomState(2)
    data = _with_nan(_data_for(output_dist, rs), rs)
    _, model = _tiny(output_dist, data)
    out = regularisers.run([regularisers.MissingEntries()], {"data": data}, None)
    enc, target, mask = out["data"], out["recon"].numpy(), out["cost_mask"]
    total, res, ll, grads = _cost_and_grads(model, enc, target, mask)
    observed = ~np.isnan(data)
    assert np.isfinite(total)
    np.testing.assert_allclose(res.log_p_xgz_b, np.where(observed, ll, 0.0).sum(axis=(1, 2)),
                               rtol=1e-5)
    g_entry = grads[0].numpy()
    assert np.isfinite(g_entry).all()
    assert (g_entry[~observed] == 0).all()
    assert (g_entry[observed] != 0).mean() > 0.5
    # another stand-in value for the missing entries (still in every model's support)
    other = np.where(observed, target, 2.5).astype(np.float32)
    total_b, _, _, grads_b = _cost_and_grads(model, enc, other, mask)
    assert total_b == total
    for a, b in zip(grads[1:], grads_b[1:]):
        if a is not None:
            np.testing.assert_array_equal(a, b)


def test_poisson_cost_against_numpy():
    """The reconstruction cost of a Poisson model: -sum over observed entries of
    log Poisson(x | rates), the rates the model reports."""
    rs = np.random.RandomState(3)
    data = _with_nan(_data_for("poisson", rs), rs)
    _, model = _tiny("poisson", data)
    out = regularisers.run([regularisers.MissingEntries()], {"data": data}, None)
    res = model.forward("ds", out["data"], None, tf.random.Generator.from_seed(0),
                        "posterior_mean", recon_bxtxn=out["recon"],
                        cost_mask_bxtxn=out["cost_mask"])
    rates = res.rates_bxtxd.numpy().astype(np.float64)
    observed = ~np.isnan(data)
    expected = np.where(observed, _poisson_ll(np.nan_to_num(data), rates), 0.0)
    np.testing.assert_allclose(res.log_p_xgz_b, expected.sum(axis=(1, 2)), rtol=1e-5)


# ------------------------------------------------------------------ evaluation
def test_evaluation_reads_zero_filled_data_and_scores_observed_entries():
    """The posterior function: the encoders read the zero-filled data scaled by each
    trial's observed fraction (a model without the flag fed exactly that infers the
    same factors), every entry gets a finite rate, and the cost (KL and L2 weights are
    0 at step 0) is -sum of the observed entries' log-likelihood. Validation too."""
    rs = np.random.RandomState(4)
    data = _with_nan(rs.poisson(1.5, size=(16, T, D)), rs)
    observed = ~np.isnan(data)
    flags = td.TINY_NO_CONTROLLER + ["--seed=0"]
    results = {}
    for missing in (True, False):
        hps = hparams.hps_from_argv(flags + ["--nan_is_missing=%s" % str(missing).lower()])
        hps = hparams.add_derived_hps(hps, {"ds": {"data_dim": D, "num_steps": T}})
        bundle = build.bundle(hps, {"ds": {"data_dim": D}})
        fn = kinds.make_posterior_fn(bundle, hps, "posterior_mean", 1)
        if missing:
            batch = data
            valid = steps.call_step(steps.make_eval_step(bundle, hps), hps, "ds",
                                    {"data": data})
            assert all(np.isfinite(v.numpy()) for v in valid.values())
        else:
            fraction_b = observed.mean(axis=(1, 2), keepdims=True)
            batch = (np.where(observed, data, 0.0) / fraction_b).astype(np.float32)
        results[missing] = {k: v.numpy() for k, v in
                            steps.call_step(fn, hps, "ds", {"data": batch}).items()}
    res = results[True]
    np.testing.assert_allclose(res["factors"], results[False]["factors"], rtol=1e-4,
                               atol=1e-6)
    rates = res["output_dist_params"].astype(np.float64)
    assert rates.shape == data.shape and np.isfinite(rates).all()
    nll = -np.where(observed, _poisson_ll(np.nan_to_num(data), rates), 0.0).sum(axis=(1, 2))
    np.testing.assert_allclose(res["costs"], nll, rtol=1e-4)


def test_test_data_of_a_model_with_held_out_neurons_and_forward_bins():
    """Test data (held-in neurons, T bins, no recon_data) with missing entries, given to
    a model that predicts 2 more neurons and 3 forward bins: outputs cover all of them,
    the cost scores the observed entries of the data's extent."""
    rs = np.random.RandomState(9)
    recon = rs.poisson(1.5, size=(16, T + 3, D + 2)).astype(np.float32)
    data = recon[:, :T, :D]
    hps = hparams.hps_from_argv(td.TINY_NO_CONTROLLER + ["--seed=0", "--nan_is_missing"])
    hps = hparams.add_derived_hps(hps, {"ds": {
        "train_data": data, "valid_data": data, "train_recon_data": recon,
        "valid_recon_data": recon, "data_dim": D, "num_steps": T}})
    bundle = build.bundle(hps, {"ds": {"data_dim": D, "recon_dim": D + 2}})
    fn = kinds.make_posterior_fn(bundle, hps, "posterior_mean", 1, with_recon=False)
    test = _with_nan(data, rs)
    res = steps.call_step(fn, hps, "ds", {"data": test})
    rates = res["output_dist_params"].numpy().astype(np.float64)
    assert rates.shape == (16, T + 3, D + 2) and np.isfinite(rates).all()
    observed = ~np.isnan(test)
    nll = -np.where(observed, _poisson_ll(np.nan_to_num(test), rates[:, :T, :D]), 0.0)
    np.testing.assert_allclose(res["costs"].numpy(), nll.sum(axis=(1, 2)), rtol=1e-4)


# ------------------------------------------------------------------ data checks
PATH = "/data/synth_set0"


def _validate(train, output_dist="poisson", **kwargs):
    datasets = {"set0": {"train_data": train, "valid_data": train.copy(),
                         utils.PATH_KEY: PATH}}
    return checks.validate_datasets(datasets, observation.for_dist(output_dist), **kwargs)


def _counts_with_nan():
    x = np.random.RandomState(5).poisson(2.0, size=(4, 5, 3)).astype(np.float32)
    x[0, 1, 2] = np.nan
    return x


def test_nan_without_the_flag_is_the_error_it_was():
    with pytest.raises(errors.DataError) as info:
        _validate(_counts_with_nan())
    assert str(info.value) == ("%s: train_data: NaN or inf in 1 value(s), first at index "
                               "(0, 1, 2)" % PATH)


@pytest.mark.parametrize("output_dist", ["poisson", "gaussian"])
def test_nan_with_the_flag_is_accepted(output_dist):
    notes = _validate(_counts_with_nan(), output_dist, nan_is_missing=True)
    assert all("\n" not in n for n in notes)


def test_the_observation_model_checks_the_observed_entries():
    x = _counts_with_nan()
    x[2, 3, 1] = 0.5
    with pytest.raises(errors.DataError) as info:
        _validate(x, nan_is_missing=True)
    assert str(info.value) == ("%s: train_data: non-integer counts for --output_dist="
                               "poisson (dtype float32, 1 value(s), first at index "
                               "(2, 3, 1))" % PATH)


def test_inf_stays_an_error_with_the_flag():
    x = _counts_with_nan()
    x[1, 0, 0] = np.inf
    with pytest.raises(errors.DataError) as info:
        _validate(x, nan_is_missing=True)
    assert str(info.value) == ("%s: train_data: inf in 1 value(s), first at index "
                               "(1, 0, 0) (with --nan_is_missing, NaN marks a missing "
                               "entry; inf is not allowed)" % PATH)


def test_integer_data_marking_missing_entries_with_a_number():
    """Integer arrays cannot hold NaN: a user who marked missing counts with -1 is told
    to store the data as float."""
    x = np.random.RandomState(6).poisson(2.0, size=(4, 5, 3))
    x[3, 2, 0] = -1
    with pytest.raises(errors.DataError) as info:
        _validate(x, nan_is_missing=True)
    assert str(info.value) == (
        "%s: train_data: negative counts in 1 value(s), first at index (3, 2, 0); integer "
        "arrays cannot hold NaN: with --nan_is_missing, store train_data as float with NaN "
        "at the missing entries" % PATH)
    assert "\n" not in str(info.value)
    x[3, 2, 0] = 1
    _validate(x, nan_is_missing=True)  # integer counts without missing entries are fine


def test_fewer_than_one_percent_observed_is_an_error():
    x = np.full((10, 10, 5), np.nan, np.float32)
    x[0, 0, :2] = 1.0  # 2 of 500: 0.4 %
    with pytest.raises(errors.DataError) as info:
        _validate(x, nan_is_missing=True)
    assert str(info.value) == (PATH + ": train_data: only 0.4 % of the entries are "
                               "observed (not NaN); --nan_is_missing needs at least 1 %")
    x[0, :, :] = 1.0  # 50 of 500: 10 %
    _validate(x, nan_is_missing=True)


def test_recon_data_with_nan_must_match_the_data_there():
    train = _counts_with_nan()
    recon = np.concatenate([train, np.ones((4, 5, 2), np.float32)], axis=2)
    recon[1, 1, 4] = np.nan  # a held-out neuron missing in one bin
    d = {"train_data": train, "valid_data": train.copy(), "train_recon_data": recon,
         "valid_recon_data": recon.copy(), utils.PATH_KEY: PATH}
    checks.validate_datasets({"set0": d}, observation.for_dist("poisson"),
                             nan_is_missing=True)
    d["valid_recon_data"][2, 2, 2] = np.nan  # missing in the recon data, not in the data
    with pytest.raises(errors.DataError, match="valid_recon_data: its first 5 bins and 3 "
                       r"neurons differ from valid_data \(first at index \(2, 2, 2\)\)"):
        checks.validate_datasets({"set0": d}, observation.for_dist("poisson"),
                                 nan_is_missing=True)


# ------------------------------------------------------------------ spike jitter
def test_jitter_keeps_missing_entries_missing_and_untouched():
    rs = np.random.RandomState(7)
    data = _with_nan(rs.poisson(1.0, size=(B, 20, D)), rs, fraction=0.3)
    missing = np.isnan(data)
    jitter = regularisers.SpikeJitter(3, nan_is_missing=True)
    out = jitter({"data": data}, np.random.RandomState(0))["data"]
    np.testing.assert_array_equal(np.isnan(out), missing)
    # observed spikes moved among observed bins only: each (trial, neuron) keeps its total
    np.testing.assert_array_equal(np.nansum(out, axis=1), np.nansum(data, axis=1))
    assert not np.array_equal(np.nan_to_num(out), np.nan_to_num(data))


# ------------------------------------------------------------------ end to end
def test_training_with_20_percent_missing_entries(tmp_path):
    """--nan_is_missing with CD, SV and spike jitter on data with 20 % NaN entries: the
    costs are finite and fall, the outputs have a finite rate for every entry. Without
    the flag the same data are the one-line NaN error."""
    rs = np.random.RandomState(8)
    data = td.make_dataset(seed=8, n_train=48, n_valid=16)
    for key in ("train_data", "valid_data"):
        data[key] = _with_nan(data[key], rs)
    os.makedirs(tmp_path / "data")
    utils.write_data(str(tmp_path / "data" / (td.STEM + "_set0")), data)
    flags = td.fast_flags(tmp_path / "data", tmp_path / "save")
    with pytest.raises(errors.DataError, match="train_data: NaN or inf in"):
        td.run(flags + ["--max_epochs=1"])
    flags += ["--nan_is_missing", "--cd_rate=0.2", "--sv_rate=0.1",
              "--temporal_spike_jitter_width=1", "--learning_rate_init=0.03"]
    td.run(flags + ["--max_epochs=8"])
    records = td.finite_fitlog(str(tmp_path / "save"))
    assert len(records) == 8
    assert records[-1]["recon_va"] < records[0]["recon_va"]
    assert records[-1]["recon_tr"] < records[0]["recon_tr"]
    td.run(flags + ["--kind=posterior_push_mean"])
    path = kinds.output_file_name(hparams.hps_from_argv(flags), "set0", "train",
                                  "posterior_push_mean")
    with h5py.File(path, "r") as f:
        rates = f["output_dist_params"][()]
        costs = f["costs"][()]
    assert rates.shape == data["train_data"].shape and np.isfinite(rates).all()
    assert np.isfinite(costs).all()
