#!/usr/bin/env bash
# One prepared GPU benchmark of real-scale readiness (under 8 minutes on one H200), written to bench/results/gpu-<date>.json:
#   1. chain scoring, plain vs packed vs split shared prefix, K = 2, 4, 6, 8: full-size Qwen2.5-VL-3B config, random weights,
#      bf16, ~1000 video tokens (30 frames of 224x224), 150-token captions            (bench/scoring.py)
#   2. a full rank training step at K = 6, LoRA on language model and vision, with and without gradient checkpointing:
#      seconds, peak memory, tokens/s, MFU (formula in bench/rank_step.py)            (bench/rank_step.py)
#   3. FSDP2 through accelerate on one GPU (examples/accelerate/fsdp_1gpu.yaml): two rcc-train steps with a sharded
#      checkpoint after each, then a resume to step 3                                  (tiny model: the engine, not speed)
#      This is what the CPU tests cannot reach: accelerate's own FSDP2 prepare (its wrap of the family's blocks, mixed
#      precision) and its sharded state-dict save/load. PyTorch's `fully_shard` itself, our wrap policy, step equality,
#      the adapter gathered to rank 0 and a torch.distributed.checkpoint resume run on CPU in tests/test_fsdp2_cpu.py.
#   4. every model family's adapter on the device: split shared-prefix scoring against the plain path, tiny random
#      model of each family (`--adapters`, default every registered family)             (bench/scoring.py --tiny)
#   5. frames on demand: 8 frames from a 3 s and a 30 s H.264 clip, seeking vs one sequential pass (CPU decoding;
#      the same frames)                                                             (bench/video.py)
#
#   bash bench/gpu.sh                 # on the GPU machine
#   bash bench/gpu.sh --smoke         # tiny configs on the CPU: checks the script end to end (stage 3 must stop cleanly)
#   bash bench/gpu.sh --out FILE      # write the JSON elsewhere
#   bash bench/gpu.sh --arch qwen3_vl # another family (transformers' model_type): stages 1-2 on a random model of the family
#                                     # at 2048 x 8 layers (vision 1024 x 8), stage 3 on tiny:<arch>
#   bash bench/gpu.sh --adapters qwen2_5_vl,qwen3_vl   # families for stage 4 (default: every registered family)
# Each stage has its own time limit; a stage that fails or times out is recorded (exit status, last lines of stderr)
# and the others still run.
set -u
cd "$(dirname "$0")/.."
SMOKE=0; OUT=""; ARCH=qwen2_5_vl; ADAPTERS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) SMOKE=1 ;;
    --out) OUT="$2"; shift ;;
    --arch) ARCH="$2"; shift ;;
    --adapters) ADAPTERS="$2"; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
PY=${PYTHON:-python}
[ -n "$ADAPTERS" ] || ADAPTERS=$($PY -c "from rcc_rank.modeling.family import FAMILIES; print(','.join(sorted(FAMILIES)))")
for a in ${ADAPTERS//,/ }; do
  $PY -c "import sys; from rcc_rank.modeling.family import FAMILIES; sys.exit(sys.argv[1] not in FAMILIES)" "$a" \
    || { echo "--adapters $a: not a registered family ($($PY -c "from rcc_rank.modeling.family import FAMILIES; print(', '.join(sorted(FAMILIES)))"))" >&2; exit 2; }
done
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
[ -n "$OUT" ] || OUT="bench/results/gpu-$STAMP$([ $SMOKE = 1 ] && echo -smoke).json"
mkdir -p "$(dirname "$OUT")"
W=$(mktemp -d)
T0=$(date +%s)

stage() {  # stage NAME LIMIT_S CMD...: stdout -> $W/NAME.out, stderr -> $W/NAME.err, exit status and seconds -> $W/NAME.rc
  local name=$1 limit=$2; shift 2
  local t=$(date +%s)
  timeout "$limit" "$@" > "$W/$name.out" 2> "$W/$name.err"
  echo "$? $(( $(date +%s) - t ))" > "$W/$name.rc"
  echo "[gpu.sh] $name: exit $(cut -d' ' -f1 "$W/$name.rc") after $(cut -d' ' -f2 "$W/$name.rc") s" >&2
}

if [ $SMOKE = 1 ]; then
  stage scoring 300 $PY bench/scoring.py --arch "$ARCH" --tiny --device cpu --ks 2 4 --frames 4 --image-size 56 \
        --caption-tokens 12 --repeats 1 --shared packed split
  stage rank_step 300 $PY bench/rank_step.py --smoke --arch "$ARCH"
  DEV=cpu; VIDEO_ARGS=(--repeats 1)
else
  stage scoring 210 $PY bench/scoring.py --arch "$ARCH" --device cuda --ks 2 4 6 8 --repeats 5 --shared packed split \
        $([ "$ARCH" = qwen2_5_vl ] || echo --hidden 2048 --layers 8 --vision-depth 8)
  stage rank_step 150 $PY bench/rank_step.py --device cuda --k 6 --steps 3 --arch "$ARCH"
  DEV=cuda; VIDEO_ARGS=(--repeats 3 --gops 12 250)
fi
for a in ${ADAPTERS//,/ }; do   # stage 4: each family's adapter on the device
  stage "adapter_$a" 120 $PY bench/scoring.py --arch "$a" --tiny --device $DEV --ks 2 4 --frames 4 --image-size 56 \
        --caption-tokens 12 --repeats 1 --shared split
done
stage video 300 $PY bench/video.py "${VIDEO_ARGS[@]}"   # stage 5

# stage 3: FSDP2 step, sharded checkpoint, resume
$PY - "$W" <<'EOF'
import sys
from pathlib import Path
from rcc_rank.data.chains import Chain, Mutation, write_chains
from rcc_rank.testing.fixtures import write_test_video
d = Path(sys.argv[1])
caps = ['A red ball rolls to the left.', 'A blue ball rolls to the left.', 'A blue cube rolls to the left.']
chains = [Chain(f'c{i}', caps, [Mutation('colour', 'red', 'blue'), Mutation('object', 'ball', 'cube')],
                video=str(write_test_video(d/f'v{i}.mp4', n=8, size=(56, 56))), meta={'split': 'train'}) for i in range(4)]
write_chains(chains, d/'chains.jsonl')
EOF
TRAIN=(-m rcc_rank.training.train --model "tiny:$ARCH" --train_data "$W/chains.jsonl" --batch_size 2 --num_frames 4 --log_with none
       --eval_every 0 --save_every 1 --keep_checkpoints 0 --log_every 1 --output_dir "$W/fsdp2" --gradient_checkpointing)
stage fsdp2_step 90 $PY -m accelerate.commands.launch --config_file examples/accelerate/fsdp_1gpu.yaml "${TRAIN[@]}" --max_steps 2
stage fsdp2_resume 90 $PY -m accelerate.commands.launch --config_file examples/accelerate/fsdp_1gpu.yaml "${TRAIN[@]}" --max_steps 3 --resume latest

RCC_BENCH_ARCH=$ARCH $PY - "$W" "$OUT" "$SMOKE" "$T0" "$ADAPTERS" <<'EOF'
import json, os, subprocess, sys, time
from pathlib import Path
w, out, smoke, t0, adapters = Path(sys.argv[1]), sys.argv[2], sys.argv[3] == '1', int(sys.argv[4]), sys.argv[5].split(',')
def tail(p, n=25): return p.read_text(errors='replace').splitlines()[-n:] if p.exists() else []
def result(name):
    rc, secs = (w/f'{name}.rc').read_text().split()
    r = dict(exit=int(rc), seconds=int(secs), timed_out=rc == '124')
    lines = [l for l in (w/f'{name}.out').read_text().splitlines() if l.startswith('{')] if (w/f'{name}.out').exists() else []
    if lines:
        try: r['json'] = json.loads(lines[-1])
        except json.JSONDecodeError: pass
    if int(rc) != 0 or 'json' not in r: r['stderr_tail'] = tail(w/f'{name}.err')
    if int(rc) != 0 and (w/f'{name}.err').exists():   # the exception lines, e.g. rcc-train's launch checks
        errs = [l.strip() for l in (w/f'{name}.err').read_text(errors='replace').splitlines() if 'Error: ' in l and 'ChildFailedError' not in l]
        r['errors'] = list(dict.fromkeys(errs))[:3]
    return r
def gpu():
    try: return subprocess.run(['nvidia-smi', '--query-gpu=name,memory.total,driver_version', '--format=csv,noheader'],
                               capture_output=True, text=True, timeout=20).stdout.strip() or None
    except Exception: return None
import torch, transformers, peft, accelerate
res = dict(arch=os.environ.get('RCC_BENCH_ARCH'), date=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()), smoke=smoke, gpu=gpu(), torch=torch.__version__,
           transformers=transformers.__version__, peft=peft.__version__, accelerate=accelerate.__version__,
           commit=subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], capture_output=True, text=True).stdout.strip() or None,
           load_avg=os.getloadavg(), adapters=adapters,
           stages={n: result(n) for n in ('scoring', 'rank_step', 'fsdp2_step', 'fsdp2_resume', *[f'adapter_{a}' for a in adapters], 'video')})
ck = sorted((w/'fsdp2'/'checkpoints').glob('step_*')) if (w/'fsdp2'/'checkpoints').exists() else []
res['fsdp2'] = dict(checkpoints=[p.name for p in ck], final_adapter=(w/'fsdp2'/'final'/'adapter_model.safetensors').exists(),
                    history=[json.loads(l) for l in (w/'fsdp2'/'history.jsonl').read_text().splitlines()] if (w/'fsdp2'/'history.jsonl').exists() else [],
                    checkpoint_files=sorted(str(p.relative_to(ck[-1])) for p in ck[-1].rglob('*') if p.is_file())[:40] if ck else [])
res['total_seconds'] = int(time.time()) - t0
Path(out).write_text(json.dumps(res, indent=1) + '\n')
print(out)
EOF
rm -rf "$W"
