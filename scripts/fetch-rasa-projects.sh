#!/usr/bin/env bash
# Copies real Rasa 3.x projects, unchanged, into testdata/rasa/<name>/ and records where each
# file came from (testdata/rasa/SOURCES.tsv: project, file, repository, commit, path, sha256).
#
# The sources, pinned:
#   - RasaHQ/financial-demo at 7627cebef1571d55855b886cf4ac20459af9566c (2022-04-12, "domain
#     version"; Rasa 3.1 format, rasa-sdk 3.1).
#   - Rasa's own examples/ (formbot, moodbot, reminderbot, rules, knowledgebasebot, concertbot,
#     e2ebot, responseselectorbot). RasaHQ/rasa is too large to clone whole here (1.7 GB), so
#     the examples come from Wingrammer/kauza-rasa at a2f2ff5db395d6d930af179eadf1ac6c5343298b,
#     its first commit: a public import of the RasaHQ/rasa tree at version 3.7.0a1 (its
#     pyproject.toml says so). Its examples/formbot/domain.yml and data/rules.yml carry lines
#     commented out that look like the importer's own edits (`# version`, `# actions:
#     # - validate_restaurant_form`, a commented rule for `restaurant_formc`); they are kept as
#     they are, since every other line is Rasa's.
#
# Only what a Rasa project needs is kept: domain, config, endpoints, data/, tests/, actions/ (and
# the knowledge base file knowledgebasebot's actions read).
#
# Usage:
#   scripts/fetch-rasa-projects.sh FINANCIAL_DEMO_GIT KAUZA_RASA_GIT   copy from local git mirrors
#   scripts/fetch-rasa-projects.sh --check [DIR]                        verify copies (default: testdata/rasa;
#                                                                       actions/*.py may be absent)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
OUT="$ROOT/testdata/rasa"
SOURCES="$OUT/SOURCES.tsv"

FIN_REPO=RasaHQ/financial-demo
FIN_COMMIT=7627cebef1571d55855b886cf4ac20459af9566c
EX_REPO=Wingrammer/kauza-rasa
EX_COMMIT=a2f2ff5db395d6d930af179eadf1ac6c5343298b
EXAMPLES=(formbot moodbot reminderbot rules knowledgebasebot concertbot e2ebot responseselectorbot)

keep() { # is this path (relative to a project) part of a Rasa project?
    case "$1" in
        domain.yml | config.yml | endpoints.yml | knowledge_base_data.json) return 0 ;;
        data/*.yml | data/*/*.yml | tests/*.yml) return 0 ;;
        actions/*.py | actions/*.yml | actions/*.txt) return 0 ;;
        *) return 1 ;;
    esac
}

sha() { sha256sum "$1" | cut -d' ' -f1; }

if [[ "${1:-}" == "--check" ]]; then
    DIR="${2:-$OUT}"
    bad=0
    while IFS=$'\t' read -r project file repo commit path hash; do
        [[ "$project" == "project" ]] && continue
        f="$DIR/$project/$file"
        # Fetched code (actions/*.py) may be left out of a data-only copy (../shared keeps data).
        if [[ ! -f "$f" && "$file" == actions/*.py ]]; then continue
        elif [[ ! -f "$f" ]]; then echo "missing: $f"; bad=1
        elif [[ "$(sha "$f")" != "$hash" ]]; then echo "changed: $f (not as fetched from $repo@$commit:$path)"; bad=1
        fi
    done < "$SOURCES"
    [[ $bad == 0 ]] && echo "$DIR: every file as fetched ($(($(wc -l < "$SOURCES") - 1)) files)"
    exit $bad
fi

FIN_GIT="${1:?usage: $0 FINANCIAL_DEMO_GIT KAUZA_RASA_GIT | --check}"
EX_GIT="${2:?usage: $0 FINANCIAL_DEMO_GIT KAUZA_RASA_GIT | --check}"
printf 'project\tfile\trepository\tcommit\tpath\tsha256\n' > "$SOURCES.new"

copy() { # git_dir commit repo prefix project
    local git_dir=$1 commit=$2 repo=$3 prefix=$4 project=$5
    rm -rf "${OUT:?}/$project"
    git --git-dir="$git_dir" ls-tree -r --name-only "$commit" -- "${prefix:-.}" | while read -r path; do
        local rel=${path#"$prefix"}
        keep "$rel" || continue
        mkdir -p "$(dirname "$OUT/$project/$rel")"
        git --git-dir="$git_dir" show "$commit:$path" > "$OUT/$project/$rel"
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$project" "$rel" "$repo" "$commit" "$path" \
            "$(sha "$OUT/$project/$rel")" >> "$SOURCES.new"
    done
}

copy "$FIN_GIT" "$FIN_COMMIT" "$FIN_REPO" "" financial-demo
for e in "${EXAMPLES[@]}"; do
    copy "$EX_GIT" "$EX_COMMIT" "$EX_REPO" "examples/$e/" "$e"
done
mv "$SOURCES.new" "$SOURCES"
echo "copied $(($(wc -l < "$SOURCES") - 1)) files into $OUT"
