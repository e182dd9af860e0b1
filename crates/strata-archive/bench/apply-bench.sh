#!/bin/bash
# Compares strata's apply with tar on the same filesystem: cold page cache before every run
# (sync; drop_caches), tools interleaved run by run (the VM's disk drifts), median of N.
#
#   bench/apply-bench.sh BLOB.tar.gz [RUNS]
#
# Needs root (drop_caches), pigz, and a release build of the example:
#   CARGO_TARGET_DIR=/work/target-archive cargo build --release -p strata-archive --example apply
set -euo pipefail
blob=$1
runs=${2:-5}
bin=${STRATA_APPLY:-/work/target-archive/release/examples/apply}
work=${BENCH_DIR:-/var/tmp/strata-bench}
mkdir -p "$work"

names=("strata apply" "tar -xzf" "pigz -dc | tar -x")
cmd() {
    case $1 in
        0) "$bin" "$blob" "$work/dest" delete ;;
        1) tar -C "$work/dest" -xzf "$blob" ;;
        2) pigz -dc "$blob" | tar -C "$work/dest" -x ;;
    esac
}
declare -A times
for r in $(seq "$runs"); do
    for t in 0 1 2; do
        rm -rf "$work/dest"; mkdir "$work/dest"
        sync; echo 3 > /proc/sys/vm/drop_caches
        t0=$(date +%s.%N)
        cmd $t > /dev/null
        t1=$(date +%s.%N)
        times[$t]+="$(echo "$t1 - $t0" | bc) "
    done
done
for t in 0 1 2; do
    sorted=$(printf '%s\n' ${times[$t]} | sort -n)
    median=$(echo "$sorted" | sed -n "$(( (runs + 1) / 2 ))p")
    printf '%-20s median %6.2fs   runs: %s\n' "${names[$t]}" "$median" "$(echo $sorted)"
done
rm -rf "$work/dest"
