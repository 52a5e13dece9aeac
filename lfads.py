"""The LFADS network on TensorFlow 2: the model's entry point.

    data_bxtxd -> read-in[d] -> IC encoder (bi-GRU) -> g0 -> generator initial state
                            \\-> CI encoder (bi-GRU) -> controller (GenGRU) -> u_t
    generator (GenGRU, input u_t) -> dropout -> unit-norm factors -> read-out[d] -> rates

The parts live in the package lfads_tf2, one idea each: layers (Linear and the GRU
cells), readinout (per-dataset maps), encoders (and q(g0 | x)), generator (g0 ->
initial state, controller/generator loop), observation (Poisson, Gaussian, ZIG,
gamma), costs, noise (every random draw of a pass). This module wires them into
`LFADS.forward`.

Every variable carries the original's TF1 name (e.g. `LFADS/gen/GenGRU/Gates/h_2_ru/W`)
so that `write_model_params` writes the original's keys and original checkpoints can
be imported by name. Everything that does not depend on the recurrent state (encoder
input projections, dropout masks, posterior noise) is computed for all time steps
before the loops.

This module never reads flags or files: it takes an `hps` object (attribute access)
and a dict of per-dataset information.
"""
import collections

import numpy as np
import tensorflow as tf

import distributions as dist
from lfads_tf2.model import costs as cost_terms
from lfads_tf2.model import encoders, generator, regularisers, random_draws, observation, tunables
from lfads_tf2.model.readinout import ReadInOut

Costs = cost_terms.Costs

MODES = ("train", "posterior_sample", "posterior_mean", "prior_sample")

ModelOutput = collections.namedtuple("ModelOutput", [
    "factors_bxtxf", "gen_states_bxtxg", "gen_ics_bxg", "rates_bxtxd",
    "output_params_bxtxp", "log_p_xgz_b", "kl_ic_b", "kl_co_b",
    "ic_post_mean_bxz", "ic_post_logvar_bxz", "ic_prior_mean_bxz",
    "ic_prior_logvar_bxz", "co_bxtxu", "co_post_mean_bxtxu", "co_post_logvar_bxtxu",
    # with a cost mask holding sample-validation entries (lfads_tf2/model/regularisers.py): their
    # summed log-likelihood per row, left out of log_p_xgz_b; else None
    "log_p_sv_b",
], defaults=(None,))


class LFADS(tf.Module):
    """The LFADS model: all variables and the forward pass; no I/O, no flags.

    hps: object with the run_lfads hyperparameters as attributes (see docs/flags.md).
    datasets_info: dict name -> dict with `data_dim` and optionally `recon_dim` (N,
      held-in plus held-out neurons: the read-out's width; default D),
      `alignment_matrix_cxf` [D, F], `alignment_bias_c` [D].
    hps.fp_bins (default 0): forward bins; the generator runs num_steps + fp_bins.
    init_seed: seed of the numpy generator for initial weights (None: random).
    rnn: "fused" (fast_rnn's loops with hand-written gradients) or "autodiff"
      (element-wise cells, TensorFlow's automatic gradients): same numbers. Passes
      that fused does not handle (rate feedback; posterior sampling of many rows,
      where autodiff is faster) use autodiff either way.
    """

    def __init__(self, hps, datasets_info, init_seed=None, rnn="fused"):
        super().__init__(name=None)
        if rnn not in generator.RNN_CHOICES:
            raise ValueError("rnn=%r: expected one of %s" % (rnn, generator.RNN_CHOICES))
        self.hps, self.rnn = hps, rnn
        init_rng = np.random.RandomState(init_seed)
        self.dataset_names = sorted(datasets_info)
        Z, U, I = hps.ic_dim, hps.co_dim, hps.ext_input_dim
        self.observation = observation.for_hps(hps)
        # The parts are built in the order the original drew their initial weights:
        # read-in/out, IC encoder, g0 map, CI encoder, controller, generator.
        self.readinout = ReadInOut(datasets_info, hps.factors_dim, self.observation,
                                   init_rng, hps.do_train_readin)
        self.ext_to_encoders = I > 0 and not hps.inject_ext_input_to_gen
        enc_in = self.readinout.readin_dim + (I if self.ext_to_encoders else 0)
        self.ic_encoder = encoders.ICEncoder(enc_in, hps, init_rng) if Z > 0 else None
        self.initial_state = generator.InitialState(hps, init_rng)
        self.ci_encoder = encoders.CIEncoder(enc_in, hps, init_rng) if U > 0 else None
        ci_dim = self.ci_encoder.out_dim if U > 0 else 0
        feedback_dim = 0
        if U > 0 and hps.do_feed_factors_to_controller:
            # The original feeds factors back even to a "causal" controller
            # (though its comment says it should not); kept, since that is what
            # trained models expect.
            first = datasets_info[self.dataset_names[0]]
            feedback_dim = (hps.factors_dim if hps.feedback_factors_or_rates == "factors"
                            else first.get("recon_dim") or first["data_dim"])
        self.generator = generator.ControllerGenerator(hps, ci_dim, feedback_dim, init_rng)
        # keep_prob, the KL weights and the L2 scales as variables the graph reads, so a
        # search may change them without retracing (outside the checkpoint).
        self.tunables = tunables.Tunables(hps)
        self.cost_terms = cost_terms.CostTerms(hps, *self.generator.l2_variables(),
                                               tunables=self.tunables)
        self.noise_sizes = random_draws.Sizes(
            hps.num_steps, I, hps.ic_enc_dim if Z > 0 else 0, Z, hps.gen_dim, U,
            ci_dim + feedback_dim, self.generator.num_steps)
        # Held-out neurons or forward bins: the read-out is wider and the generator
        # longer than the data (see _observe for the likelihood's target).
        self.predicts_beyond_data = self.generator.fp_bins > 0 or any(
            (info.get("recon_dim") or info["data_dim"]) != info["data_dim"]
            for info in datasets_info.values())

    # ------------------------------------------------------------------ naming
    def variables_by_name(self):
        """dict original TF1 name (without ':0') -> tf.Variable, for every variable."""
        out = {}
        for v in self.variables:
            name = v.name[:-2] if v.name.endswith(":0") else v.name
            if name in out:
                raise ValueError("duplicate variable name %s" % name)
            out[name] = v
        return out

    def trainable_variables_to_train(self):
        """The variables the optimizer updates, chosen as the original."""
        hps = self.hps
        if hps.do_train_io_only:
            return self.readinout.io_variables(hps.do_train_readin)
        if hps.do_train_encoder_only:
            return [v for v in self.trainable_variables
                    if v.name.startswith("LFADS/ic_enc_")
                    or v.name.startswith("LFADS/z/ic_enc_")]
        return list(self.trainable_variables)

    @property
    def co_prior(self):
        """The AR(1) prior over u_t (co_dim > 0)."""
        return self.generator.co_prior

    # ------------------------------------------------------------------ forward
    def forward(self, name, data_bxtxd, ext_input_bxtxi, rng, mode, keep_prob=1.0,
                num_samples=1, batch_size=None, recon_bxtxn=None, cost_mask_bxtxn=None,
                recon_is_data_extent=False):
        """The LFADS forward pass for one dataset `name`.

        data_bxtxd [B, T, D]: what the encoders read. recon_bxtxn [B, T + fp_bins, N]:
          the likelihood's target, all neurons over all bins (default: data_bxtxd; a
          model with held-out neurons or forward bins then scores the data's part of
          its output only, e.g. for test data).
        Outputs (rates, factors, generator states, u_t) cover T + fp_bins steps and the
        rates N neurons.

        name: the dataset's name (a Python string), or an int32 scalar tensor indexing
          the sorted dataset names: one traced graph then serves every dataset (see
          ReadInOut).

        mode: "train" (posterior samples, dropout with keep_prob),
          "posterior_sample" (samples, no dropout), "posterior_mean" (g0 and u_t at
          their posterior means, no dropout), "prior_sample" (g0 and u_t from the
          priors; data not used, batch_size trials are generated).
        num_samples: the encoders run once per trial, then every trial is repeated
          num_samples times (rows trial-major) before sampling g0 and u_t.
        recon_bxtxn: what the read-out reconstructs (the likelihood's data); default
          data_bxtxd, which is then only what the encoders read (e.g. with entries
          hidden by coordinated dropout).
        cost_mask_bxtxn: a regularisers.CostMask for the per-entry log-likelihood
          (which entries' gradient passes, which count in the objective), or None:
          every entry counts. Made by the input regularisers; the model does not know
          how.
        recon_is_data_extent: recon_bxtxn covers only the data's bins and neurons (test
          data with missing entries filled in, given to a model that predicts beyond
          them): it scores the read-out's part of that extent, as a default target.
        Returns a ModelOutput whose batch dimension is B * num_samples.
        """
        prior = mode == "prior_sample"
        if prior:
            batch, data_dim = tf.constant(batch_size, tf.int32), 0
        else:
            data_bxtxd = tf.cast(data_bxtxd, tf.float32)
            batch, data_dim = tf.shape(data_bxtxd)[0], tf.shape(data_bxtxd)[2]
        ext_bxtxi = None
        if self.hps.ext_input_dim > 0 and ext_input_bxtxi is not None:
            ext_bxtxi = tf.cast(ext_input_bxtxi, tf.float32)
        draws = random_draws.draw(rng, self.noise_sizes, mode, keep_prob, batch,
                           batch * num_samples, data_dim, ext_bxtxi is not None)
        if ext_bxtxi is not None and draws.ext_mask_bxtxi is not None:
            ext_bxtxi *= draws.ext_mask_bxtxi

        def repeat(x):
            return x if num_samples == 1 or x is None else tf.repeat(x, num_samples, 0)

        ic_post = ci_bxtxe = None
        if not prior:  # the encoders do not run when sampling from the prior
            ic_post, ci_bxtxe = self._encode(name, data_bxtxd, ext_bxtxi, draws)
            if ic_post is not None:
                ic_post = dist.DiagonalGaussian(repeat(ic_post.mean),
                                                repeat(ic_post.logvar))
        ic_prior, g0_bxz = self._g0(ic_post, draws, batch * num_samples, mode)
        gen_ics_bxg = self.initial_state(g0_bxz, batch * num_samples)
        # Without gradients and with many rows (posterior sampling), the autodiff loop
        # is faster: its input projections are one big matmul before the loop (9.2 s
        # instead of 11.9 s for 1,000 trials x 50 samples, C1).
        rnn = "autodiff" if mode != "train" and num_samples > 1 else self.rnn
        gen_ext = repeat(ext_bxtxi) if not self.ext_to_encoders else None
        loop = self.generator(gen_ics_bxg, repeat(ci_bxtxe), gen_ext, draws, mode, rnn,
                              self._rates_fn(name))
        target, crop = data_bxtxd, self.predicts_beyond_data
        if recon_bxtxn is not None and not prior:
            target = tf.cast(recon_bxtxn, tf.float32)
            crop = crop and recon_is_data_extent
        return self._observe(name, repeat(target), loop, ic_post, ic_prior,
                             gen_ics_bxg, draws, mode, crop,
                             regularisers.repeat(cost_mask_bxtxn, num_samples))

    def _encode(self, name, data_bxtxd, ext_bxtxi, draws):
        """Read-in and encoders -> (q(g0 | x) [B, Z] or None, ci [B, T, e] or None)."""
        if draws.data_mask_bxtxd is not None:  # one mask for both encoders, as the original
            data_bxtxd = data_bxtxd * draws.data_mask_bxtxd
        enc_in = self.readinout.read_in(name, data_bxtxd)
        if ext_bxtxi is not None and self.ext_to_encoders:
            enc_in = tf.concat([enc_in, ext_bxtxi], axis=-1)
        return encoders.encode(self.ic_encoder, self.ci_encoder, enc_in,
                               draws.ic_enc_mask_bxe, self.rnn)

    def _g0(self, ic_post, draws, rows, mode):
        """(p(g0) as a DiagonalGaussian [rows, Z], g0 [rows, Z]), or (None, None)."""
        if self.hps.ic_dim == 0:
            return None, None
        ic_prior = self.initial_state.ic_prior.params(rows)
        if mode == "prior_sample":
            return ic_prior, ic_prior.with_noise(draws.g0_noise_bxz)
        if mode == "posterior_mean":
            return ic_prior, ic_post.mean
        return ic_prior, ic_post.with_noise(draws.g0_noise_bxz)

    def _rates_fn(self, name):
        """factors [B, T, F] -> rates fed back to the controller (dataset `name`)."""
        def rates(factors, clip):
            return self.observation.feedback(self.readinout.read_out(name, factors), clip)
        return rates

    def _observe(self, name, target_bxtxn, loop, ic_post, ic_prior, gen_ics_bxg, draws,
                 mode, crop=False, cost_mask=None):
        """Read-out, likelihood and KL terms -> ModelOutput (target None: prior).

        target [B, T', N']: what the likelihood scores. crop: it may be smaller than the
        read-out (the data alone, given to a model with held-out neurons or forward
        bins): then it scores the read-out's first T' bins and N' neurons.
        cost_mask: regularisers.CostMask of the input regularisers, or None."""
        params = self.readinout.read_out(name, loop.factors_bxtxf)
        output_params, rates = self.observation.reported(params)
        log_p_xgz_b = kl_ic_b = kl_co_b = log_p_sv_b = None
        if target_bxtxn is not None:
            lik_params = params
            if crop:
                shape = tf.shape(target_bxtxn)
                # read-out parameters [B, T, N]; the model's constants [N] (ZIG's s_min)
                lik_params = tuple(p[:shape[2]] if p.shape.rank == 1
                                   else p[:, :shape[1], :shape[2]] for p in params)
            loglik = self.observation.log_likelihood(target_bxtxn, lik_params)
            if cost_mask is not None:
                loglik, log_p_sv_b = regularisers.objective_loglik(loglik, cost_mask)
            log_p_xgz_b = tf.reduce_sum(loglik, axis=[1, 2])
            if ic_post is not None:
                kl_ic_b = self.tunables.kl_ic_weight * dist.kl_gaussian_gaussian(
                    ic_post, ic_prior)
            if loop.co_mean_bxtxu is not None:
                kl_co_b = self.tunables.kl_co_weight * self._kl_co(loop, draws, mode)
        return ModelOutput(
            factors_bxtxf=loop.factors_bxtxf, gen_states_bxtxg=loop.gen_states_bxtxg,
            gen_ics_bxg=gen_ics_bxg, rates_bxtxd=rates, output_params_bxtxp=output_params,
            log_p_xgz_b=log_p_xgz_b, kl_ic_b=kl_ic_b, kl_co_b=kl_co_b,
            ic_post_mean_bxz=None if ic_post is None else ic_post.mean,
            ic_post_logvar_bxz=None if ic_post is None else ic_post.logvar,
            ic_prior_mean_bxz=None if ic_prior is None else ic_prior.mean,
            ic_prior_logvar_bxz=None if ic_prior is None else ic_prior.logvar,
            co_bxtxu=loop.co_bxtxu, co_post_mean_bxtxu=loop.co_mean_bxtxu,
            co_post_logvar_bxtxu=loop.co_logvar_bxtxu, log_p_sv_b=log_p_sv_b)

    def _kl_co(self, loop, draws, mode):
        """KL(q(u) || AR(1) prior) [B]: closed form with --kl_ar_analytic, else the
        original's one-sample estimate. The sampled one uses posterior samples even in
        posterior_mean mode, as the original (push-mean costs are a diagnostic)."""
        # hps written before the flag existed lack the key: they mean the original's.
        if self.hps.get("kl_ar_analytic", False):
            return dist.kl_ar1_analytic(loop.co_mean_bxtxu, loop.co_logvar_bxtxu,
                                        self.generator.co_prior)
        noise_bxtxu = generator.time_major(draws.co_noise_txbxu)
        z_bxtxu = loop.co_bxtxu
        if mode == "posterior_mean":
            z_bxtxu = dist.DiagonalGaussian(loop.co_mean_bxtxu,
                                            loop.co_logvar_bxtxu).with_noise(noise_bxtxu)
        return dist.kl_ar1_sampled(z_bxtxu, noise_bxtxu, loop.co_logvar_bxtxu,
                                   self.generator.co_prior)

    # ------------------------------------------------------------------ costs
    def l2_cost(self):
        return self.cost_terms.l2()

    def corr_cost(self, co_mean_bxtxu):
        return cost_terms.corr_cost(co_mean_bxtxu)

    def costs(self, out, step, num_samples=1):
        """The training objective and bounds from a ModelOutput -> Costs.

        With num_samples > 1 each group of num_samples rows is one trial; the
        returned per-trial vectors ([B]) average over its samples.
        """
        kl_b = tf.zeros_like(out.log_p_xgz_b)
        for term in (out.kl_ic_b, out.kl_co_b):
            if term is not None:
                kl_b += term
        return self.cost_terms(out.log_p_xgz_b, kl_b, out.co_post_mean_bxtxu, step,
                               num_samples)
