#!/usr/bin/env bash
# Long fuzz campaign: each target in turn for SECS seconds (default 330),
# niced, with its corpus in corpus/<target>/ and crashes in artifacts/<target>/.
# Usage: fuzz/run_campaign.sh [SECS] [TARGET...]   (after `cargo +nightly fuzz build`)
set -uo pipefail
cd "$(dirname "$0")"
secs=${1:-330}
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(ops npy safetensors image kernel_spec rf_spec)
bin=target/x86_64-unknown-linux-gnu/release
mkdir -p logs
for t in "${targets[@]}"; do
    mkdir -p "corpus/$t" "artifacts/$t"
    nice -n 10 "$bin/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" \
        -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
        > "logs/$t.log" 2>&1
    echo "$t exit $? $(grep -E '^Done|stat::number_of_executed_units' "logs/$t.log" | tr '\n' ' ')"
done
