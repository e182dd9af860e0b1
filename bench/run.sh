#!/usr/bin/env bash
# strata's benchmark suite. Regenerates docs/BENCHMARKS.md from one run on this machine.
#
#   bench/run.sh [--quick] [--runs N] [SCENARIO...]
#
# Scenarios (default: all): hash, ingest, unpack. Each timed run is cold: the store is emptied, the page
# cache dropped (root) and the CPU idle before it starts; systems alternate from run to run.
# --quick: small inputs, one run, report written under the work dir instead of docs/ (for CI:
# it only proves the bench still works).
# STRATA_BENCH_DIR (default /var/tmp/strata-bench): scratch space on the filesystem to measure.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
QUICK=0
RUNS=5
SCENARIOS=()
while (($#)); do
  case "$1" in
    --quick) QUICK=1; RUNS=1 ;;
    --runs) RUNS=$2; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) SCENARIOS+=("$1") ;;
  esac
  shift
done
((${#SCENARIOS[@]})) || SCENARIOS=(hash ingest unpack)

WORK=${STRATA_BENCH_DIR:-/var/tmp/strata-bench}
mkdir -p "$WORK"
RESULTS=$WORK/results.jsonl
META=$WORK/meta.jsonl
: > "$RESULTS"
: > "$META"
if ((QUICK)); then REPORT=$WORK/BENCHMARKS.quick.md; else REPORT=$REPO/docs/BENCHMARKS.md; fi

MEASURE=(python3 "$HERE/measure.py" --wait-idle)
if [ "$(id -u)" = 0 ]; then
  MEASURE+=(--drop-caches)
elif ((!QUICK)); then
  echo "bench/run.sh: a full run must drop the page cache before each timed run: run it as root" >&2
  exit 1
fi

echo "== build (release)"
(cd "$REPO" && cargo build --release --locked -p strata -p strata-types --examples --bins -q)
STRATA=$REPO/target/release/strata

# meta KEY VALUE: facts for the report (commands, versions, sizes).
meta() { python3 -c 'import json,sys; print(json.dumps({"key": sys.argv[1], "value": sys.argv[2]}))' "$1" "$2" >> "$META"; }
# timed SCENARIO SYSTEM RUN [--stdin FILE] -- CMD...: one measured run, appended to the results.
timed() {
  local scenario=$1 system=$2 run=$3; shift 3
  local line
  if ! line=$("${MEASURE[@]}" "$@"); then
    echo "bench: $scenario/$system run $run failed: $line" >&2
    exit 1
  fi
  python3 -c 'import json,sys; d=json.loads(sys.argv[4]); d.update(scenario=sys.argv[1], system=sys.argv[2], run=int(sys.argv[3])); d.pop("stderr"); print(json.dumps(d))' \
    "$scenario" "$system" "$run" "$line" >> "$RESULTS"
  printf '  %-8s %-10s run %s: %s\n' "$scenario" "$system" "$run" "$(python3 -c 'import json,sys; print("%.3f s" % json.loads(sys.argv[1])["wall"])' "$line")"
}

scenario_hash() {
  echo "== hash: SHA-256 throughput"
  local mib=1024; ((QUICK)) && mib=64
  local out
  out=$("$REPO/target/release/examples/sha256_throughput" "$mib")
  meta hash.strata "$out"
  local f=$WORK/hash.bin
  head -c $((mib << 20)) /dev/urandom > "$f"
  cat "$f" > /dev/null   # from the page cache: measure hashing, not the disk
  local t0 t1
  t0=$(date +%s.%N); sha256sum "$f" > /dev/null; t1=$(date +%s.%N)
  meta hash.sha256sum "$(python3 -c "print('%.0f' % ($mib * 1.048576 / ($t1 - $t0)))")"
  meta hash.cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //') (sha_ni: $(grep -qw sha_ni /proc/cpuinfo && echo yes || echo no))"
  rm -f "$f"
}

scenario_ingest() {
  local mib=1024; ((QUICK)) && mib=64
  echo "== ingest: ${mib} MiB blob from a file vs dd conv=fsync"
  local blob=$WORK/ingest.blob
  head -c $((mib << 20)) /dev/urandom > "$blob"
  local digest size
  digest=sha256:$(sha256sum "$blob" | cut -d' ' -f1)
  size=$(stat -c %s "$blob")
  meta ingest.size "$size"
  meta ingest.cmd.dd "dd if=BLOB of=OUT bs=1M conv=fsync"
  meta ingest.cmd.strata "strata --root ROOT content ingest --expected $digest --size $size < BLOB"
  for run in $(seq 1 "$RUNS"); do
    local order=(dd strata)
    ((run % 2)) || order=(strata dd)
    for sys in "${order[@]}"; do
      rm -rf "$WORK/dd.out" "$WORK/root"
      "$STRATA" --root "$WORK/root" info > /dev/null   # create the empty store outside the timing
      case $sys in
        dd) timed ingest dd "$run" -- dd if="$blob" of="$WORK/dd.out" bs=1M conv=fsync status=none ;;
        strata) timed ingest strata "$run" --stdin "$blob" -- "$STRATA" --root "$WORK/root" content ingest --expected "$digest" --size "$size" ;;
      esac
    done
  done
  # The stored blob must be the input.
  cmp "$blob" "$WORK/root/content/blobs/sha256/${digest#sha256:}"
  rm -rf "$blob" "$WORK/dd.out" "$WORK/root"
}

# layer_blob LAYOUT INDEX: path of the INDEX-th layer blob of the layout's first image.
layer_blob() {
  python3 - "$1" "$2" <<'PY'
import json, sys
lay, i = sys.argv[1], int(sys.argv[2])
blob = lambda d: f"{lay}/blobs/sha256/{d.split(':')[1]}"
m = json.load(open(blob(json.load(open(f"{lay}/index.json"))["manifests"][0]["digest"])))
print(blob(m["layers"][i]["digest"]))
PY
}

scenario_unpack() {
  local corpus=${STRATA_CORPUS_DIR:-/var/tmp/strata-corpus}
  if [ ! -f "$corpus/oci/smallfiles/index.json" ]; then
    echo "bench: unpack needs the corpus: CORPUS_DIR=$corpus ../shared/corpus/build.sh rootfs images" >&2
    exit 1
  fi
  echo "== unpack: the corpus' base layer and its 30,000-small-files layer"
  local root=$WORK/unpack-root out=$WORK/unpack-out
  local base_blob small_blob
  base_blob=$(layer_blob "$corpus/oci/debian-base" 0)
  small_blob=$(layer_blob "$corpus/oci/smallfiles" 1)
  meta unpack.base.size "$(stat -c %s "$base_blob")"
  meta unpack.small.size "$(stat -c %s "$small_blob")"
  meta unpack.cmd.tar "tar -xzf BLOB -C DIR"
  meta unpack.cmd.pigz "pigz -dc BLOB | tar -x -C DIR"
  meta unpack.cmd.strata "strata load -i LAYOUT (blobs already in the store; the layer's snapshot removed first)"
  # strata: blobs ingested once, then each timed run only unpacks.
  rm -rf "$root"
  "$STRATA" --root "$root" load -q -i "$corpus/oci/smallfiles" --base-name corpus/smallfiles
  "$STRATA" --root "$root" load -q -i "$corpus/oci/debian-base" --base-name corpus/debian-base
  local small_chain base_chain
  base_chain=$("$STRATA" --root "$root" snapshot ls --format '{{.Key}} {{.Parent}}' | awk 'NF==1{print $1}')
  small_chain=$("$STRATA" --root "$root" snapshot ls --format '{{.Key}} {{.Parent}}' | awk 'NF==2{print $1}')
  local runs=$RUNS
  for run in $(seq 1 "$runs"); do
    for layer in base small; do
      local blob=$base_blob; [ $layer = small ] && blob=$small_blob
      local order=(tar pigz strata)
      ((run % 2)) || order=(strata pigz tar)
      for sys in "${order[@]}"; do
        rm -rf "$out"; mkdir -p "$out"
        case $sys in
          tar) timed "unpack-$layer" tar "$run" -- tar -xzf "$blob" -C "$out" ;;
          pigz) timed "unpack-$layer" pigz "$run" -- sh -c "pigz -dc '$blob' | tar -x -C '$out'" ;;
          strata)
            if [ $layer = base ]; then
              "$STRATA" --root "$root" snapshot rm "$small_chain" "$base_chain" > /dev/null
              timed "unpack-$layer" strata "$run" -- "$STRATA" --root "$root" load -q -i "$corpus/oci/debian-base" --base-name corpus/debian-base
              # put the small-files layer back for its own runs (untimed)
              "$STRATA" --root "$root" load -q -i "$corpus/oci/smallfiles" --base-name corpus/smallfiles
            else
              "$STRATA" --root "$root" snapshot rm "$small_chain" > /dev/null
              timed "unpack-$layer" strata "$run" -- "$STRATA" --root "$root" load -q -i "$corpus/oci/smallfiles" --base-name corpus/smallfiles
            fi ;;
        esac
      done
    done
  done
  rm -rf "$root" "$out"
}

for s in "${SCENARIOS[@]}"; do
  declare -F "scenario_$s" > /dev/null || { echo "bench: unknown scenario $s" >&2; exit 2; }
  "scenario_$s"
done

meta machine.cpus "$(nproc)"
meta machine.mem "$(awk '/MemTotal/{printf "%.1f GiB", $2/1048576}' /proc/meminfo)"
meta machine.kernel "$(uname -r)"
meta machine.fs "$(df -T "$WORK" | awk 'NR==2{print $2" ("$1")"}')"
meta machine.os "$(. /etc/os-release && echo "$PRETTY_NAME")"
meta version.strata "$("$STRATA" --version)"
meta version.dd "$(dd --version | head -1)"
meta date "$(date -u +%Y-%m-%dT%H:%MZ)"
meta runs "$RUNS"
meta quick "$QUICK"
python3 "$HERE/report.py" "$RESULTS" "$META" > "$REPORT"
echo "== report: $REPORT"
