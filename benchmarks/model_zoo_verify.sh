#!/usr/bin/env bash
# Run the MONAI Model Zoo's own CI check (ci/verify_bundle.py, min and full) on copies of this project's bundles,
# offline: the Zoo's ci/ folder comes from a local model-zoo checkout, the metadata schema from tests/bundles, and
# model_info.json is empty (every bundle is new to the Zoo).
#
#   bash benchmarks/model_zoo_verify.sh /path/to/model-zoo [bundle ...]
#
# Prints one block per bundle and mode, and exits 1 if a check failed.
set -u
ZOO=${1:?usage: model_zoo_verify.sh /path/to/model-zoo [bundle ...]}
shift
REPO=$(cd "$(dirname "$0")/.." && pwd)
BUNDLES=${*:-$(ls "$REPO/bundles")}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cp -r "$ZOO/ci" "$WORK/ci"
mkdir -p "$WORK/models"
echo '{}' > "$WORK/models/model_info.json"
status=0
for b in $BUNDLES; do
    cp -r "$REPO/bundles/$b" "$WORK/models/$b"
    rm -rf "$WORK/models/$b/outputs"
    mkdir -p "$WORK/models/$b/eval"
    cp "$REPO/tests/bundles/meta_schema_20240725.json" "$WORK/models/$b/eval/schema.json"
    for mode in min full; do
        if (cd "$WORK" && PYTHONPATH="$REPO" python ci/verify_bundle.py -b "$b" -p models -m "$mode" > "$WORK/log" 2>&1); then
            echo "$b $mode: passed"
        else
            echo "$b $mode: FAILED: $(grep -E -A2 '^[A-Za-z]*(Error|Exception)' "$WORK/log" | tail -3 | tr -s '\n' ' ')"
            status=1
        fi
    done
done
exit $status
