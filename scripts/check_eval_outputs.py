"""Checks the files the evaluation kinds wrote into a training folder.

    python scripts/check_eval_outputs.py SAVE_DIR DATA_DIR DATA_FILENAME_STEM KIND...

Reads the model's sizes from SAVE_DIR/hyperparameters-0.txt (written by training) and the
trial counts from the data files, then checks, for each KIND given:
  posterior_sample_and_average, posterior_push_mean: exactly one file per dataset and split
    (model_runs_<dataset>_<split>_<kind>), each with every key, one row per trial and the
    dataset's own width;
  prior_sample: model_runs_prior_sample with --batch_size=50 trials (the README's command);
  write_model_params: model_params with every dataset's read-out (and read-in).
Prints one line per file checked; exits with a one-line message on the first problem.
"""
import json
import os
import sys

import h5py

from lfads_tf2.model import observation

PRIOR_TRIALS = 50  # the README's prior_sample command uses --batch_size=50


def fail(msg):
    sys.exit("check_eval_outputs: " + msg)


def check(save, data_dir, stem, kinds):
    with open(os.path.join(save, "hyperparameters-0.txt")) as f:
        hps = json.load(f)
    names, dims = hps["dataset_names"], hps["dataset_dims"]
    T, F, G = hps["num_steps"], hps["factors_dim"], hps["gen_dim"]
    width = observation.for_dist(hps["output_dist"]).num_params
    for kind in kinds:
        if kind in ("posterior_sample_and_average", "posterior_push_mean"):
            expected = {"model_runs_%s_%s_%s" % (n, s, kind): (n, s)
                        for n in names for s in ("train", "valid")}
            written = {f for f in os.listdir(save) if f.endswith("_" + kind)}
            if written != set(expected):
                fail("%s: %s files %s, expected %s" % (save, kind, sorted(written),
                                                      sorted(expected)))
            for fname, (name, split) in sorted(expected.items()):
                with h5py.File(os.path.join(data_dir, stem + "_" + name), "r") as d:
                    E = d[split + "_data"].shape[0]
                shapes = {"factors": (E, T, F), "gen_states": (E, T, G), "gen_ics": (E, G),
                          "output_dist_params": (E, T, width * dims[name]),
                          "output_dist_mean": (E, T, dims[name]),
                          "costs": (E,), "nll_bound_vaes": (E,), "nll_bound_iwaes": (E,),
                          "train_steps": (E,)}
                if hps["ic_dim"] > 0:
                    for key in ("prior_g0_mean", "prior_g0_logvar", "post_g0_mean",
                                "post_g0_logvar"):
                        shapes[key] = (E, hps["ic_dim"])
                if hps["co_dim"] > 0:
                    shapes["controller_outputs"] = (E, T, hps["co_dim"])
                for const in observation.MODELS[hps["output_dist"]].constant_names:
                    shapes["output_dist_" + const] = (dims[name],)
                with h5py.File(os.path.join(save, fname), "r") as f:
                    got = {k: f[k].shape for k in f}
                if got != shapes:
                    fail("%s: keys/shapes %s, expected %s" % (fname, got, shapes))
                print("   ok: %s %s" % (fname, got["output_dist_params"]))
        elif kind == "prior_sample":
            name = hps.get("prior_sample_dataset") or names[0]
            with h5py.File(os.path.join(save, "model_runs_prior_sample"), "r") as f:
                shape = f["output_dist_params"].shape
            if shape != (PRIOR_TRIALS, T, width * dims[name]):
                fail("model_runs_prior_sample: output_dist_params has shape %s" % (shape,))
            print("   ok: model_runs_prior_sample %s" % (shape,))
        elif kind == "write_model_params":
            with h5py.File(os.path.join(save, "model_params"), "r") as f:
                keys = set(f)
            glm = "fac_2_means" if width == 2 else "fac_2_logrates"
            needed = ["LFADS_gen_GenGRU_Gates_h_2_ru_W:0"]
            needed += ["LFADS_glm_%s_%s_W:0" % (glm, n) for n in names]
            if len(names) > 1:
                needed += ["LFADS_x_2_infac_%s_W:0" % n for n in names]
            missing = [k for k in needed if k not in keys]
            if missing:
                fail("model_params: missing %s" % ", ".join(missing))
            print("   ok: model_params with %d variables" % len(keys))
        else:
            fail("unknown kind %s" % kind)


if __name__ == "__main__":
    if any(arg in ("-h", "--help") for arg in sys.argv[1:]):
        print(__doc__.strip())
        sys.exit(0)
    if len(sys.argv) < 5:
        fail("usage: check_eval_outputs.py SAVE_DIR DATA_DIR DATA_FILENAME_STEM KIND...")
    check(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:])
