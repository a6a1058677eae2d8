#!/usr/bin/env bash
# Ours, Keras and PyTorch side by side on this machine: ROUNDS interleaved rounds (ours, Keras,
# PyTorch, then the next model, then the next round), training at batch 64 and inference at
# batch 256 on THREADS threads and the real data; prints the medians and ratios as a Markdown
# table and as JSON, with the machine's FMA peak measured by `autoencoder bench`. Each engine
# runs in each of PRECISIONS: f32, and bf16 (ours `--precision bf16`, Keras's mixed_bfloat16
# policy, PyTorch's bf16 autocast).
#
#   benches/peers/run.sh                 # 3 rounds, 2 threads, f32 and bf16
#   ROUNDS=5 THREADS=1 PRECISIONS=f32 benches/peers/run.sh
#
# Makes its own virtual environment (target/peers-venv, or $PEERS_VENV) with the pinned
# versions of requirements.txt on first use. Run it on an otherwise idle machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
PRECISIONS=${PRECISIONS:-f32 bf16}
VENV=${PEERS_VENV:-target/peers-venv}
OUT=${PEERS_OUT:-target/peers}

if ! "$VENV/bin/python" -c "import tensorflow, keras, torch" 2>/dev/null; then
  echo "creating $VENV with the pinned peers (tensorflow-cpu, keras, torch) ..." >&2
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q -r benches/peers/requirements.txt
fi
cargo build --release -q
mkdir -p "$OUT"
results="$OUT/results.jsonl"
: > "$results"

tag() { # tag ENGINE ROUND: adds the engine and round to the JSON line on stdin
  "$VENV/bin/python" -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); d["engine"]=sys.argv[1]; d["round"]=int(sys.argv[2]); print(json.dumps(d))' "$1" "$2"
}

for round in $(seq 1 "$ROUNDS"); do
  for model in baseline modified; do
    echo "round $round/$ROUNDS, $model" >&2
    for p in $PRECISIONS; do
      flags=(--model "$model" --threads "$THREADS" --steps 30 --precision "$p" --json)
      target/release/autoencoder bench "${flags[@]}" | tag ours "$round" >> "$results"
      "$VENV/bin/python" benches/peers/keras_bench.py "${flags[@]}" | tag keras "$round" >> "$results"
      "$VENV/bin/python" benches/peers/torch_bench.py "${flags[@]}" | tag pytorch "$round" >> "$results"
    done
  done
done
"$VENV/bin/python" benches/peers/summarise.py "$results" | tee "$OUT/summary.md"
