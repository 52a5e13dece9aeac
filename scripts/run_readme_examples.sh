#!/usr/bin/env bash
# Runs every command of the original LFADS README, as written, and checks what each wrote.
#
#   bash scripts/run_readme_examples.sh [EPOCHS]          (default 2 epochs per model)
#
# 1. generates the synthetic data (synth_data/run_generate_synth_data.sh);
# 2. trains the README's seven examples with their flags plus --max_epochs=EPOCHS;
# 3. runs the README's three evaluation commands on every example (posterior sampling with
#    --batch_size=1024, prior sampling with --batch_size=50, write_model_params), and
#    posterior_push_mean as well on the five-session example, each with that example's flags,
#    and checks that every session got its own files with the right keys and shapes.
#
# Environment (defaults reproduce the README's paths):
#   DATA_DIR           synthetic data folder            (/tmp/rnn_synth_data_v1.0/)
#   SAVE_ROOT          parent of the lfads_save_dirs    (/tmp)
#   SYNTH_EXTRA_FLAGS  extra generator flags, e.g. "--C=20" for small data sets
#   EXTRA_FLAGS        extra run_lfads flags appended to every command (later flags win),
#                      e.g. smaller models for a quick check
#   PS_EXTRA_FLAGS     extra flags for the posterior-sampling command only (e.g. fewer
#                      samples than the README's 1024 for a quick check)
#   SKIP_EVAL=1        train only (no evaluation commands)
#   SKIP_SYNTH=1       reuse existing data
#   JOBS=2             run the examples in two parallel lanes (their output is printed
#                      lane by lane at the end); the default 1 runs them one after another
# Existing save folders of the examples are removed first (they would be resumed otherwise).
#
# Two examples of the original README write into another example's folder: the Gaussian example
# uses /tmp/lfads_chaotic_rnn_inputs_g2p5 and the last one /tmp/lfads_chaotic_rnn_no_inputs.
# Their commands are run as written; their folders are then renamed (…_gaussian) so that the
# next example does not resume a model of another architecture (which stops with an error
# naming the differing flag).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EPOCHS="${1:-2}"
PYTHON="${PYTHON:-python}"
DATA_DIR="${DATA_DIR:-/tmp/rnn_synth_data_v1.0/}"
SAVE_ROOT="${SAVE_ROOT:-/tmp}"
EXTRA=(${EXTRA_FLAGS:-})
PS_EXTRA=(${PS_EXTRA_FLAGS:-})
RUN=("$PYTHON" "$ROOT/run_lfads.py")

fail() { echo "FAILED: $*" >&2; exit 1; }

if [[ "${SKIP_SYNTH:-0}" != 1 ]]; then
    echo "== synthetic data -> $DATA_DIR"
    bash "$ROOT/synth_data/run_generate_synth_data.sh" "$DATA_DIR" | tail -n 1
fi

for d in chaotic_rnn_no_inputs chaotic_rnn_inputs_g2p5 chaotic_rnn_multisession itb_rnn \
         chaotic_rnns_labeled; do
    rm -rf "$SAVE_ROOT/lfads_$d" "$SAVE_ROOT/lfads_${d}_gaussian" "$SAVE_ROOT/lfads_${d}_poisson"
done

# check_train <save_dir>: both checkpoint state files, EPOCHS fitlog lines, hps file, events
check_train() {
    local dir="$1"
    [[ -f "$dir/checkpoint" ]] || fail "$dir: no checkpoint state file"
    ls "$dir"/lfads_vae.ckpt-*.index > /dev/null 2>&1 || fail "$dir: no checkpoint files"
    [[ -f "$dir/hyperparameters-0.txt" ]] || fail "$dir: no hyperparameters-0.txt"
    [[ $(wc -l < "$dir/fitlog.csv") -eq $EPOCHS ]] || fail "$dir: fitlog.csv has not $EPOCHS lines"
    ls "$dir"/lfads_log/events.out.tfevents.* > /dev/null 2>&1 || fail "$dir: no TensorBoard events"
    echo "   ok: $dir ($(tail -n 1 "$dir/fitlog.csv" | cut -c1-60)...)"
}

train() {  # train <label> <flags...>
    local label="$1"; shift
    echo "== train: $label"
    "${RUN[@]}" --kind=train "$@" --max_epochs="$EPOCHS" "${EXTRA[@]}" \
        | grep -E "^(error|note|Stopping)" || true
}

# 1. chaotic rnn data with no input pulses (g = 1.5) with spiking noise (all flags listed)
EX1=(--data_dir=/tmp/rnn_synth_data_v1.0/ \
--data_filename_stem=chaotic_rnn_no_inputs \
--lfads_save_dir=/tmp/lfads_chaotic_rnn_no_inputs \
--co_dim=0 --factors_dim=20 --ext_input_dim=0 --controller_input_lag=1 \
--output_dist=poisson --do_causal_controller=false --batch_size=128 \
--learning_rate_init=0.01 --learning_rate_stop=1e-05 --learning_rate_decay_factor=0.95 \
--learning_rate_n_to_compare=6 --do_reset_learning_rate=false --keep_prob=0.95 \
--con_dim=128 --gen_dim=200 --ci_enc_dim=128 --ic_dim=64 --ic_enc_dim=128 \
--ic_prior_var_min=0.1 --gen_cell_input_weight_scale=1.0 --cell_weight_scale=1.0 \
--do_feed_factors_to_controller=true --kl_start_step=0 --kl_increase_steps=2000 \
--kl_ic_weight=1.0 --l2_con_scale=0.0 --l2_gen_scale=2000.0 --l2_start_step=0 \
--l2_increase_steps=2000 --ic_prior_var_scale=0.1 --ic_post_var_min=0.0001 \
--kl_co_weight=1.0 --prior_ar_nvar=0.1 --cell_clip_value=5.0 --max_ckpt_to_keep_lve=5 \
--do_train_prior_ar_atau=true --co_prior_var_scale=0.1 --csv_log=fitlog \
--feedback_factors_or_rates=factors --do_train_prior_ar_nvar=true --max_grad_norm=200.0 \
--device=gpu:0 --num_steps_for_gen_ic=100000000 --ps_nexamples_to_process=100000000 \
--checkpoint_name=lfads_vae --temporal_spike_jitter_width=0 \
--checkpoint_pb_load_name=checkpoint --inject_ext_input_to_gen=false \
--co_mean_corr_scale=0.0 --gen_cell_rec_weight_scale=1.0 --max_ckpt_to_keep=5 \
--output_filename_stem="" --ic_prior_var_max=0.1 --prior_ar_atau=10.0 \
--do_train_io_only=false --do_train_encoder_only=false \
--data_dir="$DATA_DIR" --lfads_save_dir="$SAVE_ROOT/lfads_chaotic_rnn_no_inputs")
example1() {
train "no inputs" "${EX1[@]}"
check_train "$SAVE_ROOT/lfads_chaotic_rnn_no_inputs"
evaluate_example "$SAVE_ROOT/lfads_chaotic_rnn_no_inputs" "${EX1[@]}"
}

# 2. chaotic rnn data with no input pulses (g = 1.5) with Gaussian noise
EX2=(--data_dir="$DATA_DIR" \
--data_filename_stem=gaussian_chaotic_rnn_no_inputs \
--lfads_save_dir="$SAVE_ROOT/lfads_chaotic_rnn_inputs_g2p5" \
--co_dim=1 --factors_dim=20 --output_dist=gaussian)
example2() {
train "Gaussian noise" "${EX2[@]}"
check_train "$SAVE_ROOT/lfads_chaotic_rnn_inputs_g2p5"
mv "$SAVE_ROOT/lfads_chaotic_rnn_inputs_g2p5" "$SAVE_ROOT/lfads_chaotic_rnn_inputs_g2p5_gaussian"
echo "   note: the README gives this example the g2.5 example's folder; moved to ..._gaussian"
evaluate_example "$SAVE_ROOT/lfads_chaotic_rnn_inputs_g2p5_gaussian" "${EX2[@]}"
}

# 3. chaotic rnn data with input pulses (g = 2.5); the README's evaluation commands are
#    written for this model
EX3=(--data_dir="$DATA_DIR" \
--data_filename_stem=chaotic_rnn_inputs_g2p5 \
--lfads_save_dir="$SAVE_ROOT/lfads_chaotic_rnn_inputs_g2p5" \
--co_dim=1 --factors_dim=20 --output_dist=poisson)
example3() {
train "input pulses g2.5" "${EX3[@]}"
check_train "$SAVE_ROOT/lfads_chaotic_rnn_inputs_g2p5"
evaluate_example "$SAVE_ROOT/lfads_chaotic_rnn_inputs_g2p5" "${EX3[@]}"
}

# 4. multi-session RNN data
EX4=(--data_dir="$DATA_DIR" \
--data_filename_stem=chaotic_rnn_multisession \
--lfads_save_dir="$SAVE_ROOT/lfads_chaotic_rnn_multisession" \
--factors_dim=10 --output_dist=poisson)
example4() {
train "multi-session" "${EX4[@]}"
check_train "$SAVE_ROOT/lfads_chaotic_rnn_multisession"
evaluate_example "$SAVE_ROOT/lfads_chaotic_rnn_multisession" "${EX4[@]}"
}

# 5. integration to bound model data
EX5=(--data_dir="$DATA_DIR" \
--data_filename_stem=itb_rnn \
--lfads_save_dir="$SAVE_ROOT/lfads_itb_rnn" \
--co_dim=1 --factors_dim=20 --controller_input_lag=0 --output_dist=poisson)
example5() {
train "integration to bound" "${EX5[@]}"
check_train "$SAVE_ROOT/lfads_itb_rnn"
evaluate_example "$SAVE_ROOT/lfads_itb_rnn" "${EX5[@]}"
}

# 6. chaotic RNN data with labels
EX6=(--data_dir="$DATA_DIR" \
--data_filename_stem=chaotic_rnns_labeled \
--lfads_save_dir="$SAVE_ROOT/lfads_chaotic_rnns_labeled" \
--co_dim=0 --factors_dim=20 --controller_input_lag=0 --ext_input_dim=1 \
--output_dist=poisson)
example6() {
train "labels as external input" "${EX6[@]}"
check_train "$SAVE_ROOT/lfads_chaotic_rnns_labeled"
evaluate_example "$SAVE_ROOT/lfads_chaotic_rnns_labeled" "${EX6[@]}"
}

# 7. the README's last example: Gaussian output on the integer spike counts; accepted, the
#    counts are treated as real values (a one-line note says so). It reuses example 1's folder.
EX7=(--data_dir="$DATA_DIR" \
--data_filename_stem=chaotic_rnn_no_inputs \
--lfads_save_dir="$SAVE_ROOT/lfads_chaotic_rnn_no_inputs" \
--co_dim=0 --factors_dim=20 --ext_input_dim=0 --controller_input_lag=1 \
--output_dist=gaussian)
example7() {
mv "$SAVE_ROOT/lfads_chaotic_rnn_no_inputs" "$SAVE_ROOT/lfads_chaotic_rnn_no_inputs_poisson"
train "Gaussian output on spike counts" "${EX7[@]}"
check_train "$SAVE_ROOT/lfads_chaotic_rnn_no_inputs"
mv "$SAVE_ROOT/lfads_chaotic_rnn_no_inputs" "$SAVE_ROOT/lfads_chaotic_rnn_no_inputs_gaussian"
mv "$SAVE_ROOT/lfads_chaotic_rnn_no_inputs_poisson" "$SAVE_ROOT/lfads_chaotic_rnn_no_inputs"
evaluate_example "$SAVE_ROOT/lfads_chaotic_rnn_no_inputs_gaussian" "${EX7[@]}"
}

# evaluate_example <save_dir> <training flags...>: the README's three evaluation commands
# (and posterior_push_mean for a multi-session model) with the example's own flags, then a
# check of every file they wrote. The README loads checkpoint_lve, which exists once the KL
# and L2 ramps are done (2000 steps with the README's flags); a short run falls back to the
# regular checkpoint.
evaluate_example() {
    [[ "${SKIP_EVAL:-0}" == 1 ]] && return 0
    local dir="$1"; shift
    local ckpt=checkpoint_lve; [[ -f "$dir/checkpoint_lve" ]] || ckpt=checkpoint
    local kinds=(posterior_sample_and_average prior_sample write_model_params)
    local n_sessions; n_sessions=$(ls "$DATA_DIR" | grep -c "^$(stem_of "$@")" || true)
    [[ $n_sessions -gt 1 ]] && kinds+=(posterior_push_mean)
    local kind extra
    for kind in "${kinds[@]}"; do
        case "$kind" in
            posterior_sample_and_average) extra=(--batch_size=1024 "${PS_EXTRA[@]}");;
            prior_sample) extra=(--batch_size=50);;
            *) extra=();;
        esac
        echo "== evaluate: $kind ($dir)"
        # the example's flags, EXTRA_FLAGS (model sizes), then the command's own flags
        "${RUN[@]}" --kind="$kind" "$@" --data_dir="$DATA_DIR" --lfads_save_dir="$dir" \
            "${EXTRA[@]}" --checkpoint_pb_load_name=$ckpt "${extra[@]}" \
            | grep -E "^(error|note)" || true
    done
    "$PYTHON" "$ROOT/scripts/check_eval_outputs.py" "$dir" "$DATA_DIR" "$(stem_of "$@")" \
        "${kinds[@]}" || fail "$dir: evaluation outputs"
}
stem_of() {  # the last --data_filename_stem=... among the arguments
    local a stem=""
    for a in "$@"; do [[ "$a" == --data_filename_stem=* ]] && stem="${a#*=}"; done
    echo "$stem"
}

# Examples 1 and 7 share a folder, as do 2 and 3; the two lanes keep each of those orders.
lane1() { example1; example7; example4; example5; }
lane2() { example2; example3; example6; }
if [[ "${JOBS:-1}" == 2 ]]; then
    LOG_DIR="$(mktemp -d)"
    trap 'rm -rf "$LOG_DIR"' EXIT
    lane1 > "$LOG_DIR/1" 2>&1 & pid1=$!
    lane2 > "$LOG_DIR/2" 2>&1 & pid2=$!
    status=0
    wait "$pid1" || status=1
    wait "$pid2" || status=1
    cat "$LOG_DIR/1" "$LOG_DIR/2"
    [[ $status -eq 0 ]] || fail "an example failed (see above)"
else
    lane1
    lane2
fi
echo "All README examples ran."
