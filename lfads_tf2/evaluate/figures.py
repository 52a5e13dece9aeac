"""Figures of LFADS outputs: example trials, rasterised for TensorBoard or saved as PNG.

Only numpy and matplotlib are imported (never tensorflow), and figures are built with
the object API (`matplotlib.figure.Figure` + `FigureCanvasAgg`) instead of pyplot, so
no global figure state or display is involved: safe to call from any thread, on a
headless machine, every few epochs of training.

Also holds the two small numeric helpers the figures and the truth comparison share:
the rates -> truth-units scale (`truth_scale`) and a Gaussian
smoother along time (`smooth_time`).
"""
import os
import tempfile

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from lfads_tf2.model import observation

# Colours that carry meaning; the same everywhere so legends can be read once.
COLOR_INFERRED = "tab:red"
COLOR_TRUTH = "black"
COLOR_SMOOTHED = "0.55"
COLOR_FACTORS = "tab:blue"
COLOR_CONTROLLER = "tab:purple"
COLOR_EXT_INPUT = "tab:green"
COLOR_TRUE_INPUT = "black"


def truth_scale(conversion_factor=None, max_firing_rate=None, dt=None,
                output_dist="poisson"):
    """Returns (scale, convention): multiply inferred rates by `scale` to get truth units.

    The synthetic generators disagree on what `conversion_factor` (cf) means:
      * chaotic / labeled data store cf = 1/(max_firing_rate*dt) (~3.33): truth ~ rates * cf;
      * ITB data store cf = max_firing_rate*dt (0.3) plus `max_firing_rate` and `dt`:
        truth ~ rates / cf. Detected when both extra keys exist and cf ~ max_firing_rate*dt.
    Gaussian synthetic data are `max_firing_rate * truth + noise` (the original's
    gaussify_data), so their means map to truth by 1/max_firing_rate; when only cf and dt
    are stored (chaotic Gaussian), 1/max_firing_rate = cf*dt.
    `convention` is one of "none", "multiply", "divide", "gaussian".
    """
    if conversion_factor is None:
        return 1.0, "none"
    cf = float(conversion_factor)
    itb = (max_firing_rate is not None and dt is not None
           and np.isclose(cf, float(max_firing_rate) * float(dt), rtol=1e-6))
    if observation.for_dist(output_dist).truth_convention == "gaussify_data":
        if max_firing_rate is not None:
            return 1.0 / float(max_firing_rate), "gaussian"
        if dt is not None:
            return cf * float(dt), "gaussian"
        # Nothing to derive the firing-rate scale from: fall back to the Poisson rule.
    if itb:
        return 1.0 / cf, "divide"
    return cf, "multiply"


def describe_convention(convention, scale):
    """One human-readable line describing a `truth_scale` result."""
    text = {
        "none": "no conversion_factor in the data file: truth ~ rates",
        "multiply": "truth ~ rates * conversion_factor (chaotic/labeled convention)",
        "divide": "truth ~ rates / conversion_factor (ITB convention, cf = max_firing_rate*dt)",
        "gaussian": "truth ~ means / max_firing_rate (Gaussian synthetic data)",
        "override": "scale given on the command line",
    }[convention]
    return "%s; scale %.6g" % (text, scale)


def pad_to(x_txn, n_time, n_chan, fill):
    """[T', N'] -> [n_time, n_chan] float64: cut, or filled with `fill` after T' and N'
    (inputs or truth that stop at T, or at the held-in neurons, drawn beside outputs
    with forward bins and held-out neurons)."""
    x = np.asarray(x_txn, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    out = np.full((n_time, n_chan), fill, np.float64)
    t, n = min(n_time, x.shape[0]), min(n_chan, x.shape[1])
    out[:t, :n] = x[:t, :n]
    return out


def smooth_time(x, sd_bins, axis=-2):
    """Gaussian smoothing of `x` along `axis` (default: T of [..., T, D]), same shape.

    Each output bin is a normalised weighted mean of the available bins, so the edges
    are not pulled towards zero. sd_bins <= 0 returns a float copy.
    """
    x = np.asarray(x, dtype=np.float64)
    if sd_bins <= 0:
        return x.copy()
    n = x.shape[axis]
    t = np.arange(n)
    # A dense [T, T] weight matrix: T is ~100 bins, and one matmul over all trials and
    # channels is much faster than a Python loop of 1-D convolutions.
    k_txt = np.exp(-0.5 * ((t[:, None] - t[None, :]) / float(sd_bins)) ** 2)
    k_txt /= k_txt.sum(axis=1, keepdims=True)
    x_moved = np.moveaxis(x, axis, -1)              # [..., T]
    return np.moveaxis(x_moved @ k_txt.T, -1, axis)


def _stack_offsets(traces, n):
    """Vertical layout for overlaid multi-channel traces.

    traces: list of [T, C] arrays (None allowed) drawn on the same axes.
    Returns (baseline [n], offset): channel i is drawn as x - baseline[i] + i*offset, so
    every channel starts at its own row and the rows never overlap.
    """
    both = np.concatenate([np.where(np.isfinite(tr[:, :n]), tr[:, :n], np.nan)
                           for tr in traces if tr is not None], axis=0)
    # A diverged model (NaN/inf rates) must still plot: ignore non-finite values and
    # fall back to baseline 0 / offset 1 where nothing finite is left.
    finite = np.isfinite(both)
    lo = np.where(finite, both, np.inf).min(axis=0)
    hi = np.where(finite, both, -np.inf).max(axis=0)
    ok = np.isfinite(lo)
    lo = np.where(ok, lo, 0.0)
    span = float(np.max(hi[ok] - lo[ok])) if ok.any() else 0.0
    return lo, (1.1 * span if span > 0 else 1.0)


def _stacked_yticks(ax, n, offset, prefix):
    """Labels each stacked row by its channel index instead of meaningless y values."""
    # At most ~5 labelled ticks: each tick is a costly text object to lay out and draw.
    step = max(1, int(np.ceil(n / 5)))
    idx = np.arange(0, n, step)
    ax.set_yticks(idx * offset)
    ax.set_yticklabels(["%s%d" % (prefix, i) for i in idx], fontsize=7)
    ax.set_ylim(-0.3 * offset, n * offset)


def _as_2d(x):
    """[T] -> [T, 1]; None passes through."""
    if x is None:
        return None
    x = np.asarray(x, dtype=np.float64)
    return x[:, None] if x.ndim == 1 else x


def _time_ticks(n_time):
    """About 5 round tick positions (steps of 1, 2 or 5 x 10^k) within [0, n_time - 1]."""
    raw = max(1.0, (n_time - 1) / 5.0)
    mag = 10.0 ** np.floor(np.log10(raw))
    step = mag * min((m for m in (1, 2, 5, 10) if m * mag >= raw))
    return np.arange(0, n_time, step)


def _label(ax, text, axis="y", side_offset=-0.09):
    """Axis label at a fixed position: automatic placement measures every tick label of
    every sibling axes, which costs more than drawing the whole figure."""
    if axis == "y":
        ax.set_ylabel(text, fontsize=8)
        ax.yaxis.set_label_coords(side_offset, 0.5)
    else:
        ax.set_xlabel(text, fontsize=8)
        ax.xaxis.set_label_coords(0.5, -0.17)


def _title(ax, text):
    """Title at a fixed height (an explicit y skips matplotlib's overlap search)."""
    ax.set_title(text, fontsize=9, y=1.0, pad=3)


def plot_examples(examples, output_dist="poisson", conversion_factor=None, title="",
                  max_traces=10, smooth_sd_bins=2.0, dpi=72):
    """Figure with one column per example trial and rows rates / data / factors / inputs.

    examples: list of dicts of sample-averaged numpy arrays for one trial each:
      data_txd [T, D] spike counts (Poisson) or data (Gaussian); rates_txd [T, D] rates in
      counts/bin (Gaussian: means); optional vars_txd [T, D] (Gaussian variances);
      optional truth_txd [T, D]; factors_txf [T, F]; optional controller_outputs_txu [T, U];
      optional ext_input_txi [T, I]; optional input_truth_txi [T, I] (the generator's true
      input, e.g. `input_<split>_truth`); label (str, the column title).
    conversion_factor: multiplier from rates to the truth's units (see `truth_scale`, which
      resolves the ITB convention); applied only to examples that have truth_txd, since
      the smoothed-spike comparison is in counts/bin (as the original's plot).
    Rows: 1) first `max_traces` neurons' rates over the truth (else over smoothed data);
      2) data image (neurons x time); 3) factors; 4) inferred / external / true inputs
      (only when any example has one). One legend at the top explains all colours.
    Returns a Figure attached to a FigureCanvasAgg.
    """
    if not examples:
        raise ValueError("plot_examples needs at least one example")
    # continuous data (Gaussian, ZIG, gamma) are drawn as values, counts as spikes
    gaussian = not observation.for_dist(output_dist).counts
    scale = 1.0 if conversion_factor is None else float(conversion_factor)
    any_inputs = any(ex.get(k) is not None for ex in examples
                     for k in ("controller_outputs_txu", "ext_input_txi", "input_truth_txi"))
    nrows = 4 if any_inputs else 3
    ncols = len(examples)

    width = 4.4 * ncols + 1.5
    fig = Figure(figsize=(width, 2.1 * nrows + 1.1), dpi=dpi)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    legend = {}   # label -> handle, gathered from all panels, drawn once at the top

    data_all = [np.asarray(ex["data_txd"], dtype=np.float64) for ex in examples]
    vmin, vmax = _data_color_limits(data_all, gaussian)
    for col, ex in enumerate(examples):
        rates_txd = np.asarray(ex["rates_txd"], dtype=np.float64)
        n_time = rates_txd.shape[0]
        t = np.arange(n_time)
        first, last = col == 0, col == ncols - 1
        _plot_rates(axes[0, col], ex, col, rates_txd, data_all[col], scale, gaussian,
                    max_traces, smooth_sd_bins, legend)
        _plot_data(fig, axes[1, col], data_all[col], n_time, gaussian, vmin, vmax, first,
                   last)
        _plot_factors(axes[2, col], ex["factors_txf"], t, max_traces, first, legend)
        if any_inputs:
            _plot_inputs(axes[3, col], ex, t, first, last, legend)
        _time_axes(axes[:, col], n_time)
    _lay_out(fig, legend, width, nrows, ncols, title)
    return fig


def _data_color_limits(data_all, gaussian):
    """(vmin, vmax) shared by the data images of all columns, so that they compare:
    the data's range (Gaussian), else 0 to the largest count (at least 1). Missing
    entries (NaN, --nan_is_missing) are left out; they show as blanks."""
    if gaussian:
        vmin = min(float(np.nanmin(d)) for d in data_all)
        return vmin, max(max(float(np.nanmax(d)) for d in data_all), vmin + 1e-9)
    return 0.0, max(1.0, max(float(np.nanmax(d)) for d in data_all))


def _plot_rates(ax, ex, col, rates_txd, data_txd, scale, gaussian, max_traces,
                smooth_sd_bins, legend):
    """Row 1 of plot_examples: the first max_traces neurons' inferred rates [T, D], times
    `scale` when ex has truth_txd, stacked over that truth, or over the data [T, D]
    smoothed when there is none; Gaussian means with a +-1 s.d. band (ex's vars_txd)."""
    n_time, n_chan = rates_txd.shape
    n = min(max_traces, n_chan)
    t = np.arange(n_time)
    truth_txd = _as_2d(ex.get("truth_txd"))
    std_txd = None
    if gaussian and ex.get("vars_txd") is not None:
        std_txd = np.sqrt(np.maximum(np.asarray(ex["vars_txd"], dtype=np.float64), 0.0))
    s = scale if truth_txd is not None else 1.0
    pred = rates_txd[:, :n] * s
    if truth_txd is not None:
        ref, ref_label, ref_color = truth_txd[:, :n], "true rate", COLOR_TRUTH
    else:
        ref = smooth_time(data_txd[:, :n], smooth_sd_bins)
        ref_label = "smoothed %s (s.d. %g bins)" % ("data" if gaussian else "spikes",
                                                   smooth_sd_bins)
        ref_color = COLOR_SMOOTHED
    band = None
    if std_txd is not None:
        band = (pred - std_txd[:, :n] * abs(s), pred + std_txd[:, :n] * abs(s))
    lo, offset = _stack_offsets([pred, ref] + (list(band) if band else []), n)
    shift = np.arange(n) * offset - lo        # [n], added to every [T, n] trace
    legend[ref_label] = ax.plot(t, ref + shift, color=ref_color, lw=1.0)[0]
    if band is not None:
        for i in range(n):
            h = ax.fill_between(t, band[0][:, i] + shift[i], band[1][:, i] + shift[i],
                                color=COLOR_INFERRED, alpha=0.2, lw=0)
        legend["inferred ±1 s.d."] = h
    legend["inferred (LFADS)"] = ax.plot(t, pred + shift, color=COLOR_INFERRED, lw=1.0)[0]
    _stacked_yticks(ax, n, offset, "n")
    _title(ax, "%s: %s" % (ex.get("label", "example %d" % col),
                           "inferred vs true" if truth_txd is not None
                           else "inferred vs smoothed data"))
    if col == 0:
        if truth_txd is not None and s != 1.0:
            unit = ("mean x scale to truth units" if gaussian
                    else "rate x conversion factor")
        else:
            unit = "mean (data units)" if gaussian else "rate (counts/bin)"
        _label(ax, "neuron: %s\n(rows offset by %.3g)" % (unit, offset))


def _plot_data(fig, ax, data_txd, n_time, gaussian, vmin, vmax, first, last):
    """Row 2 of plot_examples: the data [T, D] as an image (neurons x time) over n_time
    bins; the last column carries the colour bar."""
    im = ax.imshow(data_txd.T, aspect="auto", origin="lower", interpolation="nearest",
                   cmap="viridis" if gaussian else "gray_r", vmin=vmin, vmax=vmax,
                   extent=(-0.5, n_time - 0.5, -0.5, data_txd.shape[1] - 0.5))
    _title(ax, "data (all %d channels)" % data_txd.shape[1] if gaussian
           else "spike counts (all %d neurons)" % data_txd.shape[1])
    if first:
        _label(ax, "neuron")
    if last:
        # An inset colour bar does not steal width from this column's axes, so all
        # rows stay aligned in time.
        cax = ax.inset_axes([1.015, 0.0, 0.025, 1.0])
        cb = fig.colorbar(im, cax=cax)
        cb.set_label("value" if gaussian else "spikes/bin", fontsize=8)
        cb.ax.tick_params(labelsize=7)


def _plot_factors(ax, factors_txf, t, max_traces, first, legend):
    """Row 3 of plot_examples: the first max_traces factors [T, F], stacked like the
    rates, over the time bins t [T]."""
    factors_txf = _as_2d(factors_txf)
    nf = min(max_traces, factors_txf.shape[1])
    lo, offset = _stack_offsets([factors_txf], nf)
    legend["factors"] = ax.plot(t, factors_txf[:, :nf] - lo + np.arange(nf) * offset,
                                color=COLOR_FACTORS, lw=1.0)[0]
    _stacked_yticks(ax, nf, offset, "f")
    _title(ax, "factors (first %d of %d)" % (nf, factors_txf.shape[1]))
    if first:
        _label(ax, "factor (a.u.)\n(rows offset by %.3g)" % offset)


def _plot_inputs(ax, ex, t, first, last, legend):
    """Row 4 of plot_examples: the inferred inputs [T, U] (ex's controller_outputs_txu),
    with the external [T, I] and true inputs [T, I] over the time bins t [T].

    External and true inputs go on a second y axis when there are inferred inputs,
    because their scale (e.g. a pulse of height 20) has nothing to do with u_t's.
    """
    u_txu = _as_2d(ex.get("controller_outputs_txu"))
    if u_txu is not None:
        for j in range(u_txu.shape[1]):
            legend["inferred input u%d" % j] = ax.plot(
                t, u_txu[:, j], color=COLOR_CONTROLLER, lw=1.0,
                alpha=1.0 - 0.5 * j / u_txu.shape[1])[0]
        if first:
            _label(ax, "inferred input (a.u.)")
    others = [(k, c, lbl) for k, c, lbl in
              (("ext_input_txi", COLOR_EXT_INPUT, "external input"),
               ("input_truth_txi", COLOR_TRUE_INPUT, "true input"))
              if ex.get(k) is not None]
    if others:
        ax2 = ax.twinx() if u_txu is not None else ax
        for key, color, lbl in others:
            x = _as_2d(ex[key])
            for j in range(x.shape[1]):
                legend["%s %d" % (lbl, j)] = ax2.plot(
                    t, x[:, j], color=color, lw=1.0,
                    ls="--" if key == "input_truth_txi" else "-")[0]
        if ax2 is not ax:
            ax2.tick_params(labelsize=7)
            if last:
                _label(ax2, "external / true input", side_offset=1.1)
        elif first:
            _label(ax, "external / true input")
    _title(ax, "inputs")


def _time_axes(column_axes, n_time):
    """The time axis of one column's axes (top to bottom), n_time bins: few explicit
    ticks (tick objects dominate the drawing time), labelled on the bottom row only."""
    xticks = _time_ticks(n_time)
    for r, ax in enumerate(column_axes):
        ax.set_xlim(-0.5, n_time - 0.5)
        ax.set_xticks(xticks)
        ax.tick_params(labelsize=7)
        if r < len(column_axes) - 1:
            ax.tick_params(labelbottom=False)
    _label(column_axes[-1], "time bin", axis="x")


def _lay_out(fig, legend, width, nrows, ncols, title):
    """Sizes `fig` (width inches, nrows x ncols panels of plot_examples) and draws its
    title and the one legend of all panels at the top.

    Layout in inches, fixed margins: constrained/tight layout solvers cost more than
    drawing the whole figure. The top strip holds the title and the legend rows.
    """
    ncol_legend = min(len(legend), 3 * ncols)
    legend_rows = -(-len(legend) // ncol_legend)
    top_in = 0.45 + 0.2 * legend_rows + 0.3
    height = 2.1 * nrows + top_in + 0.45
    fig.set_size_inches(width, height)
    fig.subplots_adjust(left=0.85 / width, right=1 - 0.65 / width, top=1 - top_in / height,
                        bottom=0.45 / height, hspace=0.38, wspace=0.2)
    if title:
        fig.suptitle(title, fontsize=11, y=1 - 0.12 / height, va="top")
    fig.legend(list(legend.values()), list(legend.keys()), loc="upper center",
               bbox_to_anchor=(0.5, 1 - 0.42 / height), ncol=ncol_legend,
               fontsize=8, frameon=False)


def figure_to_rgb_array(fig):
    """Rasterises `fig` to a uint8 [H, W, 3] array (e.g. for a TensorBoard image summary)."""
    canvas = fig.canvas
    if not isinstance(canvas, FigureCanvasAgg):
        canvas = FigureCanvasAgg(fig)
    canvas.draw()
    # buffer_rgba is a view of the renderer's memory: copy before the next draw reuses it.
    return np.array(canvas.buffer_rgba(), dtype=np.uint8)[:, :, :3].copy()


def save_figure(fig, path, dpi=None):
    """Writes `fig` as PNG to `path` atomically (temp file in the same folder, then rename)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp_path = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                                    suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=dpi if dpi is not None else fig.dpi)
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    return path


def plot_population(histories, metric, exploits=(), title=""):
    """The metric of a search's trials over epochs, with population-based training's
    exploits marked.

    histories: {trial: (epochs [n], values [n])}, the reports of each trial in order.
    exploits: [(trial, source trial, epoch of the restored checkpoint, first epoch
      reported after it)]: the trial took the source's weights at that epoch; drawn as
      a dashed line from the source's value there to the trial's next report, with a
      marker.
    Returns a matplotlib Figure.
    """
    fig = Figure(figsize=(8, 4.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    colors = {}
    after_exploit = {(trial, next_epoch) for trial, _, _, next_epoch in exploits}
    for i, (trial, (epochs, values)) in enumerate(sorted(histories.items())):
        epochs, values = np.asarray(epochs, float), np.asarray(values, float)
        # an exploit (the weights of another trial) or a jump back in epochs starts a
        # new segment: the line does not join the trial's old weights to its new ones
        breaks = [0] + [j for j in range(1, len(epochs)) if epochs[j] <= epochs[j - 1]
                        or (trial, int(epochs[j])) in after_exploit] + [len(epochs)]
        color = "C%d" % (i % 10)
        colors[trial] = color
        for a, b in zip(breaks, breaks[1:]):
            ax.plot(epochs[a:b], values[a:b], color=color, lw=1.2,
                    label=trial if a == 0 else None)
    marked = False
    for trial, source, epoch, next_epoch in exploits:
        if source not in histories or trial not in histories:
            continue
        src_epochs, src_values = (np.asarray(x, float) for x in histories[source])
        own_epochs, own_values = (np.asarray(x, float) for x in histories[trial])
        at_src = np.nonzero(src_epochs == epoch)[0]
        at_own = np.nonzero(own_epochs == next_epoch)[0]
        if not len(at_src) or not len(at_own):
            continue
        y0, y1 = src_values[at_src[-1]], own_values[at_own[-1]]
        ax.plot([epoch, next_epoch], [y0, y1], color=colors[trial], ls="--", lw=1.0)
        ax.plot([epoch], [y0], marker="o", ms=7, mfc="none", color="black",
                label=None if marked else "exploit (took the weights of a better trial)")
        marked = True
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    finite = [v for _, values in histories.values() for v in values if np.isfinite(v)]
    if finite:
        low, high = np.percentile(finite, [0, 95])
        pad = 0.05 * (high - low or 1.0)
        ax.set_ylim(low - pad, high + pad)
    ax.set_title(title or "%s of every trial (lower is better)" % metric, fontsize=10)
    ax.legend(fontsize=7, ncol=2, frameon=False)
    fig.tight_layout()
    return fig
