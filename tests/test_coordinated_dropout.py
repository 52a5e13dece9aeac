"""Coordinated dropout (CD) and sample validation (SV): lfads_tf2/model/regularisers.py.

The mask function against NumPy (rates, scaling, statelessness), the gradients it
lets through (tf.GradientTape on a tiny model), CD and SV off outside the training
step, and short end-to-end runs: sv_recon in the fitlog, on stdout, in TensorBoard
and in on_epoch's records, the SV mask in the checkpoint across a resume, the
lowest-validation checkpoint chosen on sv_recon, and old checkpoints without SV (the
end-to-end runs are background jobs, tests/background.py, beside earlier tests).
"""
import contextlib
import glob
import io
import os
import pickle
import re

import numpy as np
import pytest
import tensorflow as tf

import background
import lfads_testdata as td

import lfads
from lfads_tf2 import errors
from lfads_tf2.train import hparams
from lfads_tf2.data import checks
from lfads_tf2.model import observation
import utils
from lfads_tf2.train import build, checkpoints, loop, steps
from lfads_tf2.evaluate import kinds
from lfads_tf2.model import regularisers

ORIGINAL_TOKENS = 19  # tokens of a fitlog line with validation (test_training_run.py)
SV_KEY = "sv/masks/set0/.ATTRIBUTES/VARIABLE_VALUE"


def _seed(a, b=0):
    return tf.constant([a, b], tf.int64)


# ------------------------------------------------------------------ the mask function
def test_cd_hides_the_rate_and_scales_the_rest():
    data = np.random.RandomState(0).poisson(2.0, size=(20, 40, 25)).astype(np.float32) + 1
    rate = 0.3
    enc, mask = regularisers.apply(data, _seed(1), rate)
    enc, grad = enc.numpy(), mask.grad_bxtxd.numpy()
    hidden = enc == 0
    n = data.size
    # 4 standard deviations of a binomial fraction
    assert abs(hidden.mean() - rate) < 4 * np.sqrt(rate * (1 - rate) / n)
    np.testing.assert_allclose(enc[~hidden], data[~hidden] / (1 - rate), rtol=1e-6)
    # the gradient passes exactly where the encoders saw nothing (cd_pass_rate 0),
    # weighted by 1 / rate
    np.testing.assert_allclose(grad, hidden / np.float32(rate), rtol=1e-6)
    assert mask.weight_bxtxd is None and mask.sv_bxtxd is None


def test_cd_pass_rate_lets_that_fraction_of_seen_entries_pass():
    data = np.ones((20, 40, 25), np.float32)
    enc, mask = regularisers.apply(data, _seed(2), 0.4, cd_pass_rate=0.25)
    hidden = enc.numpy() == 0
    grad = mask.grad_bxtxd.numpy() > 0
    assert grad[hidden].all()
    seen = ~hidden
    frac = grad[seen].mean()
    assert abs(frac - 0.25) < 4 * np.sqrt(0.25 * 0.75 / seen.sum())
    # every gradient that passes has the weight 1 / P(pass)
    weights = mask.grad_bxtxd.numpy()[grad]
    np.testing.assert_allclose(weights, 1 / (0.4 + 0.6 * 0.25), rtol=1e-6)


def test_masks_are_stateless_functions_of_the_seed():
    data = np.ones((4, 10, 6), np.float32)
    a = regularisers.apply(data, _seed(7, 3), 0.5, 0.2)
    b = regularisers.apply(data, _seed(7, 3), 0.5, 0.2)
    c = regularisers.apply(data, _seed(8, 3), 0.5, 0.2)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1].grad_bxtxd, b[1].grad_bxtxd)
    assert not np.array_equal(a[0], c[0])


def test_rate_zero_in_the_graph_is_plain_training():
    """A search may set the rate variable to 0: nothing hidden, every gradient passes."""
    data = np.random.RandomState(1).rand(3, 5, 4).astype(np.float32)
    enc, mask = regularisers.apply(data, _seed(3), tf.Variable(0.0))
    np.testing.assert_array_equal(enc, data)
    np.testing.assert_array_equal(mask.grad_bxtxd, np.ones_like(data))


def test_a_compiled_function_reads_the_rate_variable_at_each_call():
    rate = tf.Variable(0.5, trainable=False)
    data = tf.ones([10, 20, 30])
    fn = tf.function(lambda: regularisers.apply(data, _seed(5), rate)[0], autograph=False)
    for value in (0.5, 0.1, 0.8):
        rate.assign(value)
        hidden = float(tf.reduce_mean(tf.cast(fn() == 0, tf.float32)))
        assert hidden == pytest.approx(value, abs=0.05)
    assert fn.experimental_get_tracing_count() == 1


def test_sv_entries_are_always_zero_at_the_encoders():
    rs = np.random.RandomState(2)
    data = rs.poisson(3.0, size=(6, 12, 9)).astype(np.float32) + 1
    sv = regularisers.draw_sv_mask(data.shape, 0.2, 0, "set0").astype(np.float32)
    for seed in range(5):
        enc, mask = regularisers.apply(data, _seed(seed), 0.3, 0.0, sv, 0.2)
        enc = enc.numpy()
        assert (enc[sv > 0] == 0).all()
        # the rest: zero where CD hid it, else scaled by both rates
        rest = (sv == 0) & (enc != 0)
        np.testing.assert_allclose(enc[rest], data[rest] / (0.7 * 0.8), rtol=1e-6)
        np.testing.assert_array_equal(mask.sv_bxtxd, sv)
        np.testing.assert_allclose(mask.weight_bxtxd, (1 - sv) / 0.8, rtol=1e-6)
    # SV without CD: only the SV entries are zero
    enc, mask = regularisers.apply(data, _seed(0), None, 0.0, sv, 0.2)
    np.testing.assert_allclose(enc, data * (1 - sv) / 0.8, rtol=1e-6)
    assert mask.grad_bxtxd is None


def test_sv_mask_draw():
    shape = (30, 10, 7)
    a = regularisers.draw_sv_mask(shape, 0.15, 4, "set0")
    assert a.shape == shape and a.dtype == bool
    assert a.sum() == round(0.15 * a.size)
    np.testing.assert_array_equal(a, regularisers.draw_sv_mask(shape, 0.15, 4, "set0"))
    assert not np.array_equal(a, regularisers.draw_sv_mask(shape, 0.15, 5, "set0"))
    assert not np.array_equal(a, regularisers.draw_sv_mask(shape, 0.15, 4, "set1"))
    assert regularisers.draw_sv_mask((1, 2, 2), 0.01, 0, "x").sum() == 1  # at least one


def test_objective_loglik_against_numpy():
    rs = np.random.RandomState(3)
    B, T, D = 4, 6, 5
    ll = rs.randn(B, T, D).astype(np.float32)
    sv = (rs.rand(B, T, D) < 0.2).astype(np.float32)
    grad = (rs.rand(B, T, D) < 0.5).astype(np.float32)
    mask = regularisers.CostMask(grad, (1 - sv) / 0.8, sv)
    obj, sv_b = regularisers.objective_loglik(tf.constant(ll), mask)
    np.testing.assert_allclose(obj, np.where(sv > 0, 0, ll / 0.8), rtol=1e-6)
    np.testing.assert_allclose(sv_b, (ll * sv).sum(axis=(1, 2)), rtol=1e-5, atol=1e-6)


def test_masks_pad_to_a_larger_loglik():
    """Entries beyond the held-in bins and neurons (held-out neurons, forward bins):
    their gradient passes, they count with weight 1, none is an SV entry."""
    B, T, D = 2, 3, 4
    sv = np.zeros((B, T, D), np.float32)
    sv[0, 0, 0] = 1
    mask = regularisers.CostMask(np.zeros((B, T, D), np.float32), (1 - sv) / 0.5, sv)
    padded = regularisers.pad_to(mask, [B, T + 2, D + 3])
    for field, value in zip(padded, (1.0, 1.0, 0.0)):
        field = field.numpy()
        assert field.shape == (B, T + 2, D + 3)
        assert (field[:, T:, :] == value).all() and (field[:, :, D:] == value).all()
    np.testing.assert_array_equal(padded.sv_bxtxd[:, :T, :D], sv)
    ll = tf.ones([B, T + 2, D + 3])
    obj, sv_b = regularisers.objective_loglik(ll, mask)
    np.testing.assert_array_equal(sv_b, [1.0, 0.0])
    assert float(tf.reduce_sum(obj)) == pytest.approx(
        (B * T * D - 1) / 0.5 + B * ((T + 2) * (D + 3) - T * D))


# ------------------------------------------------------------------ gradients
def _tiny_model(extra=()):
    hps = hparams.hps_from_argv(td.TINY_MODEL + ["--keep_prob=1.0"] + list(extra))
    hps = hparams.add_derived_hps(hps, {"ds": {"data_dim": 7, "num_steps": 8}})
    model = lfads.LFADS(hps, {"ds": {"data_dim": 7}}, init_seed=0)
    return hps, model


def _loglik_grads(model, data, enc, mask, seed=0):
    """(total cost, ModelOutput, per-entry loglik, d total / d log-rate per entry)."""
    total, out, ll, grads = td.loglik_and_grads(model, enc, data, mask, seed)
    return total, out, ll, grads[0].numpy()


def test_gradient_of_entries_the_encoders_saw_is_exactly_zero():
    _, model = _tiny_model()
    data = np.random.RandomState(4).poisson(1.5, size=(6, 8, 7)).astype(np.float32)
    enc, mask = regularisers.apply(data, _seed(11), 0.3)
    _, out, ll, g = _loglik_grads(model, data, enc, mask)
    hidden = mask.grad_bxtxd.numpy() > 0
    assert 0 < hidden.sum() < hidden.size
    assert (g[~hidden] == 0).all()
    assert (g[hidden] != 0).all()
    # a hidden entry's gradient is 1 / cd_rate times its gradient without CD, so the
    # reconstruction gradient is an unbiased estimate of the full-entry one
    _, _, _, g_plain = _loglik_grads(model, data, enc, None)
    np.testing.assert_allclose(g[hidden], g_plain[hidden] / 0.3, rtol=1e-5)
    # the value is the cost of every entry: that of a pass without the cost mask
    plain = model.forward("ds", enc, None, tf.random.Generator.from_seed(0), "train",
                          recon_bxtxn=data)
    np.testing.assert_array_equal(out.log_p_xgz_b, plain.log_p_xgz_b)
    np.testing.assert_allclose(out.log_p_xgz_b, ll.sum(axis=(1, 2)), rtol=1e-6)
    assert out.log_p_sv_b is None


def test_passed_entries_have_a_gradient():
    _, model = _tiny_model()
    data = np.random.RandomState(5).poisson(1.5, size=(6, 8, 7)).astype(np.float32)
    enc, mask = regularisers.apply(data, _seed(12), 0.3, cd_pass_rate=0.5)
    _, _, _, g = _loglik_grads(model, data, enc, mask)
    hidden = enc.numpy() == 0
    passes = mask.grad_bxtxd.numpy() > 0
    assert (passes & ~hidden).any() and (~passes).any()
    assert (g[passes] != 0).all() and (g[~passes] == 0).all()


def test_sv_entries_have_no_gradient_and_are_not_in_the_cost():
    _, model = _tiny_model()
    data = np.random.RandomState(6).poisson(1.5, size=(6, 8, 7)).astype(np.float32)
    sv = regularisers.draw_sv_mask(data.shape, 0.2, 1, "ds").astype(np.float32)
    enc, mask = regularisers.apply(data, _seed(13), 0.3, 0.0, sv, 0.2)
    total, out, ll, g = _loglik_grads(model, data, enc, mask)
    is_sv = sv > 0
    hidden = (mask.grad_bxtxd.numpy() > 0) & ~is_sv
    assert (g[is_sv] == 0).all() and (g[~hidden] == 0).all()
    assert (g[hidden] != 0).all()
    # objective: the other entries, weighted by 1 / (1 - sv_rate); SV entries apart
    np.testing.assert_allclose(out.log_p_xgz_b, (ll * (1 - sv)).sum(axis=(1, 2)) / 0.8,
                               rtol=1e-5)
    np.testing.assert_allclose(out.log_p_sv_b, (ll * sv).sum(axis=(1, 2)), rtol=1e-5)
    # a huge cost on an SV entry does not change the objective
    ll_total = float(total)
    data2 = data.copy()
    data2[is_sv] += 1000.0
    total2, _, _, _ = _loglik_grads(model, data2, enc, mask)
    assert float(total2) == pytest.approx(ll_total, rel=1e-6)


# ------------------------------------------------------------------ steps
def _step_setup(extra):
    d = td.make_dataset(seed=1, n_train=32, n_valid=16)
    hps = hparams.hps_from_argv(td.TINY_NO_CONTROLLER + ["--seed=3"] + list(extra))
    info = {"set0": {"data_dim": 15, "train_shape": d["train_data"].shape}}
    hps = hparams.add_derived_hps(hps, {"set0": {"data_dim": 15, "num_steps": 25}})
    return hps, info, d


def test_validation_and_evaluation_ignore_cd_and_sv():
    """The eval step and the posterior function of a CD/SV bundle give the numbers
    of a bundle without them, whatever the CD rate."""
    hps, info, d = _step_setup([])
    hps_cd, _, _ = _step_setup(["--cd_rate=0.5", "--sv_rate=0.3"])
    batch = {"data": np.asarray(d["valid_data"][:16], np.float32)}
    results = []
    for h, rate in ((hps, None), (hps_cd, 0.5), (hps_cd, 0.0)):
        bundle = build.bundle(h, info)
        if rate is not None:
            bundle.cd_rate.assign(rate)
        ev = steps.call_step(steps.make_eval_step(bundle, h), h, "set0", batch)
        post = steps.call_step(kinds.make_posterior_fn(bundle, h, "posterior_mean", 1),
                               h, "set0", batch)
        results.append(({k: v.numpy() for k, v in ev.items()},
                        post["output_dist_params"].numpy()))
    for ev, post in results[1:]:
        for k in results[0][0]:
            np.testing.assert_array_equal(ev[k], results[0][0][k], err_msg=k)
        np.testing.assert_array_equal(post, results[0][1])


def test_train_step_reads_the_cd_rate_without_retracing():
    hps, info, d = _step_setup(["--cd_rate=0.4", "--sv_rate=0.1"])
    bundle = build.bundle(hps, info)
    step = steps.make_train_step(bundle, hps)
    arrays = loop.split_arrays({"set0": d}, hps, "train", sv_masks=bundle.sv.arrays())
    assert "sv_mask" in arrays["set0"]
    batch = steps.take(arrays["set0"], slice(0, 16))
    for rate in (0.4, 0.1, 0.0):
        bundle.cd_rate.assign(rate)
        res = steps.call_step(step, hps, "set0", batch)
        assert bool(res["applied"])
        assert float(res["sv_trials"]) == pytest.approx(
            batch["sv_mask"].sum() / (25 * 15), rel=1e-5)
        assert float(res["sv_nll"]) > 0
    assert step.experimental_get_tracing_count() == 1


# ------------------------------------------------------------------ end to end
def _sv_flags(root, save):
    return ["--data_dir=" + os.path.join(root, "data"), "--data_filename_stem=" + td.STEM,
            "--lfads_save_dir=" + save] + td.TINY_NO_CONTROLLER + [
        "--seed=4", "--cd_rate=0.3", "--sv_rate=0.1", "--sv_seed=1", "--lve_metric=sv",
        "--kl_increase_steps=1", "--l2_increase_steps=1", "--max_ckpt_to_keep_lve=10",
        "--temporal_spike_jitter_width=1"]


def _variables(bundle):
    return [(v.name, v.numpy()) for v in bundle.model.variables]


def cd_sv_runs(root):
    """Background job (tests/background.py): 3 epochs with CD and SV, --lve_metric=sv
    (ramps done after the first step), then resumed to 5 epochs through training.train
    with another --sv_seed and on_epoch; and the same 5 epochs in one go ('whole'). What
    the tests compare of the bundles, the stdout and the records go to root/runs.pkl."""
    td.write_dataset(os.path.join(root, "data"), seed=3, n_train=48, n_valid=16)
    save = os.path.join(root, "save")
    flags = _sv_flags(root, save)
    res = {}
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        first = td.run(flags + ["--max_epochs=3"])
    res["stdout"] = out.getvalue()
    res["first_ckpt"] = tf.train.latest_checkpoint(save)
    res["first_mask"] = first.sv.arrays()["set0"]

    hps = hparams.hps_from_argv(flags + ["--max_epochs=5", "--sv_seed=2"])
    hparams.validate_hps(hps)
    datasets, _ = checks.load_datasets(hps.data_dir, hps.data_filename_stem, observation.for_dist("poisson"),
                                      factors_dim=hps.factors_dim)
    hparams.add_derived_hps(hps, datasets)
    records = []
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        resumed = loop.train(hps, datasets, on_epoch=lambda b, r: records.append(r))
    res["resume_stdout"] = out.getvalue()
    res["records"] = records
    res["resumed_mask"] = resumed.sv.arrays()["set0"]
    res["resumed_variables"] = _variables(resumed)
    res["resumed_rng"] = resumed.rng.state.numpy()
    res["resumed_lowest_valid_cost"] = float(resumed.state.lowest_valid_cost.numpy())

    whole = td.run(_sv_flags(root, os.path.join(root, "whole")) + ["--max_epochs=5"])
    res["whole_variables"] = _variables(whole)
    res["whole_rng"] = whole.rng.state.numpy()
    with open(os.path.join(root, "runs.pkl"), "wb") as f:
        pickle.dump(res, f)


def resume_without_sv(root):
    """Background job: a run without SV (1 epoch), resumed with --sv_rate=0.2 to epoch 2
    (its stdout and epoch go to root/resumed.pkl), then posterior_push_mean without it."""
    td.write_dataset(os.path.join(root, "data"), seed=5, n_train=32, n_valid=16)
    flags = ["--data_dir=" + os.path.join(root, "data"), "--data_filename_stem=" + td.STEM,
             "--lfads_save_dir=" + os.path.join(root, "save")] + td.TINY_NO_CONTROLLER
    td.run(flags + ["--max_epochs=1"])
    plain = tf.train.latest_checkpoint(os.path.join(root, "save"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        bundle = td.run(flags + ["--max_epochs=2", "--sv_rate=0.2"])
    with open(os.path.join(root, "resumed.pkl"), "wb") as f:
        pickle.dump({"plain": plain, "stdout": out.getvalue(),
                     "epoch": int(bundle.state.epoch.numpy())}, f)
    td.run(flags + ["--kind=posterior_push_mean"])


BACKGROUND = {"sv_run": cd_sv_runs, "without_sv": resume_without_sv}


@pytest.fixture(scope="module")
def sv_run():
    """cd_sv_runs, run by a background job beside earlier tests."""
    root = background.result(cd_sv_runs)
    with open(os.path.join(root, "runs.pkl"), "rb") as f:
        res = pickle.load(f)
    save = os.path.join(root, "save")
    return dict(res, root=root, save=save, flags=_sv_flags(root, save))


def test_fitlog_and_stdout_carry_sv_recon(sv_run):
    lines = td.fitlog_lines(sv_run["save"])
    assert len(lines) == 5
    for line in lines:
        tok = td.fitlog_tokens(line)
        assert len(tok) == ORIGINAL_TOKENS + 2, line
        assert tok[ORIGINAL_TOKENS] == "sv_recon", line
        assert re.fullmatch(r"\d+\.\d{2}", tok[ORIGINAL_TOKENS + 1]), line
        # the original's tokens parse as before
        rec = td.fitlog_record(line)
        # comparable with the per-trial recon: same order of magnitude
        assert 0.5 < float(tok[-1]) / rec["recon_tr"] < 2.0, line
    epoch_lines = [x for x in sv_run["stdout"].splitlines() if x.startswith("Epoch:")]
    assert len(epoch_lines) == 3
    for line, fit in zip(epoch_lines, lines):
        assert line.endswith("\tsv_recon: " + td.fitlog_tokens(fit)[-1]), line


def test_on_epoch_records_hold_sv_recon(sv_run):
    records = sv_run["records"]
    assert [r["epoch"] for r in records] == [3, 4]
    lines = td.fitlog_lines(sv_run["save"])[3:]
    for r, line in zip(records, lines):
        assert "%.2f" % r["sv_recon"] == td.fitlog_tokens(line)[-1]
        assert r["sv_recon"] == r["train"]["sv_recon"]
        assert r["valid"]["total"] == pytest.approx(td.fitlog_record(line)["total_va"],
                                                    abs=0.006)


def test_tensorboard_has_the_sv_scalar(sv_run):
    tags = {}
    for fname in glob.glob(os.path.join(sv_run["save"], "lfads_log", "events.out.*")):
        for event in tf.compat.v1.train.summary_iterator(fname):
            for v in event.summary.value:
                tags.setdefault(v.tag, []).append(
                    (event.step, float(tf.make_ndarray(v.tensor))))
    assert "LFADS/CD_rate" in tags
    values = [v for _, v in sorted(tags["LFADS/Reconstruction_cost__sv_"])]
    fit = [float(td.fitlog_tokens(x)[-1]) for x in td.fitlog_lines(sv_run["save"])]
    np.testing.assert_allclose(values, fit, atol=0.006)


def test_sv_mask_is_in_the_checkpoint_and_kept_on_resume(sv_run):
    first = td.checkpoint_values(sv_run["first_ckpt"])
    drawn = regularisers.draw_sv_mask(sv_run["first_mask"].shape, 0.1, 1, "set0")
    np.testing.assert_array_equal(first[SV_KEY], drawn)
    np.testing.assert_array_equal(sv_run["first_mask"], drawn)
    # resumed with --sv_seed=2: the checkpoint's entries are kept, with a note
    assert "differ from those --sv_rate and --sv_seed give" in sv_run["resume_stdout"]
    last = td.checkpoint_values(tf.train.latest_checkpoint(sv_run["save"]))
    np.testing.assert_array_equal(last[SV_KEY], drawn)
    np.testing.assert_array_equal(sv_run["resumed_mask"], drawn)
    assert not np.array_equal(drawn, regularisers.draw_sv_mask(drawn.shape, 0.1, 2, "set0"))


def test_seeded_run_with_cd_and_sv_resumes_bit_for_bit(sv_run):
    """The masks' seeds come from the checkpointed generator: 3 + 2 epochs (resumed
    with another --sv_seed, the checkpoint's entries kept) give the fitlog and
    weights of 5 epochs in one go."""
    whole = os.path.join(sv_run["root"], "whole")
    assert td.fitlog_lines(whole) == td.fitlog_lines(sv_run["save"])
    assert len(sv_run["whole_variables"]) == len(sv_run["resumed_variables"])
    for (name, a), (_, b) in zip(sv_run["whole_variables"], sv_run["resumed_variables"]):
        np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(sv_run["whole_rng"], sv_run["resumed_rng"])


def test_lowest_validation_checkpoint_follows_sv_recon(sv_run):
    lines = td.fitlog_lines(sv_run["save"])
    recs = [(td.fitlog_record(x)["step"], float(td.fitlog_tokens(x)[-1])) for x in lines]
    # eligible from the second validation on (ramps of one step are done by then)
    saved, best = [], np.inf
    for step, sv in recs[1:]:
        if sv < best:
            best = sv
            saved.append(step)
    assert saved
    paths = checkpoints.read_checkpoint_state(sv_run["save"], "checkpoint_lve")
    assert [checkpoints.step_of_checkpoint(p) for p in paths] == saved
    lowest = sv_run["resumed_lowest_valid_cost"]
    assert lowest == pytest.approx(best, abs=0.006)
    assert min(r["sv_recon"] for r in sv_run["records"]) >= lowest


def test_evaluation_of_an_sv_checkpoint_with_and_without_the_flags(sv_run, tmp_path):
    """Evaluation reads every entry: the same outputs with or without --sv_rate."""
    outs = []
    for extra in ([], ["--cd_rate=0", "--sv_rate=0", "--lve_metric=valid"]):
        td.run(sv_run["flags"] + extra + ["--kind=posterior_push_mean",
                                          "--output_filename_stem=o%d_" % len(outs)])
        outs.append(utils.read_data(os.path.join(
            sv_run["save"], "o%d_set0_train_posterior_push_mean" % len(outs)))
            ["output_dist_params"])
    np.testing.assert_array_equal(outs[0], outs[1])


@pytest.fixture(scope="module")
def without_sv():
    root = background.result(resume_without_sv)
    with open(os.path.join(root, "resumed.pkl"), "rb") as f:
        return dict(pickle.load(f), save=os.path.join(root, "save"))


def test_checkpoint_without_sv_resumes_with_sv(without_sv):
    """A run without SV, resumed with --sv_rate: restores, notes that the entries were
    seen, trains on with the mask drawn from the flags (then kept in checkpoints)."""
    save = without_sv["save"]
    assert SV_KEY not in td.checkpoint_values(without_sv["plain"])
    assert "was trained without sample validation" in without_sv["stdout"]
    assert without_sv["epoch"] == 2
    lines = td.fitlog_lines(save)
    assert len(td.fitlog_tokens(lines[0])) == ORIGINAL_TOKENS
    assert td.fitlog_tokens(lines[1])[ORIGINAL_TOKENS] == "sv_recon"
    values = td.checkpoint_values(tf.train.latest_checkpoint(save))
    np.testing.assert_array_equal(values[SV_KEY], regularisers.draw_sv_mask(
        values[SV_KEY].shape, 0.2, 0, "set0"))
    # and the SV checkpoint still evaluates without the flag (the job ran it)
    assert os.path.isfile(os.path.join(save, "model_runs_set0_valid_posterior_push_mean"))


@pytest.mark.parametrize("flag, needle", [
    ("--cd_rate=1", "--cd_rate=1.0: must lie in [0, 1)"),
    ("--cd_rate=-0.1", "--cd_rate=-0.1: must lie in [0, 1)"),
    ("--sv_rate=1.5", "--sv_rate=1.5: must lie in [0, 1)"),
    ("--sv_rate=-0.2", "--sv_rate=-0.2: must lie in [0, 1)"),
    ("--cd_pass_rate=2", "--cd_pass_rate=2.0: must lie in [0, 1]"),
    ("--lve_metric=sv", "--lve_metric=sv: needs --sv_rate > 0"),
    ("--lve_metric=best", "--lve_metric=best: expected 'valid' or 'sv'"),
])
def test_bad_flags_are_one_line_errors(flag, needle, tmp_path):
    with pytest.raises(errors.UsageError) as err:
        td.run(["--data_dir=" + str(tmp_path), "--lfads_save_dir=" + str(tmp_path / "s"),
                flag] + td.TINY_MODEL)
    msg = str(err.value)
    assert "\n" not in msg and needle in msg, msg
