#!/usr/bin/env bash
# Retrain the built-in ShapeWorld model on the clean splits and measure it, start to end:
#   image tokenizer -> SFT -> the GRPO ablation (which remedy keeps the policy varied) -> GRPO with the chosen
#   remedy, and the train-prompts-only ablation of it -> every model judged on test / heldout / zeroshot
#   (300 fixed scenes x 8 images) and on plans a person writes -> paired comparisons with the SFT model -> curves,
#   tables and each target met or missed (RUNS/eval/report.md).
# Every step resumes where it stopped or skips what is done, so rerunning after an interruption continues.
# About 8 hours on 2 CPU cores (SFT 5.5; after it, jobs run two at a time on one core each: on 2 cores that
# does 1.4x the work of one job on both, measured on GRPO steps).
#
#   bash docs/scripts/retrain_builtin.sh [RUNS_FOLDER]      (default: runs)
#
# Shipping is then `cp RUNS/shapeworld-grpo/model/* gotr1_core/assets/shapeworld-tiny/` and
# `python docs/scripts/make_pictures.py` (every picture in the docs, redrawn by the new model).
set -euo pipefail
[ -f trainer/configs/shapeworld_sft.yaml ] || { echo "run this from the repository's root folder" >&2; exit 1; }
R=${1:-runs}

done_model() { [ -f "$1/model.safetensors" ]; }
one_thread() { export OMP_NUM_THREADS=1; "$@"; }
wait_all() { local pid; for pid in "$@"; do wait "$pid"; done; }   # fails when any job failed
two_at_a_time() {  # each argument one command (words without spaces), at most two running, one core each
    local running=() command
    for command in "$@"; do
        if [ ${#running[@]} -ge 2 ]; then wait "${running[0]}"; running=("${running[@]:1}"); fi
        # shellcheck disable=SC2086
        one_thread $command &
        running+=($!)
    done
    wait_all "${running[@]}"
}

[ -f "$R/shapeworld-vq/vq.safetensors" ] ||
    gotr1-train vq --config trainer/configs/shapeworld_vq.yaml --resume output_dir="$R/shapeworld-vq" save_every=250
done_model "$R/shapeworld-sft/model" ||
    gotr1-train sft --config trainer/configs/shapeworld_sft.yaml --resume output_dir="$R/shapeworld-sft" \
        vq_run="$R/shapeworld-vq" save_every=100

# Which remedy keeps the policy varied, from this SFT model; the choice rule is fixed in grpo_ablation.choose.
python docs/scripts/grpo_ablation.py --model "$R/shapeworld-sft/model" --out "$R/ablation-sft" --steps 50 \
    --count 100 --samples 8 --jobs 2 \
    --variants none,entropy_bonus,dynamic_sampling,hot_rollouts,strong_kl,sample_mean,combined
read -r -a REMEDY < <(cat "$R/ablation-sft/choice.args"; echo)

grpo() {  # $1: the config's name; every 25th step kept, to go back to if the policy narrows later
    local out="$R/shapeworld-${1//_/-}"
    done_model "$out/model" ||
        gotr1-train grpo --config "trainer/configs/shapeworld_$1.yaml" --resume output_dir="$out" \
            model="$R/shapeworld-sft/model" save_every=25 keep_last=17 "${REMEDY[@]}"
    gotr1-train plot "$out" -o "$out/curves.png" --title "GRPO from the SFT model ($1)"
}
two_at_a_time "grpo grpo" "grpo grpo_train_only"

judge() {  # $1: sft | grpo | grpo-train-only, $2: the split
    [ -f "$R/eval/$1-$2.json" ] ||
        gotr1-train eval "$R/shapeworld-$1/model" --split "$2" --count 300 --samples 8 --output "$R/eval/$1-$2.json"
}
judge_plans() {  # $1: the split; the shipped model only
    [ -f "$R/eval/grpo-plans-$1.json" ] ||
        gotr1-train eval "$R/shapeworld-grpo/model" --plans --split "$1" --count 300 --samples 2 \
            --output "$R/eval/grpo-plans-$1.json"
}
mkdir -p "$R/eval"
evaluations=()
for split in test heldout zeroshot; do
    evaluations+=("judge sft $split" "judge grpo $split" "judge grpo-train-only $split" "judge_plans $split")
done
two_at_a_time "${evaluations[@]}"
for split in test heldout zeroshot; do
    gotr1-train compare "$R/eval/sft-$split.json" "$R/eval/grpo-$split.json" "$R/eval/grpo-train-only-$split.json" \
        --names SFT,GRPO,GRPO-train-only --output "$R/eval/compare-$split.md"
done
python docs/scripts/model_report.py --evals "$R/eval" --output "$R/eval/report.md"   # tables and targets
# Speculative Jacobi decoding on the new model: the same images' distribution, checked where it matters (generation.md)
python docs/scripts/decoding_quality.py --model "$R/shapeworld-grpo/model" --split test --count 100 --samples 8 \
    --jobs 2 --out "$R/decoding-quality-grpo"
