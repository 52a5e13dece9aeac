"""A model trained by the original LFADS, imported, reproduces its outputs.

tests/data/reference_original holds the original's TF1 checkpoint and its
posterior_push_mean outputs on a small data set (see its MANIFEST.md). It is part of
the repository, so these tests run on every clone: missing data fail, never skip.
Training the imported model on runs as a background job (tests/background.py).
"""
import json
import os

import h5py
import numpy as np
import pytest

import background
from conftest import REFERENCE


MODEL_FLAGS = [
    "--data_filename_stem=chaotic_rnn_inputs_g2p5", "--output_dist=poisson", "--co_dim=1",
    "--controller_input_lag=1", "--do_feed_factors_to_controller=true",
    "--do_causal_controller=false", "--ic_enc_dim=16", "--ci_enc_dim=16", "--con_dim=16",
    "--gen_dim=32", "--factors_dim=8", "--ic_dim=8", "--batch_size=16",
    "--kl_increase_steps=50", "--l2_increase_steps=50"]

DETERMINISTIC_KEYS = ["factors", "output_dist_params", "gen_states", "gen_ics",
                      "controller_outputs", "post_g0_mean", "post_g0_logvar",
                      "prior_g0_mean", "prior_g0_logvar", "train_steps"]


def import_reference(out):
    from lfads_tf2.train import import_original
    assert os.path.isfile(os.path.join(REFERENCE, "MANIFEST.md")), \
        "the reference data of the original are missing from " + REFERENCE
    import_original.import_model(os.path.join(REFERENCE, "model"), out)


@pytest.fixture(scope="module")
def imported(tmp_path_factory):
    out = str(tmp_path_factory.mktemp("imported"))
    import_reference(out)
    return out


def continue_imported(folder):
    """Background job (tests/background.py): the imported model trained on 2 epochs;
    the global step it reached goes to folder/step.json."""
    work = os.path.join(folder, "continued")
    import_reference(work)
    bundle = _run(["--kind=train", "--lfads_save_dir=" + work, "--max_epochs=2",
                   "--data_dir=" + os.path.join(REFERENCE, "data"), "--seed=3"]
                  + MODEL_FLAGS)
    with open(os.path.join(folder, "step.json"), "w") as f:
        json.dump(int(bundle.state.global_step.numpy()), f)


BACKGROUND = {"continued": continue_imported}


@pytest.fixture(scope="module")
def continued():
    return background.result(continue_imported)


def _run(argv):
    import run_lfads
    from lfads_tf2.train import hparams
    hps = hparams.hps_from_argv(argv)
    return run_lfads.run(hps)


def test_import_maps_every_variable(imported):
    from lfads_tf2.evaluate import kinds
    with h5py.File(os.path.join(REFERENCE, "model_params"), "r") as ref:
        ref_keys = set(ref.keys())
        bundle = _run(["--kind=write_model_params", "--lfads_save_dir=" + imported,
                       "--data_dir=" + os.path.join(REFERENCE, "data")] + MODEL_FLAGS)
        ours = kinds.model_params(bundle)
        assert set(ours) == ref_keys
        for key in ref_keys:
            np.testing.assert_array_equal(ours[key], ref[key][()], err_msg=key)


def test_push_mean_reproduces_original(imported):
    _run(["--kind=posterior_push_mean", "--lfads_save_dir=" + imported,
          "--data_dir=" + os.path.join(REFERENCE, "data")] + MODEL_FLAGS)
    worst = {}
    for split in ("train", "valid"):
        name = "model_runs_dataset_N50_S50_%s_posterior_push_mean" % split
        with h5py.File(os.path.join(REFERENCE, name), "r") as ref, \
                h5py.File(os.path.join(imported, name), "r") as ours:
            # the original's keys, plus the observation model's mean that this version
            # adds (for Poisson the rates again)
            assert set(ours.keys()) == set(ref.keys()) | {"output_dist_mean"}
            np.testing.assert_array_equal(ours["output_dist_mean"][()],
                                          ours["output_dist_params"][()])
            for key in DETERMINISTIC_KEYS:
                x, y = ref[key][()], ours[key][()]
                assert y.dtype == np.float64 and y.shape == x.shape, key
                diff = np.abs(x - y)
                worst[key] = max(worst.get(key, 0.0), float(diff.max()))
                assert np.all(diff <= 1e-4 + 1e-4 * np.abs(x)), (split, key, diff.max())
    print("largest absolute difference per key:", worst)


def test_continue_training_imported_model(continued):
    from lfads_tf2.train import checkpoints
    work = os.path.join(continued, "continued")
    with open(os.path.join(continued, "step.json")) as f:
        step = json.load(f)
    # 40 training trials, batch 16 -> 3 steps an epoch, continuing from step 93
    assert step == 93 + 2 * 3
    lines = open(os.path.join(work, "fitlog.csv")).read().strip().splitlines()
    assert len(lines) == 2
    paths = checkpoints.read_checkpoint_state(work, "checkpoint")
    assert paths[-1].endswith("lfads_vae.ckpt-99")
