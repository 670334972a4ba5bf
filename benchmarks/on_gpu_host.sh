#!/usr/bin/env bash
# The GPU and dedicated-core benchmarks, on a bare accelerator host (no system Postgres, none of the
# service's Python packages, no network). What the host lacks travels in .devcarry/ (not committed):
#   .devcarry/whl/*.whl            the service's Python dependencies, for the host's Python
#   .devcarry/pgserver-*.whl       PyPI's pgserver wheel, used only for the PostgreSQL binaries in it
#   .devcarry/smollm2-135m/        SmolLM2-135M-Instruct's config.json and tokenizer (no weights: the
#                                  98 MB GGUF is over the host's transfer limit; FLOPs and time do not
#                                  depend on weight values, so train_flops.py uses --random-init)
# `bash benchmarks/devcarry.sh` builds all three here (after `make install`); then call the device
# tool's `run` with carry [".devcarry"] and, e.g., `bash benchmarks/on_gpu_host.sh load8`.
#
#   bash benchmarks/on_gpu_host.sh smoke     # each part in miniature (about a minute)
#   bash benchmarks/on_gpu_host.sh gpu       # train_flops.py on CUDA: SmolLM2-135M and a 1.7B shape
#   bash benchmarks/on_gpu_host.sh big       # the 1.7B shape alone
#   bash benchmarks/on_gpu_host.sh load      # load_burst.py (8, then 2 API processes) + dispatcher
#   bash benchmarks/on_gpu_host.sh all
# Results go to $OUT (default /tmp/gt_out). Every part runs even if an earlier one failed.
set -u
stage=${1:-smoke}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=${OUT:-/tmp/gt_out}
CARRY=$ROOT/.devcarry
mkdir -p "$OUT"
cd "$ROOT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false

echo "== host: $(nproc) CPUs, $(free -g | awk '/Mem/{print $2}') GiB, python $(python3 -V 2>&1)"
nvidia-smi --query-gpu=name,driver_version,clocks.sm,clocks.mem,utilization.gpu --format=csv,noheader 2>&1

python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
    "$CARRY"/whl/*.whl 2>&1 | tail -2
export PYTHONPATH=/tmp/site

start_postgres() {
    [ -x /tmp/pg/pgserver/pginstall/bin/postgres ] || python3 - "$CARRY"/pgserver-*.whl <<'EOF'
import sys, zipfile, os
with zipfile.ZipFile(sys.argv[1]) as z:  # keep the executable bits that extractall drops
    for info in z.infolist():
        path = z.extract(info, "/tmp/pg")
        mode = info.external_attr >> 16
        if mode:
            os.chmod(path, mode)
EOF
    local bin=/tmp/pg/pgserver/pginstall/bin
    id pg >/dev/null 2>&1 || useradd -m pg
    if ! "$bin"/pg_isready -h 127.0.0.1 -p 5432 -q; then
        rm -rf /tmp/pgdata && mkdir -p /tmp/pgdata && chown pg /tmp/pgdata
        runuser -u pg -- "$bin"/initdb -D /tmp/pgdata -U postgres --auth=trust >/tmp/initdb.log 2>&1 \
            || { tail -5 /tmp/initdb.log; return 1; }
        # The development machines' settings (Debian's defaults: fsync on, 100 connections),
        # with room for 8 API processes' pools.
        runuser -u pg -- "$bin"/pg_ctl -D /tmp/pgdata -l /tmp/pg.log -w \
            -o "-h 127.0.0.1 -p 5432 -c max_connections=400 -c shared_buffers=128MB" start >/dev/null \
            || { tail -5 /tmp/pg.log; return 1; }
        "$bin"/psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE test"
    fi
    echo "== $("$bin"/psql -h 127.0.0.1 -U postgres -d test -Atc 'SHOW server_version')"
    export BENCH_PG_ADMIN_URL=postgresql://postgres@127.0.0.1:5432/test
}

model=$CARRY/smollm2-135m
big=hidden_size=2048,intermediate_size=8192,num_hidden_layers=24,num_attention_heads=32,num_key_value_heads=32

gpu() {
    local small=$1
    if [ "$small" = 1 ]; then
        python3 benchmarks/train_flops.py --device cuda --model "$model" --random-init --steps 3 --rounds 1 \
            --rhos 0.6 --config-set num_hidden_layers=4 --batch-size 4 --seq-len 128 2>&1 | grep -v '^  ' | tail -14
        return
    fi
    python3 benchmarks/train_flops.py --device cuda --model "$model" --random-init --steps 12 --rounds 3 \
        --batch-size 4 --seq-len 256 --out "$OUT/gpu_135m_b4.md" > "$OUT/gpu_135m_b4.log" 2>&1
    tail -n 20 "$OUT/gpu_135m_b4.md"
    python3 benchmarks/train_flops.py --device cuda --model "$model" --random-init --steps 12 --rounds 3 \
        --batch-size 32 --seq-len 512 --out "$OUT/gpu_135m_b32.md" > "$OUT/gpu_135m_b32.log" 2>&1
    tail -n 20 "$OUT/gpu_135m_b32.md"
    gpu_big
}

gpu_big() {
    python3 benchmarks/train_flops.py --device cuda --model "$model" --random-init --config-set "$big" \
        --steps 8 --rounds 3 --batch-size 8 --seq-len 512 --out "$OUT/gpu_1p7b_b8.md" > "$OUT/gpu_1p7b_b8.log" 2>&1
    tail -n 20 "$OUT/gpu_1p7b_b8.md"
}

load() {
    local small=$1
    start_postgres || { echo "== no Postgres: load part skipped"; return 1; }
    if [ "$small" = 1 ]; then
        python3 benchmarks/load_burst.py --jobs 200 --bursts 2 --teams 4 --slots 20 --sweep 8 --sweep-jobs 40 2>&1 | tail -12
        return
    fi
    python3 benchmarks/load_burst.py --workers 8 --client-procs 4 --sweep 8,16,32,64 --sweep-jobs 2000 --slots 20,200 \
        > "$OUT/load_w8.md" 2>&1
    grep -v '^| [0-9]* | [0-9]* | [0-9.]* / ' "$OUT/load_w8.md" | tail -n 20
    python3 benchmarks/load_burst.py --workers 2 --client-procs 4 --sweep 8,64 --sweep-jobs 1000 --slots 200 \
        > "$OUT/load_w2.md" 2>&1
    grep -v '^| [0-9]* | [0-9]* | [0-9.]* / ' "$OUT/load_w2.md" | tail -n 20
}

case $stage in
    smoke) gpu 1; load 1 ;;
    gpu) gpu 0 ;;
    load) load 0 ;;
    load8)  # the 8-process run alone, 4 client processes
        start_postgres && python3 benchmarks/load_burst.py --workers 8 --client-procs 4 --sweep 8,16,32,64 \
            --sweep-jobs 2000 --slots 200 > "$OUT/load_w8c4.md" 2>&1
        grep -v '^| [0-9]* | [0-9]* | [0-9.]* / ' "$OUT/load_w8c4.md" | tail -n 20 ;;
    big) gpu_big ;;
    all) gpu 0; load 0 ;;
    *) echo "usage: $0 smoke|gpu|big|load|all" >&2; exit 2 ;;
esac
