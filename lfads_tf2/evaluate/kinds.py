"""The evaluation kinds of run_lfads.py and the training example figure.

posterior_sample_and_average  denoised rates etc.: mean over --batch_size posterior
                              samples per trial (train, valid and, when the data have
                              test_data, test trials)
posterior_push_mean           one deterministic pass with g0 and u_t at their
                              posterior means
prior_sample                  --batch_size new trials from the priors
write_model_params            every variable, keyed by the original's TF1 name

Output files keep the original's names and keys; the posterior files add the
observation model's mean `output_dist_mean` [E, T, N], its constants
(`output_constants`, ZIG: `output_dist_s_min` [N]) and the file attribute
`output_dist` (its --output_dist), so that lfads_score can read them without
guessing. They are written as the work
proceeds (chunks of trials streamed into the h5 file) to a temporary file that is
moved into place only when complete. With held-out neurons and forward bins (see
steps.uses_recon) the time-resolved outputs cover T + fp_bins bins and the rates all
N neurons, for every split; the costs of train and valid trials score all of
`<split>_recon_data`, those of test trials their data (held-in neurons, T bins).
"""
import os

import h5py
import numpy as np
import tensorflow as tf

import utils
from lfads_tf2.errors import LfadsError
from lfads_tf2.model import observation, regularisers
from lfads_tf2.train import build, checkpoints, loop, steps
# Rows (trials x samples) pushed through the generator at once when sampling. Memory
# grows by about 0.3 MB a row (the README's no-inputs model: 100 bins, gen_dim 200),
# speed hardly changes above 1,000 rows: 1,024 rows peak at 1.1 GB in all, 4,096 at
# 2.0 GB, in the same time (scripts/benchmark_sampling.py).
ROWS_PER_CHUNK = 1024


def output_file_name(hps, dataset_name, split, kind):
    """model_runs_<dataset>_<split>_<kind>, or <stem><dataset>_<split>_<kind>."""
    prefix = hps.output_filename_stem or "model_runs_"
    return os.path.join(hps.lfads_save_dir,
                        "%s%s_%s_%s" % (prefix, dataset_name, split, kind))


def make_posterior_fn(bundle, hps, mode, num_samples, with_recon=True):
    """Compiled: trials [k,T,D] -> per-trial results averaged over num_samples draws.

    Called as fn(dataset index, batch), one trace for every dataset (see
    steps.compile_step). The encoders run once per trial; every trial is then
    repeated num_samples times and g0 and u_t are sampled for all rows at once
    (mode 'posterior_sample'), or taken at their means (mode 'posterior_mean',
    num_samples = 1). with_recon=False: batches without "recon" (test data), whose
    costs score the data alone.
    """
    model, state, rng = bundle.model, bundle.state, bundle.rng
    regs = regularisers.Regularisers(hps)
    S = num_samples

    def avg(x):
        if x is None:
            return None
        shape = tf.shape(x)
        x = tf.reshape(x, tf.concat([[-1, S], shape[1:]], axis=0))
        return tf.reduce_mean(x, axis=1)

    def posterior_fn(dataset, batch):
        # --nan_is_missing: missing entries are 0 at the encoders and out of the costs
        batch = regs.apply(batch, rng, training=False)
        out = model.forward(dataset, batch["data"], batch.get("ext"), rng, mode,
                            num_samples=S, recon_bxtxn=batch.get("recon"),
                            cost_mask_bxtxn=batch.get("cost_mask"),
                            recon_is_data_extent=not with_recon)
        costs = model.costs(out, state.global_step, num_samples=S)
        res = {
            "gen_ics": avg(out.gen_ics_bxg),
            "gen_states": avg(out.gen_states_bxtxg),
            "factors": avg(out.factors_bxtxf),
            "output_dist_params": avg(out.output_params_bxtxp),
            # the observation model's mean (Poisson: the rates), averaged over samples
            "output_dist_mean": avg(out.rates_bxtxd),
            "costs": costs.total,
            "nll_bound_vaes": costs.nll_bound_vae,
            "nll_bound_iwaes": costs.nll_bound_iwae,
        }
        if hps.ic_dim > 0:
            res.update(prior_g0_mean=avg(out.ic_prior_mean_bxz),
                       prior_g0_logvar=avg(out.ic_prior_logvar_bxz),
                       post_g0_mean=avg(out.ic_post_mean_bxz),
                       post_g0_logvar=avg(out.ic_post_logvar_bxz))
        if hps.co_dim > 0:
            res["controller_outputs"] = avg(out.co_bxtxu)
        return res

    return steps.compile_step(posterior_fn, hps, with_recon=with_recon)


def _write_streaming(path, n_trials, chunks, extra=None, attrs=None):
    """Writes {key: [k, ...]} chunks into float64 gzip datasets of n_trials rows, and
    the arrays of `extra` and the file attributes `attrs` ({name: value} each)."""
    with utils.atomic_path(path) as tmp:
        with h5py.File(tmp, "w-") as hf:
            for key, value in (attrs or {}).items():
                hf.attrs[key] = value
            for key, value in (extra or {}).items():
                hf.create_dataset(key, data=np.asarray(value, np.float64))
            start = 0
            for chunk in chunks:
                k = None
                for key, value in chunk.items():
                    value = np.asarray(value, np.float64)
                    k = value.shape[0]
                    if key not in hf:
                        hf.create_dataset(key, shape=(n_trials,) + value.shape[1:],
                                          dtype=np.float64, compression="gzip")
                    hf[key][start:start + k] = value
                start += k
    print("Wrote %s" % path)


def sample_passes(num_samples, rows_per_chunk):
    """Samples of each pass when a trial's num_samples samples are more rows than a
    chunk holds: equal passes of at most rows_per_chunk (the last one may be smaller),
    so that memory does not grow with the number of samples. [num_samples] when
    they fit."""
    n_passes = -(-num_samples // rows_per_chunk)
    size = -(-num_samples // n_passes)
    rest = num_samples % size
    return [size] * (num_samples // size) + ([rest] if rest else [])


def combine_passes(results, sizes):
    """The results of one chunk of trials from passes over parts of their samples
    ({key: [k, ...]} each, sizes[i] samples in pass i) -> as from one pass over all.

    Sample means are weighted by the pass's samples (float64). The IWAE bound of a
    pass is -(logsumexp(lb) - log n): its logsumexp is log n - bound, and these add
    up (in log space) to the logsumexp over all samples.
    """
    if len(results) == 1:
        return results[0]
    total = float(sum(sizes))
    out = {key: sum(n * np.asarray(r[key], np.float64) for n, r in zip(sizes, results))
           / total for key in results[0] if key != "nll_bound_iwaes"}
    lse_pxk = [np.log(n) - np.asarray(r["nll_bound_iwaes"], np.float64)
               for n, r in zip(sizes, results)]
    out["nll_bound_iwaes"] = -(np.logaddexp.reduce(lse_pxk, axis=0) - np.log(total))
    return out


def posterior_kind(bundle, hps, datasets, kind=None):
    """posterior_sample_and_average or posterior_push_mean (kind, by default hps.kind)
    for every dataset/split.

    Trials go through the model in chunks of about ROWS_PER_CHUNK rows (trials x
    samples); a trial whose samples alone are more rows than that is sampled in
    several passes (sample_passes), whose results are combined (combine_passes).
    """
    kind = kind or hps.kind
    sampling = kind == "posterior_sample_and_average"
    S = hps.batch_size if sampling else 1
    mode = "posterior_sample" if sampling else "posterior_mean"
    trials_per_chunk = max(1, ROWS_PER_CHUNK // S) if sampling else hps.batch_size
    passes = sample_passes(S, ROWS_PER_CHUNK)
    step = float(bundle.state.global_step.numpy())
    fns = {}

    def fn(samples, split):
        """The compiled posterior function (traced on first use): one for every
        split, except test data (no "recon") of a model with held-out neurons."""
        with_recon = split != "test" or not steps.uses_recon(hps)
        if (samples, with_recon) not in fns:
            fns[samples, with_recon] = make_posterior_fn(bundle, hps, mode, samples,
                                                         with_recon=with_recon)
        return fns[samples, with_recon]

    for name in hps.dataset_names:
        for split in ("train", "valid", "test"):
            arrays = loop.split_arrays(datasets, hps, split, names=[name])
            if name not in arrays:
                continue
            arrays = arrays[name]
            E = min(hps.ps_nexamples_to_process, arrays["data"].shape[0])

            def chunks():
                for start in range(0, E, trials_per_chunk):
                    sl = slice(start, min(start + trials_per_chunk, E))
                    print("Running %s %s trials %d-%d of %d." % (name, split, sl.start,
                                                                   sl.stop - 1, E))
                    batch = steps.take(arrays, sl)
                    results = []
                    for samples in passes:
                        res = steps.call_step(fn(samples, split), hps, name, batch)
                        results.append({k: v.numpy() for k, v in res.items()})
                    res = combine_passes(results, passes)
                    res["train_steps"] = np.full(sl.stop - sl.start, step)
                    yield res

            _write_streaming(output_file_name(hps, name, split, kind), E, chunks(),
                             extra=output_constants(bundle.model, name),
                             attrs={"output_dist": hps.output_dist})


def output_constants(model, dataset):
    """{"output_dist_<name>": [N]}: the observation model's constants of `dataset` (ZIG:
    s_min), which reading output_dist_params back needs; {} for Poisson and Gaussian."""
    return {"output_dist_" + name: value for name, value in zip(
        model.observation.constant_names, model.readinout.constants[dataset])}


def prior_sample_kind(bundle, hps, datasets):
    """--batch_size trials generated from the IC and AR(1) priors."""
    if hps.ext_input_dim > 0 and hps.inject_ext_input_to_gen:
        raise LfadsError("--kind=prior_sample: not possible with external inputs "
                         "injected into the generator (--inject_ext_input_to_gen=true); "
                         "there is no data to take them from")
    name = hps.prior_sample_dataset or hps.dataset_names[0]
    model, rng = bundle.model, bundle.rng
    out = model.forward(name, None, None, rng, "prior_sample", batch_size=hps.batch_size)
    res = {
        "gen_ics": out.gen_ics_bxg.numpy(),
        "gen_states": out.gen_states_bxtxg.numpy().astype(np.float64),
        "factors": out.factors_bxtxf.numpy().astype(np.float64),
        "output_dist_params": out.output_params_bxtxp.numpy().astype(np.float64),
        # the graph's cost with no data is the ramp-weighted L2 term, as in the original
        "costs": np.array([float(loop.ramp_value(
            int(bundle.state.global_step.numpy()), hps.l2_start_step,
            hps.l2_increase_steps)) * float(model.l2_cost().numpy())], np.float32),
    }
    if hps.ic_dim > 0:
        res["prior_g0_mean"] = out.ic_prior_mean_bxz.numpy()
        res["prior_g0_logvar"] = out.ic_prior_logvar_bxz.numpy()
    if hps.co_dim > 0:
        res["prior_zs_ar_con"] = out.co_bxtxu.numpy().astype(np.float64)
    # The original looked the stem up as a dataset name here (an error unless it was
    # one); the stem
    # is a file-name prefix, as for the other kinds.
    fname = (hps.output_filename_stem or "model_runs_") + "prior_sample"
    path = os.path.join(hps.lfads_save_dir, fname)
    utils.write_data(path, res, compression="gzip")
    print("Wrote %s (read out through dataset %s)" % (path, name))


def model_params(bundle):
    """{original key: value} of every variable of the original's graph."""
    return {v.name.replace("/", "_"): v.numpy() for v in build.original_variables(bundle)}


def write_model_params_kind(bundle, hps, datasets=None):
    """Every variable of the original's graph to <stem>model_params (the data unused)."""
    fname = (hps.output_filename_stem + "_" if hps.output_filename_stem else "") \
        + "model_params"
    path = os.path.join(hps.lfads_save_dir, fname)
    utils.write_data(path, model_params(bundle))
    print("Wrote %s" % path)


def run_kind(hps, datasets):
    """Builds the model, restores --checkpoint_pb_load_name and runs hps.kind."""
    bundle = build.bundle(hps, build.datasets_info(datasets))
    path = checkpoints.restore(bundle, hps, hps.lfads_save_dir, hps.checkpoint_pb_load_name,
                               required=True)
    print("Restored %s (step %d)." % (path, int(bundle.state.global_step.numpy())))
    checkpoints.write_hps_file(hps, hps.lfads_save_dir,
                               checkpoints.step_of_checkpoint(path))
    KINDS[hps.kind](bundle, hps, datasets)
    return bundle


# --kind -> the function that writes its outputs, f(bundle, hps, datasets).
KINDS = {
    "posterior_sample_and_average": posterior_kind,
    "posterior_push_mean": posterior_kind,
    "prior_sample": prior_sample_kind,
    "write_model_params": write_model_params_kind,
}


class ExamplePlotter:
    """The per-epoch example figure as a TensorBoard image summary.

    One random training and one random validation trial of a random dataset, with
    rates, factors and inputs averaged over a few posterior samples.
    """

    NUM_SAMPLES = 16

    def __init__(self, bundle, hps, datasets):
        self.hps, self.datasets = hps, datasets
        self.fn = make_posterior_fn(bundle, hps, "posterior_sample", self.NUM_SAMPLES)

    def _example(self, name, split, trial):
        d = self.datasets[name]
        batch = {"data": np.asarray(d[split + "_data"][trial:trial + 1], np.float32)}
        if self.hps.ext_input_dim > 0:
            batch["ext"] = np.asarray(d[split + "_ext_input"][trial:trial + 1], np.float32)
        if steps.uses_recon(self.hps):
            recon = d.get(split + "_recon_data")
            batch["recon"] = batch["data"] if recon is None \
                else np.asarray(recon[trial:trial + 1], np.float32)
        # With held-out neurons and forward bins, the figure shows all of them (the
        # spikes of recon_data, T + fp_bins bins); inputs and truth that stop at T or at
        # the held-in neurons are padded (inputs with the model's zeros, truth with NaN).
        data, ext = batch.get("recon", batch["data"]), batch.get("ext")
        res = steps.call_step(self.fn, self.hps, name, batch)
        obs = observation.for_dist(self.hps.output_dist)
        params = res["output_dist_params"].numpy()[0]
        reported = obs.split_reported(params)
        n_time, N = data.shape[1:]
        ex = {"data_txd": data[0], "rates_txd": res["output_dist_mean"].numpy()[0],
              "factors_txf": res["factors"].numpy()[0],
              "label": "%s %s trial %d" % (name, split, trial)}
        if "variances" in reported:
            ex["vars_txd"] = reported["variances"]
        from lfads_tf2.evaluate import figures
        if split + "_truth" in d:
            ex["truth_txd"] = figures.pad_to(d[split + "_truth"][trial], n_time, N, np.nan)
        if "controller_outputs" in res:
            ex["controller_outputs_txu"] = res["controller_outputs"].numpy()[0]
        if ext is not None:
            ex["ext_input_txi"] = figures.pad_to(ext[0], n_time, ext.shape[2], 0.0)
        return ex

    def write_summary(self, rs):
        from lfads_tf2.evaluate import figures
        name = self.hps.dataset_names[rs.randint(len(self.hps.dataset_names))]
        d = self.datasets[name]
        examples = []
        for split in ("train", "valid"):
            if split + "_data" in d:
                trial = rs.randint(d[split + "_data"].shape[0])
                examples.append(self._example(name, split, trial))
        cf = None
        if "train_truth" in d and "conversion_factor" in d:
            cf, _ = figures.truth_scale(
                float(d["conversion_factor"]),
                float(d["max_firing_rate"]) if "max_firing_rate" in d else None,
                float(d["dt"]) if "dt" in d else None, self.hps.output_dist)
        fig = figures.plot_examples(examples, output_dist=self.hps.output_dist,
                                       conversion_factor=cf, title="LFADS example")
        image = figures.figure_to_rgb_array(fig)
        tf.summary.image("LFADS/LFADS_example", image[None])
