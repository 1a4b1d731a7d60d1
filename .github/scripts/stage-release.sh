#!/usr/bin/env bash
# What a release publishes for one model, collected in build/release/<model>/ (git-ignored):
#   <model>-SHA256SUMS, <model>-model.sig, <model>-provenance.sigstore.json,
#   <model>-bench.json, <model>-policy.yaml   the signed manifest, manifests/<model>/<version>/
#   <model>-<version>.tar                     with INCLUDE_WEIGHTS=true: the whole signed model
#                                             directory (extract, then `ai-tools verify <model>`)
# Prefixed with the model so several models sit side by side in one GitHub release; the next
# release's bench gate downloads <model>-bench.json from here.
#
#   .github/scripts/stage-release.sh tiny-relu-llama
set -euo pipefail
cd "$(dirname "$0")/../.."

model=${1:?usage: stage-release.sh <model>}
recipe=configs/models/powerinfer/$model.yaml
version=$(node --input-type=module -e 'import { parse } from "yaml"; import { readFileSync } from "node:fs";
  console.log(parse(readFileSync(process.argv[1], "utf8")).audit.model_version)' "$recipe")
manifest=manifests/$model/$version
if [ ! -f "$manifest/model.sig" ]; then
  echo "::error title=no release manifest::$manifest/model.sig is missing: convert $model with a release key first (development-key signatures go to build/manifests/ and are never published)"
  exit 1
fi

out=build/release/$model
rm -rf "$out"
mkdir -p "$out"
for file in "$manifest"/*; do cp "$file" "$out/$model-$(basename "$file")"; done
if [ "${INCLUDE_WEIGHTS:-false}" = true ]; then
  tar -cf "$out/$model-$version.tar" -C models/powerinfer "$model"
fi
echo "version=$version" >> "${GITHUB_OUTPUT:-/dev/null}"
echo "dir=$out" >> "${GITHUB_OUTPUT:-/dev/null}"
ls -l "$out"
