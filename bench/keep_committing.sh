#!/usr/bin/env bash
# Commit a long benchmark's state as it goes, so a session that ends without warning loses at most the last
# interval: every INTERVAL seconds (default 600), stage PATHS and commit them if they changed.
#     bench/keep_committing.sh "STS-B headline" bench/results/headline_stsb_state bench/results/headline_stsb.json
set -u
what=$1; shift
interval=${INTERVAL:-600}
cd "$(dirname "$0")/.."
while true; do
    sleep "$interval"
    git add -- "$@" 2>/dev/null
    if ! git diff --cached --quiet -- "$@"; then
        git commit -q -m "bench: $what, state so far (committed as it runs)" -- "$@" && echo "$(date +%T) committed"
    fi
done
