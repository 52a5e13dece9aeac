"""The four evaluation kinds on multi-session models (one file per session).

Three sessions of different widths with alignment matrices, a controller and a
2-channel external input, trained one epoch; then the same with a causal
controller, without factor feedback to the controller, and with the external
inputs injected into the generator. Both models are trained and evaluated by a
background job (tests/background.py) while the tests before this module run.
"""
import json
import os
import shutil

import numpy as np
import pytest

import background
import conftest
import lfads_testdata as td

from lfads_tf2 import errors
from lfads_tf2.train import checkpoints, steps
import utils

T, Z, G, F, U, B = 20, 6, 24, 5, 1, 16   # num_steps, ic_dim, gen_dim, factors, co_dim, batch
E = {"train": 32, "valid": 16}
DIMS = td.SESSION_DIMS
NAMES = sorted(DIMS)
POSTERIOR_KINDS = ("posterior_sample_and_average", "posterior_push_mean")
# The second model combines three flags no README example uses; each changes another
# part of the network (encoders, controller input, generator input), and one model
# instead of three keeps this module quick.
VARIANTS = {
    "base": [],
    "causal_nofeedback_inject": ["--do_causal_controller=true",
                                 "--do_feed_factors_to_controller=false",
                                 "--inject_ext_input_to_gen=true"],
}


@pytest.fixture(scope="module", autouse=True)
def _reset_determinism():
    yield
    conftest.reset_op_determinism()


def variant_flags(root, variant):
    return ["--data_dir=" + os.path.join(root, "data"), "--data_filename_stem=" + td.STEM,
            "--lfads_save_dir=" + os.path.join(root, "save"),
            "--ext_input_dim=%d" % td.SESSION_EXT] + td.TINY_MODEL + VARIANTS[variant]


def train_sessions(folder):
    """Background job (tests/background.py): for each variant, a 3-session model trained
    1 epoch, then posterior_sample_and_average, posterior_push_mean and
    write_model_params on it; the step trained to goes to <variant>/step.json."""
    for variant in sorted(VARIANTS):
        root = os.path.join(folder, variant)
        flags = variant_flags(root, variant)
        td.write_sessions(os.path.join(root, "data"), T=T, n_train=E["train"],
                          n_valid=E["valid"])
        bundle = td.run(flags + ["--max_epochs=1", "--seed=4"])
        with open(os.path.join(root, "step.json"), "w") as f:
            json.dump(int(bundle.state.global_step.numpy()), f)
        # sample_and_average with 4 samples a trial (the batch size) keeps it quick
        td.run(flags + ["--kind=posterior_sample_and_average", "--batch_size=4"])
        td.run(flags + ["--kind=posterior_push_mean"])
        td.run(flags + ["--kind=write_model_params"])


BACKGROUND = {"model": train_sessions}


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def model(request):
    """A 3-session model trained 1 epoch, and all four kinds run on it (a background
    job); the model restored here (write_model_params again) for the eager checks."""
    root = os.path.join(background.result(train_sessions), request.param)
    flags = variant_flags(root, request.param)
    assert "--factors_dim=%d" % F in flags and "--co_dim=%d" % U in flags
    with open(os.path.join(root, "step.json")) as f:
        step = json.load(f)
    assert step == sum(E["train"] // B for _ in NAMES)
    datas = {name: utils.read_data(os.path.join(root, "data", "%s_%s" % (td.STEM, name)))
             for name in NAMES}
    restored = td.run(flags + ["--kind=write_model_params"])
    assert int(restored.state.global_step.numpy()) == step
    return {"variant": request.param, "flags": flags, "save_dir": os.path.join(root, "save"),
            "data": datas, "step": step, "push_bundle": restored}


def read(save_dir, name):
    path = os.path.join(save_dir, name)
    assert os.path.isfile(path), "%s missing; folder has %s" % (name, sorted(os.listdir(
        save_dir)))
    return utils.read_data(path)


def posterior_shapes(n, D):
    return {"prior_g0_mean": (n, Z), "prior_g0_logvar": (n, Z), "post_g0_mean": (n, Z),
            "post_g0_logvar": (n, Z), "gen_ics": (n, G), "controller_outputs": (n, T, U),
            "gen_states": (n, T, G), "factors": (n, T, F), "output_dist_params": (n, T, D),
            "output_dist_mean": (n, T, D), "costs": (n,), "nll_bound_vaes": (n,), "nll_bound_iwaes": (n,),
            "train_steps": (n,)}


def test_one_posterior_file_per_session_and_split(model):
    save = model["save_dir"]
    for kind in POSTERIOR_KINDS:
        written = sorted(f for f in os.listdir(save) if f.endswith("_" + kind))
        assert written == sorted("model_runs_%s_%s_%s" % (n, split, kind)
                                 for n in NAMES for split in ("train", "valid"))
        for name in NAMES:
            for split in ("train", "valid"):
                out = read(save, "model_runs_%s_%s_%s" % (name, split, kind))
                shapes = posterior_shapes(E[split], DIMS[name])
                assert sorted(out) == sorted(shapes), (kind, name, split)
                for key, shape in shapes.items():
                    assert out[key].shape == shape, (kind, name, split, key)
                    assert out[key].dtype == np.float64, (kind, name, split, key)
                    assert np.all(np.isfinite(out[key])), (kind, name, split, key)
                assert np.all(out["train_steps"] == model["step"])
                assert np.all(out["output_dist_params"] > 0)


def test_push_mean_of_each_session_is_that_session_alone(model):
    """Each file equals the model run eagerly on that session's data only."""
    bundle = model["push_bundle"]
    for name in NAMES:
        d = model["data"][name]
        for split in ("train", "valid"):
            out = read(model["save_dir"], "model_runs_%s_%s_posterior_push_mean"
                       % (name, split))
            data = np.asarray(d[split + "_data"], np.float32)
            ext = np.asarray(d[split + "_ext_input"], np.float32)
            alone = bundle.model.forward(name, data, ext, bundle.rng, "posterior_mean")
            for key, value in (("factors", alone.factors_bxtxf),
                               ("gen_states", alone.gen_states_bxtxg),
                               ("output_dist_params", alone.output_params_bxtxp),
                               ("controller_outputs", alone.co_bxtxu),
                               ("post_g0_mean", alone.ic_post_mean_bxz)):
                np.testing.assert_allclose(out[key], value.numpy(), rtol=1e-4, atol=1e-5,
                                           err_msg="%s %s %s" % (name, split, key))


def test_other_sessions_data_do_not_change_a_session(model, tmp_path):
    """New data in sessions s1 and s2 leave the push-mean outputs of s0 as they were."""
    if model["variant"] != "base":
        pytest.skip("checked once, on the base model")
    data_dir = str(tmp_path / "data")
    shutil.copytree([f.split("=", 1)[1] for f in model["flags"]
                     if f.startswith("--data_dir=")][0], data_dir)
    for i, name in enumerate(NAMES[1:]):
        d = td.make_dataset(seed=90 + i, n_train=E["train"], n_valid=E["valid"], T=T,
                            D=DIMS[name], ext_input_dim=td.SESSION_EXT)
        d.update({k: v for k, v in model["data"][name].items() if k.startswith("align")})
        os.remove(os.path.join(data_dir, "%s_%s" % (td.STEM, name)))
        utils.write_data(os.path.join(data_dir, "%s_%s" % (td.STEM, name)), d)
    flags = [f for f in model["flags"] if not f.startswith("--data_dir=")]
    td.run(flags + ["--data_dir=" + data_dir, "--kind=posterior_push_mean",
                    "--output_filename_stem=other_"])
    save = model["save_dir"]
    for split in ("train", "valid"):
        base = read(save, "model_runs_s0_%s_posterior_push_mean" % split)
        again = read(save, "other_s0_%s_posterior_push_mean" % split)
        for key in ("factors", "output_dist_params", "gen_states", "post_g0_mean"):
            np.testing.assert_array_equal(base[key], again[key], err_msg=key)
        changed = read(save, "other_s1_%s_posterior_push_mean" % split)
        assert not np.allclose(
            changed["factors"], read(save, "model_runs_s1_%s_posterior_push_mean"
                                     % split)["factors"])


def test_prior_sample_reads_out_through_each_session(model):
    save = model["save_dir"]
    if "--inject_ext_input_to_gen=true" in model["flags"]:
        with pytest.raises(errors.LfadsError, match="inject_ext_input_to_gen"):
            td.run(model["flags"] + ["--kind=prior_sample"])
        return
    for name in (None, "s1", "s2"):
        extra = [] if name is None else ["--prior_sample_dataset=" + name,
                                         "--output_filename_stem=%s_" % name]
        td.run(model["flags"] + ["--kind=prior_sample"] + extra)
        out = read(save, "model_runs_prior_sample" if name is None
                   else "%s_prior_sample" % name)
        shapes = {"gen_ics": (B, G), "gen_states": (B, T, G), "factors": (B, T, F),
                  "output_dist_params": (B, T, DIMS[name or NAMES[0]]), "costs": (1,),
                  "prior_g0_mean": (B, Z), "prior_g0_logvar": (B, Z),
                  "prior_zs_ar_con": (B, T, U)}
        assert sorted(out) == sorted(shapes)
        for key, shape in shapes.items():
            assert out[key].shape == shape, (name, key)
            assert np.all(np.isfinite(out[key])), (name, key)


def test_model_params_hold_every_sessions_read_in_and_read_out(model):
    out = read(model["save_dir"], "model_params")
    latest = checkpoints.read_checkpoint_state(model["save_dir"], "checkpoint")[-1]
    in_ckpt = {np.asarray(v).tobytes() for v in td.checkpoint_values(latest).values()}
    for name in NAMES:
        D = DIMS[name]
        for key, shape in (("LFADS_x_2_infac_%s_W:0", (D, F)), ("LFADS_x_2_infac_%s_b:0",
                                                                (1, F)),
                           ("LFADS_glm_fac_2_logrates_%s_W:0", (F, D)),
                           ("LFADS_glm_fac_2_logrates_%s_b:0", (1, D))):
            assert out[key % name].shape == shape, key % name
            assert np.asarray(out[key % name]).tobytes() in in_ckpt, key % name
    assert int(out["LFADS_global_step:0"]) == model["step"]


def test_one_trace_for_all_sessions_and_no_retracing_warning(tmp_path, capfd,
                                                             monkeypatch):
    """Five sessions: each compiled step is traced once, and TensorFlow does not warn."""
    made = []
    for maker in ("make_train_step", "make_eval_step"):
        real = getattr(steps, maker)
        monkeypatch.setattr(steps, maker,
                            lambda *a, real=real: made.append(real(*a)) or made[-1])
    dims = {"a%d" % i: 6 + i for i in range(5)}
    data_dir = str(tmp_path / "data")
    td.write_sessions(data_dir, T=10, dims=dims)
    flags = ["--data_dir=" + data_dir, "--data_filename_stem=" + td.STEM,
             "--lfads_save_dir=" + str(tmp_path / "save")] + td.TINY_NO_CONTROLLER
    # 32 training trials a session: two steps each, ten in all
    td.run(flags + ["--batch_size=16", "--max_epochs=1"])
    assert len(made) == 2
    for fn in made:
        assert fn.experimental_get_tracing_count() == 1
    err = capfd.readouterr().err
    assert "retracing" not in err, err[-2000:]
