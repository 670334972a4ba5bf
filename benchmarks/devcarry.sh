#!/usr/bin/env bash
# Builds .devcarry/ (git-ignored through .git/info/exclude), what benchmarks/on_gpu_host.sh needs on a
# bare accelerator host that has Python 3.12 and no network:
#   .devcarry/whl/             the service's Python dependencies as manylinux wheels for Python 3.12,
#                              at the versions installed here (`make install` first)
#   .devcarry/pgserver-*.whl   PyPI's pgserver, only for the PostgreSQL binaries inside it
#   .devcarry/smollm2-135m/    SmolLM2-135M-Instruct's config and tokenizer from the shipped GGUF
#                              (no weights: the file is over the host's 64 MiB transfer limit)
# Then: the device tool's `run` with carry [".devcarry"] and `bash benchmarks/on_gpu_host.sh load8`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
CARRY=$ROOT/.devcarry
cd "$ROOT"
mkdir -p .git/info "$CARRY/whl"
grep -qx '/.devcarry/' .git/info/exclude 2>/dev/null || echo '/.devcarry/' >> .git/info/exclude

PACKAGES="alembic Mako fastapi starlette httptools itsdangerous pydantic pydantic_core pydantic-settings
annotated-types typing-inspection python-dotenv python-multipart SQLAlchemy greenlet psycopg psycopg-binary
uvicorn uvloop watchfiles websockets sniffio anyio httpx httpcore h11 typing_extensions click annotated-doc
opentelemetry-api psutil MarkupSafe idna certifi"
pins=()
for name in $PACKAGES; do
    version=$(python3 -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$name") \
        || { echo "$name is not installed here: run make install first" >&2; exit 1; }
    pins+=("$name==$version")
done
platforms=()
for p in manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux_2_24_x86_64 manylinux_2_27_x86_64 \
         manylinux_2_28_x86_64 manylinux_2_31_x86_64 manylinux_2_34_x86_64 manylinux_2_35_x86_64; do
    platforms+=(--platform "$p")
done
download() {
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        "${platforms[@]}" "$@" 2>&1 | grep -v '^WARNING: Location' || true
}
download -d "$CARRY/whl" "${pins[@]}"
download -d "$CARRY" pgserver

python3 - "$CARRY/smollm2-135m" <<'PY'
import sys
from transformers import AutoConfig, AutoTokenizer
from greentrainer_core.models import resolve_model_source
source = resolve_model_source("smollm2-135m-instruct")
config = AutoConfig.from_pretrained(source.path, gguf_file=source.gguf_file, local_files_only=True)
if hasattr(config, "quantization_config"):
    del config.quantization_config  # the GGUF's; random-init weights are plain tensors
config.save_pretrained(sys.argv[1])
AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file,
                              local_files_only=True).save_pretrained(sys.argv[1])
PY
echo "== $(ls "$CARRY/whl" | wc -l) wheels, $(du -sh "$CARRY" | cut -f1) in $CARRY"
