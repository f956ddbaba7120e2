#!/usr/bin/env bash
# Retrain the built-in ShapeWorld model on the clean splits and measure it, start to end:
#   image tokenizer -> SFT -> the GRPO ablation (which remedy keeps the policy varied) -> GRPO with the chosen
#   remedy, and the train-prompts-only ablation of it -> every model judged on test / heldout / zeroshot
#   (300 fixed scenes x 8 images) and on plans a person writes -> paired comparisons with the SFT model -> curves.
# Every step resumes where it stopped or skips what is done, so rerunning after an interruption continues.
# About 9 hours on 2 CPU cores (SFT 5.5, ablation 1.2, each GRPO run about 1, evaluations 0.5).
#
#   bash docs/scripts/retrain_builtin.sh [RUNS_FOLDER]      (default: runs)
#
# Shipping is then `cp RUNS/shapeworld-grpo/model/* gotr1_core/assets/shapeworld-tiny/` and
# `python docs/scripts/make_pictures.py` (every picture in the docs, redrawn by the new model).
set -euo pipefail
[ -f trainer/configs/shapeworld_sft.yaml ] || { echo "run this from the repository's root folder" >&2; exit 1; }
R=${1:-runs}
done_model() { [ -f "$1/model.safetensors" ]; }

[ -f "$R/shapeworld-vq/vq.safetensors" ] ||
    gotr1-train vq --config trainer/configs/shapeworld_vq.yaml --resume output_dir="$R/shapeworld-vq" save_every=250
done_model "$R/shapeworld-sft/model" ||
    gotr1-train sft --config trainer/configs/shapeworld_sft.yaml --resume output_dir="$R/shapeworld-sft" \
        vq_run="$R/shapeworld-vq" save_every=100

# Which remedy keeps the policy varied, from this SFT model; the choice rule is fixed in grpo_ablation.choose.
python docs/scripts/grpo_ablation.py --model "$R/shapeworld-sft/model" --out "$R/ablation-sft" --steps 50 \
    --count 100 --samples 8 --variants none,entropy_bonus,dynamic_sampling,hot_rollouts,strong_kl,sample_mean,combined
read -r -a REMEDY < <(cat "$R/ablation-sft/choice.args"; echo)

for run in grpo grpo_train_only; do
    out="$R/shapeworld-${run//_/-}"
    done_model "$out/model" ||
        gotr1-train grpo --config "trainer/configs/shapeworld_$run.yaml" --resume output_dir="$out" \
            model="$R/shapeworld-sft/model" save_every=25 keep_last=17 "${REMEDY[@]}"  # every 25th step kept
    gotr1-train plot "$out" -o "$out/curves.png" --title "GRPO from the SFT model ($run)"
done

mkdir -p "$R/eval"
for split in test heldout zeroshot; do
    for name in sft grpo grpo-train-only; do
        [ -f "$R/eval/$name-$split.json" ] ||
            gotr1-train eval "$R/shapeworld-$name/model" --split "$split" --count 300 --samples 8 \
                --output "$R/eval/$name-$split.json"
    done
    gotr1-train compare "$R/eval/sft-$split.json" "$R/eval/grpo-$split.json" "$R/eval/grpo-train-only-$split.json" \
        --names SFT,GRPO,GRPO-train-only --output "$R/eval/compare-$split.md"
    [ -f "$R/eval/grpo-plans-$split.json" ] ||
        gotr1-train eval "$R/shapeworld-grpo/model" --plans --split "$split" --count 300 --samples 2 \
            --output "$R/eval/grpo-plans-$split.json"
done
python docs/scripts/model_report.py --evals "$R/eval" --output "$R/eval/report.md"   # tables and targets
