#!/usr/bin/env bash
# Markdown review comment for every mixture manifest a change touches, for CI to post.
#
#   infra/ci/manifest-diff.sh BASE HEAD OUT.md
#
# Compares each manifest changed between the merge base of BASE and HEAD and HEAD (what a pull
# request changes). Manifests are the files .gitattributes routes to the bee-manifest diff
# driver, so the two never disagree. OUT.md is left empty when no manifest changed.
# Exit: 0 the comment was written; 2 a manifest is invalid (its error is in the comment too).
# BEE_MANIFEST overrides the command (default: `bee manifest`; `python -m corpus.manifest.cli`
# starts faster). Run from anywhere inside the repository.
set -euo pipefail

if [ $# -ne 3 ]; then
    echo "usage: $0 BASE HEAD OUT.md" >&2
    exit 2
fi
base=$1 head=$2 out=$3
bee_manifest=${BEE_MANIFEST:-bee manifest}
root=$(git rev-parse --show-toplevel)
out=$(realpath -m "$out")
cd "$root"

: > "$out"
errors=$(mktemp)
trap 'rm -f "$errors"' EXIT
mapfile -t manifests < <(
    git diff --name-only --diff-filter=d "$base...$head" \
        | git check-attr --stdin diff \
        | sed -n 's/: diff: bee-manifest$//p'
)
status=0
for manifest in "${manifests[@]}"; do
    set +e
    body=$($bee_manifest diff --rev "$base...$head" "$manifest" --format markdown 2> "$errors")
    code=$?
    set -e
    if [ $code -le 1 ]; then
        printf '%s\n\n' "$body" >> "$out"
    else
        status=2
        {
            printf '### Mixture manifest: `%s` is invalid\n\n```\n' "$manifest"
            cat "$errors"
            printf '```\n\n'
        } >> "$out"
    fi
done
exit $status
