#!/usr/bin/env bash
# Keeps the committed corpora small: after `cargo fuzz cmin`, drop the
# largest inputs of each target until it fits its byte budget. Small inputs
# are kept first because they reach the same parser paths faster; every
# target keeps well over a hundred inputs.
# pth is not listed: its committed corpus is only the few seeds
# tests/fixtures/gen_pth.py writes, not campaign output.
# Usage: fuzz/prune_corpus.sh   (budgets in bytes below)
set -euo pipefail
cd "$(dirname "$0")"
declare -A budget=([ops]=50000 [npy]=50000 [safetensors]=80000 [image]=80000 [kernel_spec]=30000 [rf_spec]=30000)
for t in "${!budget[@]}"; do
    total=0
    # Smallest first; the file that would cross the budget and all larger ones go.
    while read -r size name; do
        if (( total + size > ${budget[$t]} )); then
            rm -f "corpus/$t/$name"
        else
            total=$((total + size))
        fi
    done < <(find "corpus/$t" -type f -printf '%s %f\n' | sort -n)
    echo "$t: $(ls "corpus/$t" | wc -l) inputs, $total bytes"
done
