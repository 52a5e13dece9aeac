"""Writes tests/data/v0_1/: a tiny model trained by the v0.1 code (commit 4bea4fe).

Run once, from the repository root, with the v0.1 code checked out and installed
(`pip install -e .`):
    python tests/v0_1_checkpoint.py
It keeps, under tests/data/v0_1/:
  data/       two tiny datasets of different widths (one with an alignment matrix),
              with one external input channel;
  save/       the checkpoint after one epoch of `run_lfads.py --kind=train`
              (both state files, the hyperparameters file);
  expected.npz  posterior-mean factors and rates of the valid split of each dataset,
              from the checkpoint restored by checkpoints.restore and run through
              evaluation.make_posterior_fn (what --kind=posterior_push_mean computes;
              the kind itself fails for several datasets in v0.1: split_arrays is given
              one dataset but looks up all of them).
tests/test_checkpoint_compat.py restores it with the current code.
"""
import glob
import os
import shutil

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import conftest
import lfads_testdata as td
import utils
from lfads_tf2.train import hparams
from lfads_tf2.data import checks
from lfads_tf2.model import observation

OUT = os.path.join(HERE, "v0_1")
DATA, SAVE = os.path.join(OUT, "data"), os.path.join(OUT, "save")
T, F = 10, 4
DIMS = {"wide": 7, "narrow": 5}
# Everything a restore needs besides --lfads_save_dir (shared with the test).
FLAGS = ["--data_dir=" + DATA, "--data_filename_stem=" + td.STEM, "--ic_dim=3",
         "--factors_dim=%d" % F, "--ic_enc_dim=6", "--gen_dim=8", "--co_dim=1",
         "--ci_enc_dim=4", "--con_dim=4", "--ext_input_dim=1", "--batch_size=8",
         "--output_dist=poisson", "--device=cpu:0", "--seed=0"]


def write_data():
    for i, (name, D) in enumerate(sorted(DIMS.items())):
        data = td.make_dataset(seed=i, n_train=16, n_valid=8, T=T, D=D, ext_input_dim=1)
        if name == "wide":
            rs = np.random.RandomState(10 + i)
            data["alignment_matrix_cxf"] = rs.randn(D, F).astype(np.float32) / np.sqrt(D)
            data["alignment_bias_c"] = rs.randn(D).astype(np.float32) * 0.1
        os.makedirs(DATA, exist_ok=True)
        utils.write_data(os.path.join(DATA, "%s_%s" % (td.STEM, name)), data)


def posterior_means(save_dir):
    """{"<dataset>/factors" or "/output_dist_params": valid-split arrays} of the
    checkpoint in save_dir, at the posterior means (g0 and u_t)."""
    from lfads_tf2.evaluate import kinds
    from lfads_tf2.train import build, checkpoints, steps
    hps = hparams.hps_from_argv(FLAGS + ["--lfads_save_dir=" + save_dir,
                                           "--kind=posterior_push_mean"])
    datasets, _ = checks.load_datasets(hps.data_dir, hps.data_filename_stem,
                                      observation.for_dist(hps.output_dist), ext_input_dim=hps.ext_input_dim,
                                      factors_dim=hps.factors_dim, kind=hps.kind)
    hparams.add_derived_hps(hps, datasets)
    bundle = build.bundle(hps, build.datasets_info(datasets))
    checkpoints.restore(bundle, hps, save_dir, None, required=True)
    out = {}
    fn = kinds.make_posterior_fn(bundle, hps, "posterior_mean", 1)
    for name in hps.dataset_names:
        d = datasets[name]
        res = steps.call_step(fn, hps, name, {"data": d["valid_data"],
                                              "ext": d["valid_ext_input"]})
        for key in ("factors", "output_dist_params"):
            out[name + "/" + key] = res[key].numpy()
    return out


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    write_data()
    td.run(FLAGS + ["--lfads_save_dir=" + SAVE, "--kind=train", "--max_epochs=2"])
    conftest.reset_op_determinism()
    expected = posterior_means(SAVE)
    # keep only what a restore reads
    shutil.rmtree(os.path.join(SAVE, "lfads_log"), ignore_errors=True)
    for path in glob.glob(os.path.join(SAVE, "fitlog.csv")):
        os.remove(path)
    np.savez(os.path.join(OUT, "expected.npz"), **expected)
    print("wrote", OUT, sorted(expected))


if __name__ == "__main__":
    main()
