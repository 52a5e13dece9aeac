"""The model's variables: names and shapes as the original LFADS creates them (its
lfads.py), the trainable parameter counts it prints, the read-in and read-out initialised
from alignment matrices, and which variables the training flags select."""
import re

import numpy as np
import pytest
import tensorflow as tf

import lfads
from lfads_reference import (FORWARD_CONFIGS, T_STEPS, TINY, assert_close as _close,
                             make_hps, make_model, np_forward_posterior_mean, params_of)


# ------------------------------------------------------------------ names, shapes and counts
# the "Total model parameters" the original prints for these flags
@pytest.mark.parametrize("flags,count", [
    ([], 620044),
    (["--factors_dim=20"], 603574),
    (["--co_dim=0", "--factors_dim=20"], 309338),
])
def test_trainable_parameter_counts(flags, count):
    hps = make_hps(flags, {"ds": {"data_dim": 50, "num_steps": 10}})
    model = lfads.LFADS(hps, {"ds": {"data_dim": 50}}, init_seed=0)
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == count
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables_to_train()) == count


def _expected_inventory():
    """The original's variables (names and shapes as its lfads.py creates them) for
    TINY + co_dim=2, one dataset 'ds' (D=5), identity read-in."""
    D, Eic, Eci, Z, U, C, G, F = 5, 4, 3, 3, 2, 5, 4, 3
    inv = {}
    for kind, E in (("ic", Eic), ("ci", Eci)):
        for d in ("fwd", "rev"):
            s = "LFADS/%s_enc_%s/" % (kind, d)
            inv[s + "%s_enc_t0_%s" % (kind, d)] = (1, E)
            inv[s + "GRU/Gates/xh_2_ru/W"] = (D + E, 2 * E)
            inv[s + "GRU/Gates/xh_2_ru/b"] = (1, 2 * E)
            inv[s + "GRU/Candidate/xrh_2_c/W"] = (D + E, E)
            inv[s + "GRU/Candidate/xrh_2_c/b"] = (1, E)
    inv["LFADS/z/prior_g0/mean"] = (1, Z)
    inv["LFADS/z/prior_g0/logvar"] = (1, Z)
    for p in ("mean", "logvar"):
        inv["LFADS/z/ic_enc_2_post_g0/%s/W" % p] = (2 * Eic, Z)
        inv["LFADS/z/ic_enc_2_post_g0/%s/b" % p] = (1, Z)
        inv["LFADS/con/con_to_post_co/%s/W" % p] = (C, U)
        inv["LFADS/con/con_to_post_co/%s/b" % p] = (1, U)
    inv["LFADS/z/u_prior_ar1/logevars"] = (1, U)
    inv["LFADS/z/u_prior_ar1/logatau"] = (1, U)
    inv["LFADS/con/c0"] = (1, C)
    for scope, n, n_in in (("con", C, 2 * Eci + F), ("gen", G, U)):
        s = "LFADS/%s/GenGRU/" % scope
        inv[s + "Gates/x_2_ru/W"] = (n_in, 2 * n)
        inv[s + "Gates/h_2_ru/W"] = (n, 2 * n)
        inv[s + "Gates/h_2_ru/b"] = (1, 2 * n)
        inv[s + "Candidate/x_2_c/W"] = (n_in, n)
        inv[s + "Candidate/rh_2_c/W"] = (n, n)
        inv[s + "Candidate/rh_2_c/b"] = (1, n)
    inv["LFADS/gen/g0_2_gen_ic/W"] = (Z, G)
    inv["LFADS/gen/g0_2_gen_ic/b"] = (1, G)
    inv["LFADS/gen/gen_2_fac/W"] = (G, F)
    inv["LFADS/glm/fac_2_logrates_ds/W"] = (F, D)
    inv["LFADS/glm/fac_2_logrates_ds/b"] = (1, D)
    return inv


def test_variable_names_and_shapes_follow_original_inventory():
    _, model = make_model(TINY + ["--co_dim=2"], perturb=0)
    names = [v.name for v in model.variables]
    assert len(names) == len(set(names)), "duplicate variable names"
    assert all(n.endswith(":0") for n in names)
    got = {v.name[:-2]: tuple(v.shape) for v in model.variables}
    assert got == _expected_inventory()
    assert "LFADS/gen/GenGRU/Gates/h_2_ru/W" in got
    trainable = {v.name[:-2] for v in model.trainable_variables}
    assert set(got) - trainable == {"LFADS/z/prior_g0/logvar"}
    # no read-in for a single dataset without alignment
    assert not any("x_2_infac" in n for n in got)
    assert model.variables_by_name().keys() == got.keys()


def test_variable_names_unique_in_every_forward_config():
    for flags in FORWARD_CONFIGS.values():
        _, model = make_model(TINY + flags, perturb=0)
        names = [v.name for v in model.variables]
        assert len(names) == len(set(names)), flags
        assert all(re.match(r"^LFADS/[A-Za-z0-9_/]+:0$", n) for n in names), names


# ------------------------------------------------------------------ read-in / read-out
def _alignment(seed=0):
    rs = np.random.RandomState(seed)
    return {"a": {"data_dim": 5, "alignment_matrix_cxf": rs.randn(5, 3),
                  "alignment_bias_c": rs.randn(5)},
            "b": {"data_dim": 4, "alignment_matrix_cxf": rs.randn(4, 3),
                  "alignment_bias_c": None}}


def test_multi_dataset_readin_and_readout_from_alignment():
    info = _alignment()
    _, model = make_model(TINY + ["--co_dim=2"], info=info, perturb=0)
    P = params_of(model)
    ma, ba = info["a"]["alignment_matrix_cxf"], info["a"]["alignment_bias_c"]
    mb = info["b"]["alignment_matrix_cxf"]
    _close(P["LFADS/x_2_infac_a/W"], ma, rtol=1e-6)
    _close(P["LFADS/x_2_infac_a/b"], -(ba[None, :] @ ma), rtol=1e-6)
    _close(P["LFADS/glm/fac_2_logrates_a/W"], ma.T, rtol=1e-6)
    _close(P["LFADS/glm/fac_2_logrates_a/b"], ba[None, :], rtol=1e-6)
    _close(P["LFADS/x_2_infac_b/W"], mb, rtol=1e-6)
    _close(P["LFADS/x_2_infac_b/b"], np.zeros((1, 3)))
    _close(P["LFADS/glm/fac_2_logrates_b/W"], mb.T, rtol=1e-6)
    # b has no bias of its own: it does not inherit a's (the original's read-out
    # loop leaks the previous dataset's bias into a dataset without one)
    _close(P["LFADS/glm/fac_2_logrates_b/b"], np.zeros((1, 4)))
    # the read-in realises (x - bias) W
    x = np.random.RandomState(1).randn(2, 6, 5)
    _close(model.readinout.readins["a"](tf.constant(x, tf.float32)), (x - ba) @ ma, atol=1e-4)
    # the encoders see F = 3 input factors
    assert P["LFADS/ic_enc_fwd/GRU/Gates/xh_2_ru/W"].shape == (3 + 4, 8)
    for name, D in (("a", 5), ("b", 4)):
        x = np.random.RandomState(2).poisson(1.0, size=(2, T_STEPS, D))
        out = model.forward(name, x, None, tf.random.Generator.from_seed(0),
                            "posterior_mean")
        assert out.rates_bxtxd.shape == (2, T_STEPS, D)


def test_forward_multi_dataset_matches_numpy():
    info = _alignment(3)
    hps, model = make_model(TINY + ["--co_dim=2"], info=info)
    for name, D in (("a", 5), ("b", 4)):
        x = np.random.RandomState(4).poisson(1.0, size=(3, T_STEPS, D)).astype(np.int32)
        out = model.forward(name, x, None, tf.random.Generator.from_seed(0),
                            "posterior_mean")
        ref = np_forward_posterior_mean(params_of(model), hps, name, x, None)
        for key in ("factors_bxtxf", "rates_bxtxd", "co_post_mean_bxtxu", "ic_post_mean_bxz"):
            _close(getattr(out, key), ref[key], msg="%s %s" % (name, key))
        _close(out.log_p_xgz_b, ref["log_p_xgz_b"], atol=2e-4)


def test_single_dataset_with_alignment_has_learned_readin():
    rs = np.random.RandomState(5)
    m = rs.randn(5, 3)
    _, model = make_model(TINY + ["--co_dim=0"],
                          info={"ds": {"data_dim": 5, "alignment_matrix_cxf": m}}, perturb=0)
    P = params_of(model)
    _close(P["LFADS/x_2_infac_ds/W"], m, rtol=1e-6)
    _close(P["LFADS/x_2_infac_ds/b"], np.zeros((1, 3)))
    _close(P["LFADS/glm/fac_2_logrates_ds/W"], m.T, rtol=1e-6)
    assert P["LFADS/ic_enc_fwd/GRU/Gates/xh_2_ru/W"].shape == (3 + 4, 8)


def test_gaussian_readout_init():
    info = {"ds": {"data_dim": 3}}
    _, model = make_model(["--output_dist=gaussian", "--co_dim=0", "--ic_dim=3",
                           "--factors_dim=3", "--gen_dim=4", "--ic_enc_dim=4"],
                          info=info, perturb=0)
    P = params_of(model)
    # F == D but the identity shortcut is not allowed for Gaussian means
    assert P["LFADS/glm/fac_2_means_ds/W"].shape == (3, 3)
    assert P["LFADS/glm/fac_2_means_ds/W"].std() > 0.1
    _close(P["LFADS/glm/fac_2_means_ds/b"], np.zeros((1, 3)))
    _close(P["LFADS/glm/fac_2_logvars_ds/W"], np.zeros((3, 3)))
    _close(P["LFADS/glm/fac_2_logvars_ds/b"], np.ones((1, 3)))


# ------------------------------------------------------------------ which variables train
def _names(vs):
    return {v.name[:-2] for v in vs}


def test_train_io_only_selects_readins_and_readouts():
    info = _alignment()
    _, model = make_model(TINY + ["--co_dim=2", "--do_train_io_only=true"], info=info,
                          perturb=0)
    assert _names(model.trainable_variables_to_train()) == {
        "LFADS/x_2_infac_a/W", "LFADS/x_2_infac_a/b", "LFADS/x_2_infac_b/W",
        "LFADS/x_2_infac_b/b", "LFADS/glm/fac_2_logrates_a/W",
        "LFADS/glm/fac_2_logrates_a/b", "LFADS/glm/fac_2_logrates_b/W",
        "LFADS/glm/fac_2_logrates_b/b"}
    # io_only wins over encoder_only
    _, model = make_model(TINY + ["--co_dim=2", "--do_train_io_only=true",
                                  "--do_train_encoder_only=true"], info=info, perturb=0)
    assert all("glm" in n or "x_2_infac" in n
               for n in _names(model.trainable_variables_to_train()))


def test_train_io_only_without_readin_training():
    info = _alignment()
    _, model = make_model(TINY + ["--co_dim=2", "--do_train_io_only=true",
                                  "--do_train_readin=false"], info=info, perturb=0)
    assert _names(model.trainable_variables_to_train()) == {
        "LFADS/glm/fac_2_logrates_a/W", "LFADS/glm/fac_2_logrates_a/b",
        "LFADS/glm/fac_2_logrates_b/W", "LFADS/glm/fac_2_logrates_b/b"}
    readin = {n for n in params_of(model) if "x_2_infac" in n}
    assert len(readin) == 4
    assert not readin & _names(model.trainable_variables)
    # and the full selection excludes them too
    _, model = make_model(TINY + ["--co_dim=2", "--do_train_readin=false"], info=info,
                          perturb=0)
    assert not readin & _names(model.trainable_variables_to_train())


def test_train_encoder_only_selects_ic_encoder_and_posterior():
    info = _alignment()
    _, model = make_model(TINY + ["--co_dim=2", "--do_train_encoder_only=true"], info=info,
                          perturb=0)
    got = _names(model.trainable_variables_to_train())
    expected = set()
    for d in ("fwd", "rev"):
        s = "LFADS/ic_enc_%s/" % d
        expected |= {s + "ic_enc_t0_" + d, s + "GRU/Gates/xh_2_ru/W",
                     s + "GRU/Gates/xh_2_ru/b", s + "GRU/Candidate/xrh_2_c/W",
                     s + "GRU/Candidate/xrh_2_c/b"}
    for p in ("mean", "logvar"):
        expected |= {"LFADS/z/ic_enc_2_post_g0/%s/W" % p, "LFADS/z/ic_enc_2_post_g0/%s/b" % p}
    assert got == expected


def test_default_selection_is_all_trainable_variables():
    _, model = make_model(TINY + ["--co_dim=2"], info=_alignment(), perturb=0)
    got = _names(model.trainable_variables_to_train())
    assert got == _names(model.trainable_variables)
    assert "LFADS/z/prior_g0/logvar" not in got       # fixed prior variance
    assert "LFADS/x_2_infac_a/W" in got and "LFADS/ci_enc_rev/ci_enc_t0_rev" in got
