#!/usr/bin/env bash
# The commands that produced docs/results/issue5-stories260k-report.md (paths are those of the machine it ran on).
# Issue 5 fine-tuning table: stories260K, 4-bit r4 and 8-bit r8, on fpb / tfns / headline; base vs fine-tuned.
set -euo pipefail
cd /work/runs-issue5
C="dotnet cli/finqlora.dll"
M=/work/shared/models/stories260K-hf
T=/work/shared/data/finlora-test
LIMIT=300
for task in fpb tfns headline; do
  if [ $task = headline ]; then EV="--data headline_test.jsonl"; else EV="--data $T/${task}_test.jsonl"; fi
  for cfg in "4 4" "8 8"; do
    set -- $cfg; bits=$1; rank=$2
    $C eval --model $M --bits $bits --tasks $task $EV --limit $LIMIT --batch-size 32 --dtype f32 --name stories260K --out base-$task-q$bits > base-$task-q$bits.log 2>&1
    $C train --model $M --data ${task}_train.jsonl --out train-$task-q$bits-r$rank --bits $bits --rank $rank --alpha 32 --dropout 0.1 \
      --lr 1e-3 --max-steps 150 --batch-size 16 --warmup-steps 10 --max-seq-len 320 --save-every 0 --log-every 10 --dtype f32 --seed 42 > train-$task-q$bits.log 2>&1
    $C eval --model $M --bits $bits --adapter train-$task-q$bits-r$rank/adapter --tasks $task $EV --limit $LIMIT --batch-size 32 --dtype f32 --name stories260K --out ft-$task-q$bits-r$rank > ft-$task-q$bits.log 2>&1
    echo "done $task $bits $(date)"
  done
done
$C report base-*/ ft-*/ --out report > report.log 2>&1
echo ALL DONE
