#!/usr/bin/env bash
# CI smoke run of the fuzzers: each cargo-fuzz target for SECS seconds
# (default 10) from its committed corpus when cargo-fuzz and a nightly
# toolchain are present; otherwise their proptest twins on stable.
# New inputs go to a scratch directory, so the committed corpus is unchanged.
# Exit status: non-zero when any target finds a crash (the input is saved
# under fuzz/artifacts/<target>/) or a proptest fails.
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-10}
targets=(ops npy safetensors image kernel_spec rf_spec pth)

# The stable twins, run from the repository root (this script runs in fuzz/).
proptest_twins() {
    (cd .. && cargo test --release --workspace --test bad_input --test fuzz_parsers --test fuzz_regressions --test fuzz_pth)
}

if command -v cargo-fuzz >/dev/null 2>&1 && cargo +nightly --version >/dev/null 2>&1; then
    echo "smoke: cargo-fuzz on $(cargo +nightly --version), ${secs}s per target"
    # A toolchain that cannot build the fuzzers is an environment problem,
    # not a finding: fall back to the stable twins instead of failing CI.
    if ! cargo +nightly fuzz build; then
        echo "smoke: cargo fuzz build failed; running the proptest twins on stable"
        proptest_twins
        exit 0
    fi
    bin=target/x86_64-unknown-linux-gnu/release
    scratch=$(mktemp -d)
    trap 'rm -rf "$scratch"' EXIT
    for t in "${targets[@]}"; do
        mkdir -p "$scratch/$t" "artifacts/$t"
        # First directory receives new inputs; the committed corpus is only read.
        "$bin/$t" "$scratch/$t" "corpus/$t" -artifact_prefix="artifacts/$t/" \
            -max_total_time="$secs" -rss_limit_mb=2048 -timeout=20 -print_final_stats=1 \
            2>"$scratch/$t.log" || { tail -40 "$scratch/$t.log"; echo "smoke: $t FAILED"; exit 1; }
        echo "smoke: $t ok, $(grep -o 'number_of_executed_units: *[0-9]*' "$scratch/$t.log" | grep -o '[0-9]*$') runs"
    done
else
    echo "smoke: no cargo-fuzz + nightly; running the proptest twins on stable"
    proptest_twins
fi
