"""Short training runs of the variants: spike jitter (training batches only), several
datasets with a read-in each, external inputs to the encoders or to the generator, and
Gaussian data."""
import json
import os

import numpy as np
import pytest

import lfads_testdata as td
from lfads_testdata import fast_flags, finite_fitlog

from lfads_tf2 import errors
from lfads_tf2.evaluate import kinds
from lfads_tf2.model import regularisers
from lfads_tf2.train import steps
import utils


# the shared model of two datasets, trained by a background job (lfads_testdata)
BACKGROUND = {"multi": td.train_multi_model}


@pytest.fixture(scope="module")
def multi():
    return td.multi_model()


def test_jitter_training_runs(tmp_path, monkeypatch):
    """--temporal_spike_jitter_width: every training batch is jittered before the step sees
    it (spikes moved, each trial's count per neuron kept); validation data never are."""
    data = td.write_dataset(tmp_path / "data", seed=7, n_train=32, n_valid=16)
    train_bxtxd = np.asarray(data["train_data"])
    jitter_calls, fed = [], []
    real_jitter, real_call_step = regularisers.jitter_spikes, steps.call_step

    def spy_jitter(counts_bxtxd, width, rs, **kwargs):
        jitter_calls.append(width)
        return real_jitter(counts_bxtxd, width, rs, **kwargs)

    def spy_call_step(step, hps, name, batch):
        fed.append(np.array(batch["data"]))
        return real_call_step(step, hps, name, batch)

    monkeypatch.setattr(regularisers, "jitter_spikes", spy_jitter)
    monkeypatch.setattr(steps, "call_step", spy_call_step)
    bundle = td.run(fast_flags(tmp_path / "data", tmp_path / "save")
                    + ["--seed=1", "--max_epochs=2", "--temporal_spike_jitter_width=2"])
    assert int(bundle.state.global_step.numpy()) == 4
    assert len(finite_fitlog(str(tmp_path / "save"))) == 2
    # validation batches come from the valid split unchanged; all others are training's
    valid_rows = {row.tobytes() for row in np.asarray(data["valid_data"], np.float32)}
    is_valid = [all(row.astype(np.float32).tobytes() in valid_rows for row in batch)
                for batch in fed]
    train_fed = [batch for batch, v in zip(fed, is_valid) if not v]
    assert sum(is_valid) >= 2  # at least one validation pass an epoch
    # 2 epochs x 2 batches of 16 trials, each jittered by the flag's width
    assert jitter_calls == [2] * 4 and len(train_fed) == 4
    raw_rows = {row.tobytes() for row in train_bxtxd.astype(np.float32)}
    totals = {row.sum(axis=0).tobytes() for row in train_bxtxd.astype(np.float32)}
    for batch in train_fed:
        batch = batch.astype(np.float32)
        assert batch.shape == (16,) + train_bxtxd.shape[1:]
        # each trial keeps its spike count per neuron: it is one of the training trials
        assert all(row.sum(axis=0).tobytes() in totals for row in batch)
        # ... with its spikes moved: no row is a training trial as stored
        assert not any(row.tobytes() in raw_rows for row in batch)


def test_multi_dataset_training_has_a_readin_per_dataset(multi):
    params = multi["params"]  # evaluation.model_params of the trained bundle
    F = td.MULTI_FACTORS
    for name, D in td.MULTI_DIMS.items():
        w_in = params["LFADS_x_2_infac_%s_W:0" % name]
        assert w_in.shape == (D, F)
        assert params["LFADS_glm_fac_2_logrates_%s_W:0" % name].shape == (F, D)
        # initialised from the alignment matrix, then trained a little
        align = multi["data"][name]["alignment_matrix_cxf"]
        assert not np.array_equal(w_in, align.astype(np.float32))
        assert np.corrcoef(w_in.ravel(), align.ravel())[0, 1] > 0.9
    # 2 datasets x 2 batches of 16 trials x 2 epochs
    assert multi["step"] == 8
    assert len(finite_fitlog(multi["save_dir"])) == 2
    with open(os.path.join(multi["save_dir"], "hyperparameters-0.txt")) as f:
        hps = json.load(f)
    assert hps["dataset_dims"] == td.MULTI_DIMS


@pytest.mark.parametrize("inject", [False, True])
def test_ext_input_training_runs(tmp_path, inject):
    td.write_dataset(tmp_path / "data", seed=8, n_train=32, n_valid=16, ext_input_dim=1)
    flags = fast_flags(tmp_path / "data", tmp_path / "save") + [
        "--ext_input_dim=1", "--inject_ext_input_to_gen=%s" % str(inject).lower()]
    bundle = td.run(flags + ["--seed=1", "--max_epochs=1"])
    assert int(bundle.state.global_step.numpy()) == 2
    assert len(finite_fitlog(str(tmp_path / "save"))) == 1
    # no controller: the generator's only input is the external input, if injected;
    # otherwise the encoders read it next to the 15 data channels
    model = bundle.model
    if inject:
        assert model.generator.generator.x_2_ru.W.shape[0] == 1
        assert model.ic_encoder.ic_enc_fwd.n_in == 15
    else:
        assert model.generator.generator.x_2_ru is None
        assert model.ic_encoder.ic_enc_fwd.n_in == 16
    if inject:
        with pytest.raises(errors.LfadsError, match="inject_ext_input_to_gen"):
            td.run(flags + ["--kind=prior_sample"])


def test_gaussian_training_runs(tmp_path):
    data = td.write_dataset(tmp_path / "data", seed=9, n_train=32, n_valid=16,
                            gaussian=True)
    assert data["train_data"].dtype == np.float32
    flags = fast_flags(tmp_path / "data", tmp_path / "save") + ["--output_dist=gaussian"]
    bundle = td.run(flags + ["--seed=1", "--max_epochs=2"])
    assert int(bundle.state.global_step.numpy()) == 4
    assert len(finite_fitlog(str(tmp_path / "save"))) == 2
    params = kinds.model_params(bundle)
    assert params["LFADS_glm_fac_2_means_set0_W:0"].shape == (5, 15)
    assert params["LFADS_glm_fac_2_logvars_set0_W:0"].shape == (5, 15)
    td.run(flags + ["--kind=posterior_push_mean"])
    out = utils.read_data(str(tmp_path / "save" /
                              "model_runs_set0_valid_posterior_push_mean"))
    assert out["output_dist_params"].shape == (16, 25, 30)
    assert np.all(out["output_dist_params"][..., 15:] > 0)  # variances
