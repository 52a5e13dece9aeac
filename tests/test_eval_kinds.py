"""The four evaluation kinds on one briefly trained tiny model."""
import os
import shutil

import numpy as np
import pytest

import lfads_testdata as td

from lfads_tf2 import errors
from lfads_tf2.evaluate import kinds
from lfads_tf2.train import checkpoints
import utils

E_TRAIN, E_VALID, T, D = 160, 48, 25, 15
Z, G, F, U, B = 6, 24, 5, 1, 16     # ic_dim, gen_dim, factors_dim, co_dim, batch_size

POSTERIOR_SHAPES = {
    "prior_g0_mean": (Z,), "prior_g0_logvar": (Z,), "post_g0_mean": (Z,),
    "post_g0_logvar": (Z,), "gen_ics": (G,), "controller_outputs": (T, U),
    "gen_states": (T, G), "factors": (T, F), "output_dist_params": (T, D),
    "output_dist_mean": (T, D),
    "costs": (), "nll_bound_vaes": (), "nll_bound_iwaes": (), "train_steps": (),
}
# Deterministic given the data and the weights (independent of posterior noise).
DETERMINISTIC_PS = ("prior_g0_mean", "prior_g0_logvar", "post_g0_mean",
                    "post_g0_logvar", "train_steps")
PUSH_MEAN_DETERMINISTIC = ("prior_g0_mean", "prior_g0_logvar", "post_g0_mean",
                           "post_g0_logvar", "gen_ics", "controller_outputs",
                           "gen_states", "factors", "output_dist_params", "train_steps")


# the shared models, trained by background jobs (lfads_testdata, tests/background.py)
BACKGROUND = {"model": td.train_main_model, "multi": td.train_multi_model}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """The shared trained model, copied so that this module's outputs stay here."""
    main = td.main_model()
    save_dir = str(tmp_path_factory.mktemp("eval") / "save")
    shutil.copytree(main["save_dir"], save_dir)
    flags = [f for f in main["flags"] if not f.startswith("--lfads_save_dir")]
    flags.append("--lfads_save_dir=" + save_dir)
    return dict(main, save_dir=save_dir, flags=flags)


def out_path(model, name):
    return os.path.join(model["save_dir"], name)


def read(model, name):
    path = out_path(model, name)
    assert os.path.isfile(path), "%s missing; folder has %s" % (
        name, sorted(os.listdir(model["save_dir"])))
    return utils.read_data(path)


def check_posterior_file(out, n_trials, step):
    assert sorted(out) == sorted(POSTERIOR_SHAPES)
    for key, shape in POSTERIOR_SHAPES.items():
        assert out[key].shape == (n_trials,) + shape, key
        assert out[key].dtype == np.float64, key
        assert np.all(np.isfinite(out[key])), key
    assert np.all(out["train_steps"] == step)
    assert np.all(out["output_dist_params"] > 0)
    # a Poisson model's mean is its rates, bit for bit
    np.testing.assert_array_equal(out["output_dist_mean"], out["output_dist_params"])
    # posterior variances of g0 are at least ic_post_var_min
    assert np.all(np.exp(out["post_g0_logvar"]) >= 1e-4 * (1 - 1e-5))


@pytest.fixture(scope="module")
def sample_and_average(model):
    bundle = td.run(model["flags"] + ["--kind=posterior_sample_and_average"])
    return {"bundle": bundle,
            "step": int(bundle.state.global_step.numpy()),
            "train": read(model, "model_runs_set0_train_posterior_sample_and_average"),
            "valid": read(model, "model_runs_set0_valid_posterior_sample_and_average")}


@pytest.fixture(scope="module")
def push_mean(model):
    # different seeds: everything but the costs must not depend on random numbers
    td.run(model["flags"] + ["--kind=posterior_push_mean", "--seed=1"])
    td.run(model["flags"] + ["--kind=posterior_push_mean", "--output_filename_stem=again_",
                             "--seed=2"])
    return {split: (read(model, "model_runs_set0_%s_posterior_push_mean" % split),
                    read(model, "again_set0_%s_posterior_push_mean" % split))
            for split in ("train", "valid")}


# ------------------------------------------------------------------ posterior kinds
def test_sample_and_average_keys_shapes_dtypes(sample_and_average):
    assert sample_and_average["step"] == td.MAIN_EPOCHS * 10
    check_posterior_file(sample_and_average["train"], E_TRAIN, sample_and_average["step"])
    check_posterior_file(sample_and_average["valid"], E_VALID, sample_and_average["step"])


def test_sample_and_average_bounds(sample_and_average):
    out = sample_and_average["valid"]
    # IWAE bound (B samples) is at least as tight as the VAE bound
    assert np.all(out["nll_bound_iwaes"] <= out["nll_bound_vaes"] + 1e-3)
    assert np.all(out["costs"] > 0)


def test_averaged_rates_track_truth_better_than_spikes(model, sample_and_average):
    data = model["data"]
    for split in ("train", "valid"):
        rates = sample_and_average[split]["output_dist_params"]
        truth, counts = data[split + "_truth"], data[split + "_data"]
        r_rates, r_counts = td.corr(rates, truth), td.corr(counts, truth)
        assert r_rates > r_counts + 0.02, (split, r_rates, r_counts)
        # R^2 of the rates against the truth beats that of the raw counts, too
        ss = np.sum((truth - truth.mean()) ** 2)
        r2_rates = 1 - np.sum((rates - truth) ** 2) / ss
        r2_counts = 1 - np.sum((counts - truth) ** 2) / ss
        assert r2_rates > r2_counts, (split, r2_rates, r2_counts)


def test_push_mean_keys_shapes_and_stem(push_mean):
    for split, n in (("train", E_TRAIN), ("valid", E_VALID)):
        for out in push_mean[split]:
            check_posterior_file(out, n, td.MAIN_EPOCHS * 10)


def test_push_mean_is_deterministic(push_mean):
    for split in ("train", "valid"):
        first, second = push_mean[split]
        for key in PUSH_MEAN_DETERMINISTIC:
            np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def test_push_mean_and_average_agree_on_the_posterior(push_mean, sample_and_average):
    pm = push_mean["valid"][0]
    ps = sample_and_average["valid"]
    for key in ("post_g0_mean", "post_g0_logvar", "prior_g0_mean", "prior_g0_logvar"):
        np.testing.assert_allclose(pm[key], ps[key], rtol=1e-5, atol=1e-5, err_msg=key)
    # the mean over samples of the rates is close to the rates at the posterior mean
    assert td.corr(pm["output_dist_params"], ps["output_dist_params"]) > 0.95


def test_ps_nexamples_to_process(model):
    for kind in ("posterior_sample_and_average", "posterior_push_mean"):
        td.run(model["flags"] + ["--kind=" + kind, "--ps_nexamples_to_process=5",
                                 "--output_filename_stem=few"])
        for split in ("train", "valid"):
            out = read(model, "fewset0_%s_%s" % (split, kind))
            check_posterior_file(out, 5, td.MAIN_EPOCHS * 10)


def _sample_in_chunks(model, sample_and_average, monkeypatch, rows, trials, stem, seed):
    """posterior_sample_and_average of the first `trials` validation trials with chunks
    of `rows` rows: (its valid file, the same trials of the default-chunk run)."""
    monkeypatch.setattr(kinds, "ROWS_PER_CHUNK", rows)
    td.run(model["flags"] + ["--kind=posterior_sample_and_average",
                             "--ps_nexamples_to_process=%d" % trials,
                             "--output_filename_stem=" + stem, "--seed=%d" % seed])
    out = read(model, stem + "set0_valid_posterior_sample_and_average")
    return out, {k: v[:trials] for k, v in sample_and_average["valid"].items()}


def test_sampling_results_do_not_depend_on_chunking(model, sample_and_average,
                                                    monkeypatch):
    # B=16 samples a trial: 32 rows a chunk = 2 trials a chunk
    chunked, whole = _sample_in_chunks(model, sample_and_average, monkeypatch,
                                       rows=32, trials=11, stem="chunked_", seed=3)
    assert sorted(chunked) == sorted(whole)
    for key in whole:
        assert chunked[key].shape == whole[key].shape, key
    for key in DETERMINISTIC_PS:
        np.testing.assert_allclose(chunked[key], whole[key], rtol=1e-5, atol=1e-5,
                                   err_msg=key)
    # sampled quantities differ by sampling noise only
    for key in ("output_dist_params", "factors", "gen_states"):
        assert not np.array_equal(chunked[key], whole[key]), key
        assert td.corr(chunked[key], whole[key]) > 0.95, key
    np.testing.assert_allclose(chunked["nll_bound_vaes"], whole["nll_bound_vaes"],
                               rtol=0.1)


def test_sample_passes():
    assert kinds.sample_passes(16, 4096) == [16]
    assert kinds.sample_passes(16, 8) == [8, 8]
    assert kinds.sample_passes(1001, 300) == [251, 251, 251, 248]
    for n, rows in ((16, 6), (1024, 1024), (2049, 1024), (7, 1)):
        passes = kinds.sample_passes(n, rows)
        assert sum(passes) == n and max(passes) <= rows and len(set(passes)) <= 2


def test_combine_passes_equals_one_pass():
    rs = np.random.RandomState(0)
    lb_kxs = rs.normal(size=(3, 10)) * 5
    x_kxsx2 = rs.normal(size=(3, 10, 2))

    def one_pass(lb, x):
        n = lb.shape[1]
        lse = np.log(np.sum(np.exp(lb), axis=1))
        return {"factors": x.mean(axis=1), "nll_bound_vaes": -lb.mean(axis=1),
                "nll_bound_iwaes": -(lse - np.log(n))}

    whole = one_pass(lb_kxs, x_kxsx2)
    parts = [one_pass(lb_kxs[:, i:j], x_kxsx2[:, i:j]) for i, j in ((0, 4), (4, 8), (8, 10))]
    combined = kinds.combine_passes(parts, [4, 4, 2])
    for key in whole:
        np.testing.assert_allclose(combined[key], whole[key], rtol=1e-12, err_msg=key)


def test_trials_with_more_samples_than_a_chunk_are_sampled_in_passes(
        model, sample_and_average, monkeypatch):
    # B=16 samples a trial, 6 rows a chunk: passes of 6, 6 and 4 samples
    passes, whole = _sample_in_chunks(model, sample_and_average, monkeypatch,
                                      rows=6, trials=5, stem="passes_", seed=4)
    check_posterior_file(passes, 5, sample_and_average["step"])
    for key in DETERMINISTIC_PS:
        np.testing.assert_allclose(passes[key], whole[key], rtol=1e-5, atol=1e-5,
                                   err_msg=key)
    for key in ("output_dist_params", "factors", "gen_states"):
        assert td.corr(passes[key], whole[key]) > 0.95, key
    assert np.all(passes["nll_bound_iwaes"] <= passes["nll_bound_vaes"] + 1e-3)
    np.testing.assert_allclose(passes["nll_bound_vaes"], whole["nll_bound_vaes"], rtol=0.1)


# ------------------------------------------------------------------ prior_sample
def check_prior_file(out, d):
    shapes = {"gen_ics": (B, G), "gen_states": (B, T, G), "factors": (B, T, F),
              "output_dist_params": (B, T, d), "costs": (1,),
              "prior_g0_mean": (B, Z), "prior_g0_logvar": (B, Z),
              "prior_zs_ar_con": (B, T, U)}
    assert sorted(out) == sorted(shapes)
    for key, shape in shapes.items():
        assert out[key].shape == shape, key
        assert np.all(np.isfinite(out[key])), key
    for key in ("gen_states", "factors", "output_dist_params", "prior_zs_ar_con"):
        assert out[key].dtype == np.float64, key
    for key in ("gen_ics", "costs", "prior_g0_mean", "prior_g0_logvar"):
        assert out[key].dtype == np.float32, key
    assert np.all(out["output_dist_params"] > 0)
    # different trials from the prior differ
    assert not np.allclose(out["factors"][0], out["factors"][1])


def test_prior_sample(model):
    td.run(model["flags"] + ["--kind=prior_sample"])
    check_prior_file(read(model, "model_runs_prior_sample"), D)
    td.run(model["flags"] + ["--kind=prior_sample", "--output_filename_stem=stem_"])
    check_prior_file(read(model, "stem_prior_sample"), D)


@pytest.fixture(scope="module")
def multi():
    return td.multi_model()


def test_prior_sample_dataset_picks_the_readout(multi):
    save = multi["save_dir"]
    base = multi["flags"] + ["--kind=prior_sample"]
    td.run(base + ["--output_filename_stem=default_"])
    td.run(base + ["--prior_sample_dataset=set1", "--output_filename_stem=set1_"])
    first = utils.read_data(os.path.join(save, "default_prior_sample"))
    second = utils.read_data(os.path.join(save, "set1_prior_sample"))
    # the first dataset in sorted order by default
    assert first["output_dist_params"].shape == (B, T, td.MULTI_DIMS["set0"])
    assert second["output_dist_params"].shape == (B, T, td.MULTI_DIMS["set1"])
    assert first["factors"].shape == (B, T, td.MULTI_FACTORS)
    with pytest.raises(errors.UsageError, match="prior_sample_dataset=nope"):
        td.run(base + ["--prior_sample_dataset=nope"])


# ------------------------------------------------------------------ write_model_params
def test_write_model_params_equals_trained_variables(model):
    bundle = td.run(model["flags"] + ["--kind=write_model_params"])
    out = read(model, "model_params")
    trained = model["params"]  # evaluation.model_params of the trained bundle
    assert sorted(out) == sorted(trained)
    for key, value in trained.items():
        np.testing.assert_array_equal(out[key], value, err_msg=key)
    assert "LFADS_gen_GenGRU_Gates_h_2_ru_W:0" in out
    assert out["LFADS_gen_GenGRU_Gates_h_2_ru_W:0"].shape == (G, 2 * G)
    assert int(out["LFADS_global_step:0"]) == td.MAIN_EPOCHS * 10
    assert "LFADS_LFADS_gen_GenGRU_Gates_h_2_ru_W_Adam:0" in out
    assert "LFADS_beta1_power:0" in out and "LFADS_learning_rate:0" in out
    assert int(bundle.state.global_step.numpy()) == td.MAIN_EPOCHS * 10
    # every value is a tensor of the checkpoint itself (not only of the model object)
    latest = checkpoints.read_checkpoint_state(model["save_dir"], "checkpoint")[-1]
    in_ckpt = {(np.shape(v), np.asarray(v).tobytes())
               for v in td.checkpoint_values(latest).values()}
    for key, value in out.items():
        value = np.asarray(value)
        assert (value.shape, value.tobytes()) in in_ckpt, key


def test_write_model_params_stem(model):
    td.run(model["flags"] + ["--kind=write_model_params", "--output_filename_stem=mine"])
    assert os.path.isfile(out_path(model, "mine_model_params"))


def test_checkpoint_lve_is_loaded(model):
    lve = checkpoints.read_checkpoint_state(model["save_dir"], "checkpoint_lve")[-1]
    lve_step = checkpoints.step_of_checkpoint(lve)
    td.run(model["flags"] + ["--kind=write_model_params",
                             "--checkpoint_pb_load_name=checkpoint_lve",
                             "--output_filename_stem=lve"])
    out = read(model, "lve_model_params")
    assert int(out["LFADS_global_step:0"]) == lve_step
    values = td.checkpoint_values(lve)
    w = out["LFADS_gen_GenGRU_Gates_h_2_ru_W:0"]
    assert any(np.shape(v) == w.shape and np.array_equal(w, v) for v in values.values())
    # posterior sampling from the LVE checkpoint reports its step
    td.run(model["flags"] + ["--kind=posterior_push_mean",
                             "--checkpoint_pb_load_name=checkpoint_lve",
                             "--ps_nexamples_to_process=3", "--output_filename_stem=lve_"])
    assert np.all(read(model, "lve_set0_valid_posterior_push_mean")["train_steps"]
                  == lve_step)


# ------------------------------------------------------------------ errors
def test_no_checkpoint_is_a_one_line_error(model, tmp_path):
    empty = str(tmp_path / "empty")
    os.makedirs(empty)
    flags = [f for f in model["flags"] if not f.startswith("--lfads_save_dir")]
    for kind in ("posterior_push_mean", "write_model_params"):
        with pytest.raises(errors.LfadsError) as err:
            td.run(flags + ["--lfads_save_dir=" + empty, "--kind=" + kind])
        msg = str(err.value)
        assert "\n" not in msg and empty in msg and "no checkpoint" in msg
    with pytest.raises(errors.LfadsError, match="checkpoint_lve"):
        td.run(flags + ["--lfads_save_dir=" + empty,
                        "--kind=prior_sample", "--checkpoint_pb_load_name=checkpoint_lve"])


@pytest.mark.parametrize("flag, name", [("--gen_dim=32", "gen_dim"),
                                        ("--co_dim=0", "co_dim"),
                                        ("--output_dist=gaussian", "output_dist")])
def test_architecture_mismatch_names_the_flag(model, flag, name):
    with pytest.raises(errors.LfadsError) as err:
        td.run(model["flags"] + ["--kind=posterior_push_mean", flag])
    msg = str(err.value)
    assert "\n" not in msg and name in msg, msg


def test_unseeded_run_after_seeded_training_in_the_same_process(model, tmp_path):
    # a seeded training run (0 epochs: build, restore, save) in this process ...
    flags = [f for f in model["flags"] if not f.startswith("--lfads_save_dir")]
    td.run(flags + ["--lfads_save_dir=" + str(tmp_path / "seeded"), "--max_epochs=0",
                    "--seed=1"])
    # ... then an evaluation without --seed
    td.run(model["flags"] + ["--kind=posterior_push_mean", "--ps_nexamples_to_process=2",
                             "--output_filename_stem=unseeded_"], default_seed=None)
    assert os.path.isfile(out_path(model, "unseeded_set0_valid_posterior_push_mean"))


def test_every_kind_flag_value_has_an_evaluation_function():
    """--kind's values are training plus the evaluation table's kinds, in one place each."""
    from lfads_tf2.train import flags as run_flags
    assert set(run_flags.KINDS) == {"train"} | set(kinds.KINDS)
    assert all(callable(f) for f in kinds.KINDS.values())
