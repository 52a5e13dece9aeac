#!/usr/bin/env bash
# Generates the seven synthetic benchmark data sets of LFADS, two sets laid out as the Neural
# Latents Benchmark's (held-out neurons, forward bins, conditions) with 2,000 and 200 training
# trials and the same 500 validation trials, and two calcium-imaging sets (deconvolved
# traces of a chaotic RNN's spikes), the second with 20 % of its entries missing (NaN) and
# otherwise identical.
#
#   bash synth_data/run_generate_synth_data.sh [OUTPUT_DIR]     (default /tmp/rnn_synth_data_v1.0/)
#
# Runs from any working directory once the package is installed (pip install -e .): the
# generators run as modules of the installed synth_data package. Set PYTHON to choose the
# interpreter. SYNTH_EXTRA_FLAGS is appended to every generator call (later flags win), e.g.
# SYNTH_EXTRA_FLAGS="--C=20" makes small versions of all sets for quick checks
# (scripts/run_readme_examples.sh uses it in tests). The generators run in two parallel lanes
# (each is single-threaded numpy); their output is printed in order at the end.
set -euo pipefail

SYNTH_PATH="${1:-/tmp/rnn_synth_data_v1.0/}"
PYTHON="${PYTHON:-python}"
mkdir -p "$SYNTH_PATH"
COMMON=(--save_dir="$SYNTH_PATH" --synth_data_seed=5 --T=1.0 --train_percentage=0.8 --dt=0.01
        --max_firing_rate=30.0)
LOG_DIR="$(mktemp -d)"
trap 'rm -rf "$LOG_DIR"' EXIT

# gen <number> <description> <generator script> <flags...>: one generator call, output to a log.
gen() {
    local log="$LOG_DIR/$1" description="$2" script="$3"
    shift 3
    echo "$description" > "$log"
    # shellcheck disable=SC2086  # SYNTH_EXTRA_FLAGS is a list of flags
    "$PYTHON" -m "synth_data.${script%.py}" "${COMMON[@]}" "$@" ${SYNTH_EXTRA_FLAGS:-} \
        >> "$log" 2>&1
}

lane1() {
    gen 1 "Generating chaotic rnn data with no input pulses (g=1.5) with spiking noise" \
        generate_chaotic_rnn_data.py --datafile_name=chaotic_rnn_no_inputs --C=400 --N=50 \
        --S=50 --nreplications=10 --g=1.5 --x0_std=1.0 --tau=0.025 --input_magnitude=0.0 \
        --noise_type=poisson &&
    gen 2 "Generating chaotic rnn data with no input pulses (g=1.5) with Gaussian noise" \
        generate_chaotic_rnn_data.py --datafile_name=gaussian_chaotic_rnn_no_inputs --C=400 \
        --N=50 --S=50 --nreplications=10 --g=1.5 --x0_std=1.0 --tau=0.025 \
        --input_magnitude=0.0 --noise_type=gaussian &&
    gen 3 "Generating chaotic rnn data with input pulses (g=1.5)" \
        generate_chaotic_rnn_data.py --datafile_name=chaotic_rnn_inputs_g1p5 --C=400 --N=50 \
        --S=50 --nreplications=10 --g=1.5 --x0_std=1.0 --tau=0.025 --input_magnitude=20.0 \
        --noise_type=poisson &&
    gen 6 "Generating integration-to-bound (ITB) rnn data" \
        generate_itb_data.py --datafile_name=itb_rnn --u_std=0.25 \
        --checkpoint_path=SAMPLE_CHECKPOINT --C=800 --N=50 --nreplications=5 --tau=0.025 &&
    gen 10 "Generating calcium imaging data (deconvolved traces) of a chaotic rnn (g=1.5)" \
        generate_calcium_data.py --datafile_name=calcium_chaotic_rnn --C=50 --N=50 \
        --nreplications=20 --g=1.5 --x0_std=1.0 --tau=0.025 --tau_calcium=0.3 \
        --noise_std=0.3 &&
    # The same seed and flags: the observed entries equal the set above. The stem does not
    # start with the one above, which would load this file as well (a second session).
    gen 11 "Generating calcium imaging data of a chaotic rnn with 20% of entries missing" \
        generate_calcium_data.py --datafile_name=calcium_missing20_chaotic_rnn --C=50 --N=50 \
        --nreplications=20 --g=1.5 --x0_std=1.0 --tau=0.025 --tau_calcium=0.3 \
        --noise_std=0.3 --missing_fraction=0.2
}

lane2() {
    gen 4 "Generating chaotic rnn data with input pulses (g=2.5)" \
        generate_chaotic_rnn_data.py --datafile_name=chaotic_rnn_inputs_g2p5 --C=400 --N=50 \
        --S=50 --nreplications=10 --g=2.5 --x0_std=1.0 --tau=0.025 --input_magnitude=20.0 \
        --noise_type=poisson &&
    gen 5 "Generating multi-session data (5 sessions of 20 units from one 100-unit RNN)" \
        generate_chaotic_rnn_data.py --datafile_name=chaotic_rnn_multisession --C=150 --N=100 \
        --S=20 --npcs=10 --nreplications=40 --g=1.5 --x0_std=1.0 --tau=0.025 \
        --input_magnitude=0.0 --noise_type=poisson &&
    gen 7 "Generating chaotic rnn data with external input labels (two RNNs)" \
        generate_labeled_rnn_data.py --datafile_name=chaotic_rnns_labeled --C=400 --N=50 \
        --nreplications=10 --g=1.5 --x0_std=1.0 --tau=0.025 &&
    gen 8 "Generating NLB-style chaotic rnn data (50 held-in, 20 held-out neurons), 2000 trials" \
        generate_nlb_style_data.py --datafile_name=chaotic_rnn_nlb_2000train --C=50 --N=70 \
        --n_heldout=20 --T_forward=0.2 --nreplications=50 --g=1.5 --x0_std=1.0 --tau=0.025 \
        --ntrain=2000 &&
    gen 9 "Generating NLB-style chaotic rnn data (50 held-in, 20 held-out neurons), 200 trials" \
        generate_nlb_style_data.py --datafile_name=chaotic_rnn_nlb_200train --C=50 --N=70 \
        --n_heldout=20 --T_forward=0.2 --nreplications=50 --g=1.5 --x0_std=1.0 --tau=0.025 \
        --ntrain=200
}

lane1 & pid1=$!
lane2 & pid2=$!
status=0
wait "$pid1" || status=1
wait "$pid2" || status=1
for i in 1 2 3 4 5 6 7 8 9 10 11; do
    if [[ -f "$LOG_DIR/$i" ]]; then cat "$LOG_DIR/$i"; fi
done
if [[ $status -ne 0 ]]; then
    echo "ERROR: a generator failed (see its output above)." >&2
    exit 1
fi
echo "All synthetic data sets written to $SYNTH_PATH"
