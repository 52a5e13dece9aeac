#!/usr/bin/env bash
# LFADS in two minutes on a laptop CPU: small synthetic data, a small model, denoised rates.
#
#   bash scripts/quickstart.sh [WORK_DIR]        (default /tmp/lfads_quickstart)
#
# 1. generates a small chaotic-RNN data set with input pulses (the original's generator,
#    seed 5, 60 conditions x 10 trials, 100 bins x 50 neurons);
# 2. trains LFADS on it for a few minutes (--max_epochs, a smaller model than the README's);
# 3. runs posterior_sample_and_average on the lowest-validation checkpoint;
# 4. prints R² of the denoised rates against the true rates and writes example figures.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="${1:-/tmp/lfads_quickstart}"
PYTHON="${PYTHON:-python}"
DATA="$WORK/data"
SAVE="$WORK/model"
EPOCHS="${EPOCHS:-60}"
mkdir -p "$DATA"

echo "== 1. data: $DATA"
"$PYTHON" "$ROOT/synth_data/generate_chaotic_rnn_data.py" --save_dir="$DATA" \
    --datafile_name=quickstart --synth_data_seed=5 --C=60 --N=50 --S=50 \
    --nreplications=10 --g=2.5 --input_magnitude=20.0 --noise_type=poisson

MODEL_FLAGS=(--data_dir="$DATA" --data_filename_stem=quickstart --lfads_save_dir="$SAVE"
             --co_dim=1 --factors_dim=20 --ic_dim=32 --gen_dim=64 --ic_enc_dim=64
             --ci_enc_dim=32 --con_dim=32 --batch_size=40 --kl_increase_steps=300
             --l2_increase_steps=300 --device=cpu:0)

echo "== 2. training (up to $EPOCHS epochs): $SAVE"
"$PYTHON" "$ROOT/run_lfads.py" --kind=train "${MODEL_FLAGS[@]}" --max_epochs="$EPOCHS" \
    --seed=1 --plot_every_n_epochs=20 | grep -E "^(Epoch|Total model|Stopping|note)" || true

echo "== 3. posterior sampling"
"$PYTHON" "$ROOT/run_lfads.py" --kind=posterior_sample_and_average "${MODEL_FLAGS[@]}" \
    --batch_size=64 --checkpoint_pb_load_name=checkpoint_lve | grep -E "^(Wrote|note)"

OUT="$SAVE/model_runs_dataset_N50_S50_valid_posterior_sample_and_average"
echo "== 4. denoised rates vs the truth (valid split)"
"$PYTHON" "$ROOT/scripts/compare_to_truth.py" --output_file="$OUT" \
    --data_file="$DATA/quickstart_dataset_N50_S50" --split=valid --smoothing_sd_bins=4
"$PYTHON" "$ROOT/scripts/plot_lfads_outputs.py" --output_file="$OUT" \
    --data_file="$DATA/quickstart_dataset_N50_S50" --split=valid --trials=0,1 \
    --out_dir="$WORK/figures"
echo "Done. TensorBoard: tensorboard --logdir=$SAVE"
