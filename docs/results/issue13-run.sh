#!/usr/bin/env bash
# The commands behind docs/results/issue13-stories260k-task-family.md: one FPB+TFNS task-family adapter on
# stories260K (4-bit NF4, rank 4), evaluation every 25 steps on held-out training data, --save-best, TensorBoard;
# then base (generate and choice mode) and the adapter on the first 300 lines of each FinLoRA test file.
set -euo pipefail
W=${W:-/work/runs-issue13}
C="dotnet ${CLI:-$(pwd)/src/FinQLoRA.Cli/bin/Release/net10.0/linux-x64/finqlora.dll}"
S=${SHARED:-$(pwd)/../shared}
M=$S/models/stories260K-hf
T=$S/data/finlora-test
mkdir -p "$W" && cd "$W"
$C data build --task fpb --source $S/data/fpb/FinancialPhraseBank-v1.0/Sentences_50Agree.txt --exclude $T/fpb_test.jsonl --out fpb_train.jsonl --overwrite
$C data build --task tfns --source $S/data/tfns/sent_train.csv --exclude $T/tfns_test.jsonl --out tfns_train.jsonl --overwrite
$C train --model $M --data fpb=fpb_train.jsonl --data tfns=tfns_train.jsonl --out train --bits 4 --rank 4 --alpha 32 --dropout 0.1 \
  --lr 1e-3 --max-steps 150 --batch-size 16 --warmup-steps 10 --max-seq-len 320 --save-every 50 --log-every 10 --dtype f32 --seed 42 \
  --eval-split 0.02 --eval-every 25 --eval-samples 48 --metric-for-best accuracy --save-best --report-to tensorboard > train.log 2>&1
for task in fpb tfns; do
  $C eval --model $M --bits 4 --tasks $task --data $T/${task}_test.jsonl --limit 300 --batch-size 32 --dtype f32 --name "stories260K base (generate)" --out base-gen-$task --overwrite > base-gen-$task.log 2>&1
  $C eval --model $M --bits 4 --tasks $task --data $T/${task}_test.jsonl --limit 300 --batch-size 32 --dtype f32 --mode choice --name "stories260K base (choice)" --out base-choice-$task --overwrite > base-choice-$task.log 2>&1
  $C eval --model $M --bits 4 --adapter train/adapter --tasks $task --data $T/${task}_test.jsonl --limit 300 --batch-size 32 --dtype f32 --name "fpb+tfns adapter (generate)" --out ft-$task --overwrite > ft-$task.log 2>&1
  $C eval --model $M --bits 4 --adapter train/best --tasks $task --data $T/${task}_test.jsonl --limit 300 --batch-size 32 --dtype f32 --name "fpb+tfns best/ (generate)" --out best-$task --overwrite > best-$task.log 2>&1
done
$C report base-gen-*/ base-choice-*/ ft-*/ best-*/ --out report --overwrite > report.log 2>&1
$C verify train > verify.log 2>&1
echo ALL DONE
