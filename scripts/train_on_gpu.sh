#!/usr/bin/env bash
# One chunk of the built-in model's training on a lent GPU machine (the device tool), resumed
# from the committed checkpoint; the checkpoint comes back under $OUT in files under 16 MB.
# Needs the wheels the machine lacks in .whl/ (diffusers, importlib_metadata, lazy-importer).
# Back here: python -m motionq.train --out checkpoints/animatic --import-shards <files_at>
set -u
# EXTRA: more train flags for this chunk, e.g. EXTRA="--p-two 0.5 --max-sequence-length 32".
# The eval every EVAL_EVERY steps scores EVAL_SAMPLES validation captions (seeds 2e9 + i, the
# first of benchmarks/sampler_validation.py's sets), 100 clips per call: the log tracks the figures
# the weights are chosen on.
MIN=${MIN:-7}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())"
mkdir -p /tmp/run
cp checkpoints/animatic/{model,ema,codec}.safetensors checkpoints/animatic/state.json /tmp/run/
python3 -m motionq.train --out /tmp/run --minutes "$MIN" --device cuda --workers 14 \
    --batch 256 --lr ${LR:-5e-4} --anneal-to ${ANNEAL:-auto} --checkpoint-every ${CKPT:-1000} \
    --eval-every ${EVAL_EVERY:-1000} --eval-samples ${EVAL_SAMPLES:-400} --eval-batch 100 \
    --mirror "$OUT" ${EXTRA:-} 2>&1 | tee "$OUT/train.log"
