#!/usr/bin/env bash
# strata's benchmark suite. Regenerates docs/BENCHMARKS.md from one run on this machine.
#
#   bench/run.sh [--quick] [--runs N] [SCENARIO...]
#
# Scenarios (default: all): hash, ingest, unpack, pull (strata vs containerd's ctr vs Docker
# Engine vs skopeo into containers-storage, from a registry on 127.0.0.1, with the floors:
# download, decode, tar -x), push (strata vs ctr vs docker, to an empty registry), containers
# (create and `run --rm IMAGE /bin/true` latency, strata vs ctr vs docker; warm: the page cache
# is not dropped for these), df (`system df` and `images` on a store of 1,000 images made by
# bench/make_images.py, warm and cold, strata vs docker), space (disk bytes of the corpus pulled
# by strata keeping and discarding compressed layers, by ctr and by docker), incremental (python
# present, pull python plus one new layer), prune (remove half of 200 images, collection
# included), migrate (Docker's overlay2 store of the corpus into strata, against pulling it
# again). Docker Engine is Debian's docker.io: a dockerd of the bench's own (data root, socket,
# no bridge or iptables), where it starts.
# Each timed run is cold: the store is emptied, the page
# cache dropped (root) and the CPU idle before it starts; systems alternate from run to run.
# containerd and dockerd run as users run them: started once per scenario, before its timed
# runs, with the images removed between runs (`ctr images rm --sync`, `docker rmi`); their
# memory is measured beside the CLI's. Every store is made before the timed command (strata's
# with `info`, containers-storage by copying an empty image in and deleting it). A peer that
# is missing or fails is reported as "not measured" with the reason.
# On a fresh Debian machine (with a Rust toolchain) it first installs the peers and tools from
# Debian and builds the corpus with ../shared/corpus/build.sh, when they are missing.
# --runs N: timed runs per system and scenario (default 3; the page gives min and max beside
# each median, and how long the run took: 20-31 min on the 2-core machine the project
# uses, with the peers and the corpus already installed).
# --quick: small inputs, one run, report written under the work dir instead of docs/ (for CI:
# it only proves the bench still works).
# STRATA_BENCH_DIR (default /var/tmp/strata-bench): scratch space on the filesystem to measure.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
QUICK=0
RUNS=3
SCENARIOS=()
while (($#)); do
  case "$1" in
    --quick) QUICK=1; RUNS=1 ;;
    --runs) RUNS=$2; shift ;;
    -h|--help) sed -n '2,31p' "$0"; exit 0 ;;
    *) SCENARIOS+=("$1") ;;
  esac
  shift
done
((${#SCENARIOS[@]})) || SCENARIOS=(hash ingest unpack pull incremental push containers df space prune migrate)

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

# meta KEY VALUE: facts for the report (commands, versions, sizes).
meta() { python3 -c 'import json,sys; print(json.dumps({"key": sys.argv[1], "value": sys.argv[2]}))' "$1" "$2" >> "$META"; }
STARTED=$(date +%s)
CORPUS=${STRATA_CORPUS_DIR:-/var/tmp/strata-corpus}

# setup: installs from Debian what the bench compares against and runs (root only; without
# root a missing peer is reported as not measured), and builds the image corpus when a scenario
# needs it and it is not there. Does nothing on a machine that has everything.
setup() {
  local pkgs=(containerd docker.io skopeo docker-registry runc umoci pigz zstd curl debootstrap) missing=() p
  for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if ((${#missing[@]})) && [ "$(id -u)" = 0 ] && command -v apt-get > /dev/null; then
    echo "== setup: installing ${missing[*]}"
    SETUP_DID+=("installed ${missing[*]} from Debian")
    DEBIAN_FRONTEND=noninteractive apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
  elif ((${#missing[@]})); then
    echo "bench: not installed (run as root to install them): ${missing[*]}" >&2
  fi
  local s needs=0
  for s in "${SCENARIOS[@]}"; do
    case $s in unpack|pull|push|containers|incremental|space|migrate) needs=1 ;; esac
  done
  if ((needs)) && [ ! -f "$CORPUS/oci/multi/index.json" ]; then
    local build=$REPO/../shared/corpus/build.sh
    [ -f "$build" ] || { echo "bench: the corpus is not in $CORPUS and $build is missing" >&2; exit 1; }
    echo "== setup: building the image corpus in $CORPUS"
    SETUP_DID+=("built the image corpus")
    CORPUS_DIR=$CORPUS bash "$build" rootfs
    CORPUS_DIR=$CORPUS bash "$build" images
  fi
}
SETUP_DID=()
setup
SETUP_DID+=("cargo build --release")

echo "== build (release)"
(cd "$REPO" && cargo build --release --locked -p strata-cli -p strata-types --examples --bins -q)
STRATA=$REPO/target/release/strata
meta elapsed.setup $(($(date +%s) - STARTED))
meta setup.did "$(IFS=';'; echo "${SETUP_DID[*]}" | sed 's/;/; /g')"

# timed SCENARIO SYSTEM RUN [--stdin FILE] -- CMD...: one measured run, appended to the results.
# With WARM=1 in the environment the page cache is left alone (latency of warm commands).
# A failed run of strata ends the bench; a peer's failure is recorded (the page says "not
# measured" with its exit status and error) and the bench goes on. ctr's and docker's runs
# measure their daemon's memory too (the daemon does the work).
timed() {
  local scenario=$1 system=$2 run=$3; shift 3
  local measure=("${MEASURE[@]}") daemon=()
  [ "${WARM:-0}" = 1 ] && measure=(python3 "$HERE/measure.py" --wait-idle)
  case $system in
    ctr*) [ -z "$CTRD_PID" ] || daemon=(--daemon "$CTRD_PID") ;;
    docker*) [ -z "$DOCKERD_PID" ] || daemon=(--daemon "$DOCKERD_PID") ;;
  esac
  if ! "${measure[@]}" "${daemon[@]}" --record "$RESULTS" "$scenario" "$system" "$run" "$@"; then
    case $system in
      strata*) echo "bench: $scenario/$system run $run failed (its result is above)" >&2; exit 1 ;;
    esac
    echo "bench: $scenario/$system run $run failed: the page reports it as not measured" >&2
  fi
}

# not_measured SECTION SYSTEM REASON: a peer the page names as not measured in SECTION (a
# scenario, or a result scenario such as pull-multi-all), and why.
not_measured() {
  meta "notmeasured.$1.$2" "$3"
  echo "bench: $1: $2 not measured: $3" >&2
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
  local corpus
  corpus=$(need_corpus unpack smallfiles)
  echo "== unpack: the corpus' base layer and its 30,000-small-files layer"
  local root=$WORK/unpack-root out=$WORK/unpack-out
  local base_blob small_blob
  base_blob=$(layer_blob "$corpus/oci/debian-base" 0)
  small_blob=$(layer_blob "$corpus/oci/smallfiles" 1)
  meta unpack.base.size "$(stat -c %s "$base_blob")"
  meta unpack.small.size "$(stat -c %s "$small_blob")"
  meta unpack.cmd.tar "tar -xzf BLOB -C DIR"
  meta unpack.cmd.pigz "pigz -dc BLOB | tar -x -C DIR"
  meta unpack.cmd.strata "strata load -i LAYOUT (blobs already in the store; the layer's snapshot removed first; syncfs before the commit is recorded, the default)"
  meta unpack.cmd.strata-nosync "STRATA_SYNC_COMMITS=0 strata load -i LAYOUT (the same, unsynced, as tar)"
  meta unpack.cmd.pigz-sync "pigz -dc BLOB | tar -x -C DIR && sync -f DIR (the floor of a durable unpack)"
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
      local order=(tar pigz pigz-sync strata strata-nosync)
      ((run % 2)) || order=(strata-nosync strata pigz-sync pigz tar)
      for sys in "${order[@]}"; do
        rm -rf "$out"; mkdir -p "$out"
        case $sys in
          tar) timed "unpack-$layer" tar "$run" -- tar -xzf "$blob" -C "$out" ;;
          pigz) timed "unpack-$layer" pigz "$run" -- sh -c "pigz -dc '$blob' | tar -x -C '$out'" ;;
          pigz-sync) timed "unpack-$layer" pigz-sync "$run" -- sh -c "pigz -dc '$blob' | tar -x -C '$out' && sync -f '$out'" ;;
          strata|strata-nosync)
            local sync=1; [ $sys = strata-nosync ] && sync=0
            if [ $layer = base ]; then
              "$STRATA" --root "$root" snapshot rm "$small_chain" "$base_chain" > /dev/null
              STRATA_SYNC_COMMITS=$sync timed "unpack-$layer" "$sys" "$run" -- "$STRATA" --root "$root" load -q -i "$corpus/oci/debian-base" --base-name corpus/debian-base
              # put the small-files layer back for its own runs (untimed)
              "$STRATA" --root "$root" load -q -i "$corpus/oci/smallfiles" --base-name corpus/smallfiles
            else
              "$STRATA" --root "$root" snapshot rm "$small_chain" > /dev/null
              STRATA_SYNC_COMMITS=$sync timed "unpack-$layer" "$sys" "$run" -- "$STRATA" --root "$root" load -q -i "$corpus/oci/smallfiles" --base-name corpus/smallfiles
            fi ;;
        esac
      done
    done
  done
  rm -rf "$root" "$out"
}

REG_PIDS=() CTRD_PID= DOCKERD_PID=
stop_daemons() {
  local p
  stop_dockerd
  for p in "${REG_PIDS[@]}"; do
    kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
  done
  [ -z "$CTRD_PID" ] || kill_group "$CTRD_PID"
  REG_PIDS=() CTRD_PID=
}

# kill_group PID: SIGKILL to the process group PID leads (a daemon started with setsid) and
# its children. The bench's containerd and dockerd stores are thrown away after each run, so
# nothing is lost, and a graceful stop costs 2-3 s each, hundreds of times over a full run.
kill_group() {
  kill -9 -- "-$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
  while pgrep -g "$1" > /dev/null; do sleep 0.02; done
}
trap stop_daemons EXIT

# unmount_under DIR: every mount at or below DIR, deepest first (containers-storage and
# containerd leave their overlay and bind mounts behind).
unmount_under() {
  findmnt -rn -o TARGET | awk -v d="$1" 'index($0, d) == 1' | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}

# start_registry [NAME]: a new, empty CNCF distribution registry on 127.0.0.1 storing under
# $WORK/NAME (sets REG and REG_PID).
start_registry() {
  local port dir=$WORK/${1:-registry}
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  rm -rf "$dir"; mkdir -p "$dir"
  cat > "$dir/config.yml" <<YML
version: 0.1
log: { level: error }
storage: { filesystem: { rootdirectory: $dir/data }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$port }
YML
  docker-registry serve "$dir/config.yml" > "$dir/log" 2>&1 &
  REG_PID=$!
  REG_PIDS+=("$REG_PID")
  for _ in $(seq 100); do curl -fsS "http://127.0.0.1:$port/v2/" > /dev/null 2>&1 && break; sleep 0.1; done
  REG=127.0.0.1:$port
}

# stop_registry PID: stops one registry started by start_registry.
stop_registry() {
  kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true
  local keep=() p
  for p in "${REG_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  REG_PIDS=("${keep[@]}")
}

# fresh_containerd: a containerd of our own with an empty store (sets CTR).
fresh_containerd() {
  [ -z "$CTRD_PID" ] || kill_group "$CTRD_PID"
  unmount_under "$WORK/ctrd"
  rm -rf "$WORK/ctrd"; mkdir -p "$WORK/ctrd"
  setsid containerd --root "$WORK/ctrd/root" --state "$WORK/ctrd/state" --address "$WORK/ctrd/sock" > "$WORK/ctrd.log" 2>&1 &
  CTRD_PID=$!
  CTR=(ctr -a "$WORK/ctrd/sock" -n bench)
  for _ in $(seq 100); do "${CTR[@]}" version > /dev/null 2>&1 && return; sleep 0.1; done
  WHY="containerd did not start: $(tail -3 "$WORK/ctrd.log" | tr '\n' ' ')"
  echo "bench: $WHY" >&2
  return 1
}

# ctr_clean: removes every image from the bench's running containerd and waits for its
# collector (`images rm --sync`), so each timed run starts from an empty store; says so on
# stderr when blobs or snapshots stay behind.
ctr_clean() {
  local imgs=() left
  mapfile -t imgs < <("${CTR[@]}" images ls -q)
  ((${#imgs[@]} == 0)) || "${CTR[@]}" images rm --sync "${imgs[@]}" > /dev/null
  ctr_left || return 0
  # What a failed pull left without an image (its blobs would make the next pull faster):
  # removed by hand, snapshots from the top of their chains down.
  "${CTR[@]}" content ls -q | xargs -r "${CTR[@]}" content rm > /dev/null 2>&1 || true
  for _ in $(seq 20); do
    ctr_left || return 0
    "${CTR[@]}" snapshots ls | awk 'NR > 1 {print $1}' | xargs -r -n1 "${CTR[@]}" snapshots rm > /dev/null 2>&1 || true
  done
  echo "bench: containerd still holds $LEFT blobs and snapshots after removing every image" >&2
}

# ctr_left: true when the bench's containerd holds blobs or snapshots (their count in LEFT).
ctr_left() {
  LEFT=$({ "${CTR[@]}" content ls -q; "${CTR[@]}" snapshots ls | tail -n +2; } | wc -l)
  ((LEFT > 0))
}

# docker_clean: removes every image from the bench's running dockerd (its classic store
# deletes the layers before `rmi` returns).
docker_clean() {
  local imgs=()
  mapfile -t imgs < <("${DOCKER[@]}" images -aq | sort -u)
  ((${#imgs[@]} == 0)) || "${DOCKER[@]}" rmi -f "${imgs[@]}" > /dev/null
}

# cs_fresh ROOT: an empty containers-storage store at ROOT (+ROOT.run), made the way strata's
# `info` makes strata's before a timed run: an empty image copied in and deleted, so the store's
# creation and the driver's feature probes happen outside the timing.
cs_fresh() {
  unmount_under "$1"; unmount_under "$1.run"; rm -rf "$1" "$1.run"
  local empty=$WORK/empty-oci dest="containers-storage:[overlay@$1+$1.run]bench/empty:latest"
  [ -f "$empty/index.json" ] || { umoci init --layout "$empty" && umoci new --image "$empty:latest"; } > /dev/null
  skopeo --insecure-policy copy -q "oci:$empty:latest" "$dest" && skopeo --insecure-policy delete "$dest"
}

# need_corpus SCENARIO IMAGE: prints the corpus directory, or exits when IMAGE is not built.
need_corpus() {
  if [ ! -f "$CORPUS/oci/$2/index.json" ]; then
    echo "bench: $1 needs the corpus: CORPUS_DIR=$CORPUS ../shared/corpus/build.sh rootfs images" >&2
    exit 1
  fi
  echo "$CORPUS"
}

# fresh_dockerd: a dockerd of our own (Debian's docker.io) on an empty data root, without
# touching the host's network setup (sets DOCKER); fails when dockerd is missing or does not
# start. Its containerd is its own too.
fresh_dockerd() {
  stop_dockerd
  WHY="dockerd (Debian's docker.io) is not installed"
  command -v dockerd > /dev/null || return 1
  local client
  client=$(command -v /usr/bin/docker || command -v docker) || return 1
  unmount_under "$WORK/dockerd"; rm -rf "$WORK/dockerd"; mkdir -p "$WORK/dockerd"
  setsid dockerd --data-root "$WORK/dockerd/root" --exec-root "$WORK/dockerd/exec" \
    --pidfile "$WORK/dockerd/pid" -H "unix://$WORK/dockerd/sock" --storage-driver overlay2 \
    --iptables=false --ip-masq=false --ip-forward=false --bridge=none > "$WORK/dockerd.log" 2>&1 &
  DOCKERD_PID=$!
  DOCKER=("$client" -H "unix://$WORK/dockerd/sock")
  for _ in $(seq 300); do "${DOCKER[@]}" info > /dev/null 2>&1 && return 0; sleep 0.1; done
  WHY="dockerd did not start: $(tail -3 "$WORK/dockerd.log" | tr '\n' ' ')"
  echo "bench: $WHY" >&2
  return 1
}

# stop_dockerd [--graceful]: stops the bench's dockerd and its containerd (SIGKILL, unless
# --graceful: SIGTERM, for a store that is used afterwards).
stop_dockerd() {
  [ -n "$DOCKERD_PID" ] || return 0
  if [ "${1:-}" = --graceful ]; then
    kill "$DOCKERD_PID" 2>/dev/null || true; wait "$DOCKERD_PID" 2>/dev/null || true
  else
    kill_group "$DOCKERD_PID"
  fi
  DOCKERD_PID=
  unmount_under "$WORK/dockerd"
}

# docker_version: records Docker Engine's version for the report, once.
docker_version() {
  grep -q '"version.docker"' "$META" || meta version.docker "Docker Engine $("${DOCKER[@]}" version --format '{{.Server.Version}}')"
}

# peer_prepare SECTION REF [PEER]: pulls REF, untimed, into the running containerd and dockerd
# (or PEER's alone): what SECTION's runs work on. A peer whose pull fails is recorded as not
# measured and its have_ flag cleared.
peer_prepare() {
  local out
  if [ "${3:-ctr}" = ctr ] && ((have_ctr)) && ! out=$("${CTR[@]}" images pull --plain-http "$2" 2>&1 > /dev/null); then
    have_ctr=0; not_measured "$1" ctr "the untimed ctr images pull of $2 failed: $(tail -1 <<< "$out")"
  fi
  if [ "${3:-docker}" = docker ] && ((have_docker)) && ! out=$("${DOCKER[@]}" pull -q "$2" 2>&1 > /dev/null); then
    have_docker=0; not_measured "$1" docker "the untimed docker pull of $2 failed: $(tail -1 <<< "$out")"
  fi
}

# start_peers SECTION PEER...: gets the peers (ctr, docker, skopeo) ready for SECTION's runs and
# sets the caller's have_ctr, have_docker, have_skopeo: containerd and dockerd are started once,
# each of the bench's own on an empty store, and stay running through the timed runs, as users
# run them. A peer that is missing or does not start is recorded as not measured, with why.
start_peers() {
  local section=$1 peer; shift
  for peer in "$@"; do
    case $peer in
      ctr)
        if ! command -v containerd > /dev/null || ! command -v ctr > /dev/null; then
          not_measured "$section" ctr "containerd or ctr (Debian's containerd) is not installed"
        elif [ "$section" = containers ] && ! command -v runc > /dev/null; then
          not_measured "$section" ctr "runc is not installed"
        elif fresh_containerd; then
          have_ctr=1
          grep -q '"version.ctr"' "$META" || meta version.ctr "$(ctr --version)"
        else
          not_measured "$section" ctr "$WHY"
        fi ;;
      docker)
        if fresh_dockerd; then have_docker=1; docker_version; else not_measured "$section" docker "$WHY"; fi ;;
      skopeo)
        if ! command -v skopeo > /dev/null || ! command -v umoci > /dev/null; then
          not_measured "$section" skopeo "skopeo or umoci is not installed"
        else
          have_skopeo=1
          grep -q '"version.skopeo"' "$META" || meta version.skopeo "$(skopeo --version)"
        fi ;;
    esac
  done
}

scenario_pull() {
  local corpus
  corpus=$(need_corpus pull multi)
  local images=(debian-base python smallfiles multi multi-all)
  ((QUICK)) && images=(debian-base)
  echo "== pull: ${images[*]} from a registry on 127.0.0.1 (strata, ctr, docker, skopeo → containers-storage)"
  start_registry
  for img in "${images[@]}"; do
    [ "$img" = multi-all ] && continue
    skopeo --insecure-policy copy -q --all --dest-tls-verify=false "oci:$corpus/oci/$img:latest" "docker://$REG/corpus/$img:latest"
  done
  local have_ctr=0 have_skopeo=0 have_docker=0
  start_peers pull ctr docker skopeo
  meta pull.cmd.strata "strata --root ROOT pull -q REGISTRY/corpus/IMAGE:latest (ROOT made by an untimed strata info)"
  meta pull.cmd.ctr "ctr -n bench images pull --plain-http REGISTRY/corpus/IMAGE:latest (a containerd of the bench's own, overlayfs snapshotter, running since the scenario began; ctr images rm --sync of every image between runs)"
  meta pull.cmd.docker "docker pull -q REGISTRY/corpus/IMAGE:latest (a dockerd of the bench's own, classic overlay2 driver, running since the scenario began; docker rmi of every image between runs)"
  meta pull.cmd.skopeo "skopeo copy --src-tls-verify=false docker://REGISTRY/corpus/IMAGE:latest containers-storage:[overlay@ROOT+RUNROOT]corpus/IMAGE:latest (the store made by an untimed copy and delete of an empty image)"
  meta pull.note.multi "multi: --platform linux/arm64 for every system (skopeo: --override-arch arm64; the arm64 variant is one layer of its own)"
  meta pull.note.multi-all "multi-all: multi with every platform: strata pull --all-platforms, ctr images pull --all-platforms, skopeo copy --all; amd64 (debian-base's layer), arm64 and the attestation manifest"
  ((have_docker)) && [[ " ${images[*]} " == *" multi-all "* ]] &&
    not_measured pull-multi-all docker "docker pull has no every-platform mode (its classic store holds one platform per name)"
  for run in $(seq 1 "$RUNS"); do
    for img in "${images[@]}"; do
      local ref=$REG/corpus/$img:latest plat=() cs_arch=() cs_all=()
      [ "$img" = multi ] && plat=(--platform linux/arm64) cs_arch=(--override-arch arm64)
      [ "$img" = multi-all ] && ref=$REG/corpus/multi:latest plat=(--all-platforms) cs_all=(--all)
      local order=(strata ctr docker skopeo)
      ((run % 2)) || order=(skopeo docker ctr strata)
      # The schedule, measured: the same pull one layer at a time.
      ((QUICK)) || case $img in python|smallfiles) order+=(strata-1) ;; esac
      # The price of power-loss safety: the same pull without the syncfs before each commit.
      ((QUICK)) || order+=(strata-nosync)
      for sys in "${order[@]}"; do
        case $sys in
          strata)
            rm -rf "$WORK/strata-root"; "$STRATA" --root "$WORK/strata-root" info > /dev/null
            timed "pull-$img" strata "$run" -- "$STRATA" --root "$WORK/strata-root" pull -q "${plat[@]}" "$ref" ;;
          strata-nosync)
            rm -rf "$WORK/strata-root"; "$STRATA" --root "$WORK/strata-root" info > /dev/null
            STRATA_SYNC_COMMITS=0 timed "pull-$img" strata-nosync "$run" -- "$STRATA" --root "$WORK/strata-root" pull -q "${plat[@]}" "$ref" ;;
          strata-1)
            rm -rf "$WORK/strata-root"; "$STRATA" --root "$WORK/strata-root" info > /dev/null
            timed "pull-$img" strata-1 "$run" -- "$STRATA" --root "$WORK/strata-root" pull -q --max-concurrent-downloads 1 "$ref" ;;
          ctr)
            ((have_ctr)) || continue
            ctr_clean
            timed "pull-$img" ctr "$run" -- "${CTR[@]}" images pull --plain-http "${plat[@]}" "$ref" ;;
          docker)
            ((have_docker)) && [ "$img" != multi-all ] || continue
            docker_clean
            timed "pull-$img" docker "$run" -- "${DOCKER[@]}" pull -q "${plat[@]}" "$ref" ;;
          skopeo)
            ((have_skopeo)) || continue
            cs_fresh "$WORK/cs"
            timed "pull-$img" skopeo "$run" -- skopeo "${cs_arch[@]}" copy -q "${cs_all[@]}" --src-tls-verify=false "docker://$ref" "containers-storage:[overlay@$WORK/cs+$WORK/cs.run]corpus/$img:latest" ;;
        esac
      done
    done
  done
  # Memory must not grow with layer size: one 512 MiB layer (incompressible) against the corpus.
  if ((!QUICK)) && command -v umoci > /dev/null; then
    local big=$WORK/big
    rm -rf "$big"; mkdir -p "$big/rootfs"
    head -c 512M /dev/urandom > "$big/rootfs/blob"
    umoci init --layout "$big/oci" && umoci new --image "$big/oci:latest"
    umoci insert --image "$big/oci:latest" "$big/rootfs/blob" /blob > /dev/null
    skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$big/oci:latest" "docker://$REG/corpus/big:latest"
    rm -rf "$big"
    meta pull.big "one layer of 512 MiB of random bytes (gzip)"
    for run in $(seq 1 "$RUNS"); do
      rm -rf "$WORK/strata-root"; "$STRATA" --root "$WORK/strata-root" info > /dev/null
      timed pull-big strata "$run" -- "$STRATA" --root "$WORK/strata-root" pull -q "$REG/corpus/big:latest"
    done
  fi
  # The floors, on python's two layers: the download alone, the decode alone, and the
  # extraction of the uncompressed layers alone (each pair in parallel, as a pull does them).
  if ((!QUICK)); then
    local layers=() l
    mapfile -t layers < <(python3 - "$corpus/oci/python" <<'PY'
import json, sys
lay = sys.argv[1]
blob = lambda d: f"{lay}/blobs/sha256/{d.split(':')[1]}"
m = json.load(open(blob(json.load(open(f"{lay}/index.json"))["manifests"][0]["digest"])))
for l in m["layers"]: print(l["digest"])
PY
)
    rm -rf "$WORK/floor"; mkdir -p "$WORK/floor"
    local i=0
    for l in "${layers[@]}"; do pigz -dc "$corpus/oci/python/blobs/sha256/${l#sha256:}" > "$WORK/floor/$i.tar"; i=$((i+1)); done
    meta pull.floor.download "curl -s REGISTRY/v2/corpus/python/blobs/LAYER -o /dev/null, both layers at once"
    meta pull.floor.decode "pigz -dc LAYER > /dev/null, both layers at once"
    meta pull.floor.extract "tar -x -f LAYER.tar -C DIR (uncompressed layers), both at once"
    for run in $(seq 1 "$RUNS"); do
      local dl="" dc="" ex=""
      i=0
      for l in "${layers[@]}"; do
        dl+="curl -fsS http://$REG/v2/corpus/python/blobs/$l -o /dev/null & "
        dc+="pigz -dc $corpus/oci/python/blobs/sha256/${l#sha256:} > /dev/null & "
        ex+="mkdir -p $WORK/floor/x$i && tar -xf $WORK/floor/$i.tar -C $WORK/floor/x$i & "
        i=$((i+1))
      done
      timed floor-download python "$run" -- sh -c "$dl wait"
      timed floor-decode python "$run" -- sh -c "$dc wait"
      rm -rf "$WORK"/floor/x*
      timed floor-extract python "$run" -- sh -c "$ex wait"
      rm -rf "$WORK"/floor/x*
    done
    rm -rf "$WORK/floor"
  fi
  stop_daemons
  unmount_under "$WORK/cs"; unmount_under "$WORK/cs.run"; unmount_under "$WORK/ctrd"
  rm -rf "$WORK/strata-root" "$WORK/ctrd" "$WORK/cs" "$WORK/cs.run" "$WORK/empty-oci" "$WORK/registry" "$WORK/dockerd"
}

scenario_push() {
  local corpus=$CORPUS
  local img=python; ((QUICK)) && img=debian-base
  echo "== push: $img to an empty registry on 127.0.0.1 (strata, ctr, docker)"
  start_registry registry; local src=$REG
  skopeo --insecure-policy copy -q --all --dest-tls-verify=false "oci:$corpus/oci/$img:latest" "docker://$src/corpus/$img:latest"
  rm -rf "$WORK/push-root"
  "$STRATA" --root "$WORK/push-root" pull -q "$src/corpus/$img:latest" > /dev/null
  local have_ctr=0 have_docker=0
  start_peers push ctr docker
  peer_prepare push "$src/corpus/$img:latest"
  meta push.image "$img"
  meta push.cmd.strata "strata push DEST/corpus/$img:latest (tagged from the pulled image; a new, empty registry each run)"
  meta push.cmd.ctr "ctr images push --plain-http DEST/corpus/$img:latest (same image, same empty registry)"
  meta push.cmd.docker "docker push DEST/corpus/$img:latest (same image pulled by dockerd; it compresses each layer again)"
  for run in $(seq 1 "$RUNS"); do
    local order=(strata ctr docker)
    ((run % 2)) || order=(docker ctr strata)
    for sys in "${order[@]}"; do
      case $sys in ctr) ((have_ctr)) || continue ;; docker) ((have_docker)) || continue ;; esac
      start_registry dest; local dst=$REG dst_pid=$REG_PID
      case $sys in
        strata)
          "$STRATA" --root "$WORK/push-root" tag "$src/corpus/$img:latest" "$dst/corpus/$img:latest"
          timed push strata "$run" -- "$STRATA" --root "$WORK/push-root" push -q "$dst/corpus/$img:latest"
          "$STRATA" --root "$WORK/push-root" rmi "$dst/corpus/$img:latest" > /dev/null ;;
        ctr)
          "${CTR[@]}" images tag "$src/corpus/$img:latest" "$dst/corpus/$img:latest" > /dev/null
          timed push ctr "$run" -- "${CTR[@]}" images push --plain-http "$dst/corpus/$img:latest"
          "${CTR[@]}" images rm "$dst/corpus/$img:latest" > /dev/null ;;
        docker)
          "${DOCKER[@]}" tag "$src/corpus/$img:latest" "$dst/corpus/$img:latest"
          timed push docker "$run" -- "${DOCKER[@]}" push "$dst/corpus/$img:latest"
          "${DOCKER[@]}" rmi "$dst/corpus/$img:latest" > /dev/null ;;
      esac
      stop_registry "$dst_pid"
    done
  done
  stop_daemons
  unmount_under "$WORK/ctrd"
  rm -rf "$WORK/push-root" "$WORK/ctrd" "$WORK/registry" "$WORK/dest" "$WORK/dockerd"
}

scenario_containers() {
  local corpus=$CORPUS
  local img=debian-base n=$((RUNS * 4))
  ((QUICK)) && n=1
  echo "== containers: create and run --rm $img /bin/true (strata, ctr, docker), $n runs each"
  start_registry registry; local src=$REG
  skopeo --insecure-policy copy -q --all --dest-tls-verify=false "oci:$corpus/oci/$img:latest" "docker://$src/corpus/$img:latest"
  local ref=$src/corpus/$img:latest root=$WORK/ctr-root
  rm -rf "$root"
  "$STRATA" --root "$root" pull -q "$ref" > /dev/null
  local have_ctr=0 have_docker=0
  start_peers containers ctr docker
  peer_prepare containers "$ref"
  meta containers.image "$img"
  meta containers.cmd.create.strata "strata create --name cN IMAGE /bin/true (writable layer, init layer, bundle with config.json)"
  meta containers.cmd.create.ctr "ctr containers create IMAGE cN /bin/true (snapshot + container record; the spec is made at create)"
  meta containers.cmd.run.strata "strata run --rm IMAGE /bin/true"
  meta containers.cmd.run.ctr "ctr run --rm IMAGE cN /bin/true (containerd's runc shim)"
  meta containers.cmd.create.docker "docker create --network none --name cN IMAGE /bin/true"
  meta containers.cmd.run.docker "docker run --rm --network none IMAGE /bin/true"
  ((have_ctr)) && meta version.runc "$(runc --version | head -1)"
  for run in $(seq 1 "$n"); do
    local order=(strata ctr docker)
    ((run % 2)) || order=(docker ctr strata)
    for sys in "${order[@]}"; do
      case $sys in ctr) ((have_ctr)) || continue ;; docker) ((have_docker)) || continue ;; esac
      case $sys in
        strata)
          WARM=1 timed create strata "$run" -- "$STRATA" --root "$root" create --name "c$run" "$ref" /bin/true
          "$STRATA" --root "$root" rm "c$run" > /dev/null
          WARM=1 timed run strata "$run" -- "$STRATA" --root "$root" run --rm "$ref" /bin/true ;;
        ctr)
          WARM=1 timed create ctr "$run" -- "${CTR[@]}" containers create "$ref" "c$run" /bin/true
          "${CTR[@]}" containers rm "c$run" > /dev/null
          WARM=1 timed run ctr "$run" -- "${CTR[@]}" run --rm "$ref" "r$run" /bin/true ;;
        docker)
          WARM=1 timed create docker "$run" -- "${DOCKER[@]}" create --network none --name "c$run" "$ref" /bin/true
          "${DOCKER[@]}" rm "c$run" > /dev/null
          WARM=1 timed run docker "$run" -- "${DOCKER[@]}" run --rm --network none "$ref" /bin/true ;;
      esac
    done
  done
  stop_daemons
  unmount_under "$WORK/ctrd"
  unmount_under "$root"
  rm -rf "$root" "$WORK/ctrd" "$WORK/registry" "$WORK/dockerd"
}

# Incremental pull: python is in the store; python-plus is python with one new top layer (the
# host's /usr/lib/python3* or /usr/share/doc, by bench/add_layer.py): only that layer moves.
scenario_incremental() {
  local corpus
  corpus=$(need_corpus incremental python)
  echo "== incremental: python present, pull python-plus (one new top layer) (strata, ctr, docker)"
  start_registry
  local plus=$WORK/plus src
  src=$(ls -d /usr/lib/python3.* 2>/dev/null | head -1); [ -n "$src" ] || src=/usr/share/doc
  python3 "$HERE/add_layer.py" "$corpus/oci/python" "$plus" "$src" opt/app
  skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$corpus/oci/python:latest" "docker://$REG/corpus/python:latest"
  skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$plus:latest" "docker://$REG/corpus/python-plus:latest"
  meta incremental.layer "$(du -sh "$src" | cut -f1) of $src as one new layer on python"
  rm -rf "$plus"
  local have_ctr=0 have_docker=0
  start_peers incremental ctr docker
  meta incremental.cmd.strata "strata pull -q REGISTRY/corpus/python:latest (untimed), then strata pull -q REGISTRY/corpus/python-plus:latest"
  meta incremental.cmd.ctr "ctr images pull --plain-http of python (untimed), then of python-plus (containerd running since the scenario began; every image removed with images rm --sync between runs)"
  meta incremental.cmd.docker "docker pull -q of python (untimed), then of python-plus (dockerd running since the scenario began; every image removed between runs)"
  local root=$WORK/strata-root
  for run in $(seq 1 "$RUNS"); do
    local order=(strata ctr docker)
    ((run % 2)) || order=(docker ctr strata)
    for sys in "${order[@]}"; do
      case $sys in
        strata)
          rm -rf "$root"; "$STRATA" --root "$root" pull -q "$REG/corpus/python:latest" > /dev/null
          timed incremental strata "$run" -- "$STRATA" --root "$root" pull -q "$REG/corpus/python-plus:latest" ;;
        ctr)
          ((have_ctr)) || continue
          ctr_clean
          peer_prepare incremental "$REG/corpus/python:latest" ctr
          ((have_ctr)) || continue
          timed incremental ctr "$run" -- "${CTR[@]}" images pull --plain-http "$REG/corpus/python-plus:latest" ;;
        docker)
          ((have_docker)) || continue
          docker_clean
          peer_prepare incremental "$REG/corpus/python:latest" docker
          ((have_docker)) || continue
          timed incremental docker "$run" -- "${DOCKER[@]}" pull -q "$REG/corpus/python-plus:latest" ;;
      esac
    done
  done
  stop_daemons
  unmount_under "$WORK/ctrd"
  rm -rf "$root" "$WORK/ctrd" "$WORK/registry" "$WORK/dockerd"
}

# Removing half of a store's images, space freed included: strata's rmi collects garbage
# before it returns; ctr's `images rm --sync` waits for containerd's collector.
scenario_prune() {
  local n=200 layout=$WORK/prune-layout root=$WORK/strata-root
  ((QUICK)) && n=20
  local half=$((n / 2))
  echo "== prune: remove $half of $n images and collect (strata, ctr, docker)"
  rm -rf "$layout"; python3 "$HERE/make_images.py" "$layout" "$n"
  (cd "$layout" && tar -cf "$WORK/prune.tar" .)
  local names=() i
  for i in $(seq 0 $((half - 1))); do names+=("bench/img-$i:latest"); done
  local have_ctr=0 have_docker=0
  start_peers prune ctr docker
  # dockerd 20.10 reads Docker archives (manifest.json), not OCI layouts: strata writes one.
  if ((have_docker)); then
    rm -rf "$root"; "$STRATA" --root "$root" load -q -i "$layout" > /dev/null
    local all=()
    mapfile -t all < <("$STRATA" --root "$root" images --format '{{.Repository}}:{{.Tag}}')
    "$STRATA" --root "$root" save -o "$WORK/prune-docker.tar" "${all[@]}"
  fi
  meta prune.cmd.docker "docker load -i ARCHIVE (strata save of the same images; untimed); docker rmi NAME… ($half names; layers removed before it returns; dockerd running since the scenario began, emptied between runs)"
  meta prune.images "$n"
  meta prune.cmd.strata "strata load -i LAYOUT (untimed); strata rmi bench/img-0 … bench/img-$((half - 1)) (records, then garbage collection)"
  meta prune.cmd.ctr "ctr images import LAYOUT.tar (untimed); ctr images rm --sync NAME… ($half names; waits for the collector; containerd running since the scenario began, emptied between runs)"
  for run in $(seq 1 "$RUNS"); do
    local order=(strata ctr docker)
    ((run % 2)) || order=(docker ctr strata)
    for sys in "${order[@]}"; do
      case $sys in
        strata)
          rm -rf "$root"; "$STRATA" --root "$root" load -q -i "$layout" > /dev/null
          timed prune strata "$run" -- "$STRATA" --root "$root" rmi "${names[@]}" ;;
        ctr)
          ((have_ctr)) || continue
          ctr_clean
          "${CTR[@]}" images import "$WORK/prune.tar" > /dev/null
          local cnames=()
          mapfile -t cnames < <("${CTR[@]}" images ls -q | sort -V | head -n "$half")
          timed prune ctr "$run" -- "${CTR[@]}" images rm --sync "${cnames[@]}" ;;
        docker)
          ((have_docker)) || continue
          docker_clean
          "${DOCKER[@]}" load -q -i "$WORK/prune-docker.tar" > /dev/null
          timed prune docker "$run" -- "${DOCKER[@]}" rmi "${names[@]}" ;;
      esac
    done
  done
  stop_daemons
  unmount_under "$WORK/ctrd"
  rm -rf "$root" "$WORK/ctrd" "$layout" "$WORK/prune.tar" "$WORK/prune-docker.tar" "$WORK/dockerd"
}

# Disk bytes of the whole corpus pulled three ways: strata keeping the compressed layers (as
# containerd does), strata with --discard-compressed, and containerd; and the time a
# discarding pull takes (the verification re-reads every layer).
scenario_space() {
  local corpus
  corpus=$(need_corpus space multi)
  local images=(debian-base python smallfiles multi)
  ((QUICK)) && images=(debian-base)
  echo "== space: ${images[*]} pulled by strata (keeping, discarding compressed layers), ctr and docker"
  start_registry
  local refs="" img
  for img in "${images[@]}"; do
    skopeo --insecure-policy copy -q --all --dest-tls-verify=false "oci:$corpus/oci/$img:latest" "docker://$REG/corpus/$img:latest"
    refs+=" $REG/corpus/$img:latest"
  done
  local have_ctr=0 have_docker=0
  start_peers space ctr docker
  meta space.cmd.docker "for each image: docker pull -q REGISTRY/corpus/IMAGE:latest; du -sB1 of dockerd's data root (dockerd running since the scenario began, emptied between runs)"
  meta space.images "${images[*]}"
  meta space.cmd.strata "for each image: strata --root ROOT pull -q REGISTRY/corpus/IMAGE:latest; du -sB1 ROOT"
  meta space.cmd.discard "for each image: strata --root ROOT pull -q --discard-compressed REGISTRY/corpus/IMAGE:latest; du -sB1 ROOT"
  meta space.cmd.ctr "for each image: ctr images pull --plain-http REGISTRY/corpus/IMAGE:latest; du -sB1 of containerd's root (containerd running since the scenario began, emptied with images rm --sync between runs)"
  local root=$WORK/strata-root
  for run in $(seq 1 "$RUNS"); do
    for sys in strata strata-discard ctr docker; do
      case $sys in
        strata|strata-discard)
          local flag=""; [ "$sys" = strata-discard ] && flag=--discard-compressed
          rm -rf "$root"; "$STRATA" --root "$root" info > /dev/null
          timed space-pull "$sys" "$run" -- sh -c "for r in $refs; do '$STRATA' --root '$root' pull -q $flag \$r > /dev/null || exit 1; done"
          meta "space.bytes.$sys" "$(du -sB1 "$root" | cut -f1)"
          meta space.bytes.unpacked "$(du -sB1 "$root/snapshots" | cut -f1)" ;;
        ctr)
          ((have_ctr)) || continue
          ctr_clean
          timed space-pull ctr "$run" -- sh -c "for r in $refs; do ${CTR[*]} images pull --plain-http \$r > /dev/null || exit 1; done"
          meta space.bytes.ctr "$(du -sB1 "$WORK/ctrd/root" | cut -f1)"
          meta space.bytes.ctr-unpacked "$(du -sB1 "$WORK/ctrd/root/io.containerd.snapshotter.v1.overlayfs" | cut -f1)" ;;
        docker)
          ((have_docker)) || continue
          docker_clean
          timed space-pull docker "$run" -- sh -c "for r in $refs; do ${DOCKER[*]} pull -q \$r > /dev/null || exit 1; done"
          meta space.bytes.docker "$(du -sB1 "$WORK/dockerd/root" | cut -f1)"
          meta space.bytes.docker-unpacked "$(du -sB1 "$WORK/dockerd/root/overlay2" | cut -f1)" ;;
      esac
    done
  done
  stop_daemons
  unmount_under "$WORK/ctrd"
  rm -rf "$root" "$WORK/ctrd" "$WORK/registry" "$WORK/dockerd"
}

scenario_df() {
  local n=1000 root=$WORK/df-root layout=$WORK/df-layout
  ((QUICK)) && n=50
  echo "== df: system df on a store of $n images (one shared base layer, one own layer each)"
  rm -rf "$root" "$layout"
  python3 "$HERE/make_images.py" "$layout" "$n"
  "$STRATA" --root "$root" load -q -i "$layout" > /dev/null
  meta df.images "$n"
  meta df.cmd.make "python3 bench/make_images.py DIR $n; strata load -i DIR"
  meta df.cmd.strata "strata system df"
  meta df.cmd.images "strata images"
  local have_docker=0
  start_peers df docker
  if ((have_docker)); then
    local all=()
    mapfile -t all < <("$STRATA" --root "$root" images --format '{{.Repository}}:{{.Tag}}')
    "$STRATA" --root "$root" save -o "$WORK/df-docker.tar" "${all[@]}"
    "${DOCKER[@]}" load -q -i "$WORK/df-docker.tar" > /dev/null
    rm -f "$WORK/df-docker.tar"
    meta df.cmd.docker "docker system df, docker images (the same $n images, loaded from a strata save, in a dockerd running since the scenario began)"
  fi
  for run in $(seq 1 "$((RUNS * 2))"); do
    WARM=1 timed df-warm strata "$run" -- "$STRATA" --root "$root" system df
    WARM=1 timed df-images strata "$run" -- "$STRATA" --root "$root" images
    if ((have_docker)); then
      WARM=1 timed df-warm docker "$run" -- "${DOCKER[@]}" system df
      WARM=1 timed df-images docker "$run" -- "${DOCKER[@]}" images
    fi
  done
  for run in $(seq 1 "$RUNS"); do
    timed df-cold strata "$run" -- "$STRATA" --root "$root" system df
    ((have_docker)) && timed df-cold docker "$run" -- "${DOCKER[@]}" system df
  done
  stop_daemons
  rm -rf "$root" "$layout" "$WORK/dockerd"
}

# Migration: dockerd pulls the corpus into its classic overlay2 store and stops; strata then
# migrates that store (layer files hardlinked from Docker's, the default here, or copied with
# --copy), against pulling the same images again from the registry.
scenario_migrate() {
  local corpus
  corpus=$(need_corpus migrate python)
  local images=(debian-base python smallfiles)
  ((QUICK)) && images=(debian-base)
  local have_docker=0
  start_peers migrate docker
  if ((!have_docker)); then
    echo "== migrate: skipped: it needs a Docker store, and $WHY"
    meta migrate.skipped "it needs a Docker overlay2 store made by dockerd, and $WHY"
    return 0
  fi
  echo "== migrate: ${images[*]} from a Docker overlay2 store (strata migrate, --copy; strata pull)"
  start_registry
  local refs="" img
  for img in "${images[@]}"; do
    skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$corpus/oci/$img:latest" "docker://$REG/corpus/$img:latest"
    "${DOCKER[@]}" pull -q "$REG/corpus/$img:latest" > /dev/null
    refs+=" $REG/corpus/$img:latest"
  done
  stop_dockerd --graceful
  # The store dockerd left behind, kept aside (fresh_dockerd would empty it).
  rm -rf "$WORK/docker-src"; mv "$WORK/dockerd" "$WORK/docker-src"
  local from=$WORK/docker-src/root root=$WORK/strata-root
  meta migrate.images "${images[*]}"
  meta migrate.bytes "$(du -sB1 "$from/overlay2" | cut -f1)"
  meta migrate.cmd.strata "strata --root ROOT migrate -q --from DOCKER_ROOT (files hardlinked from Docker's: same filesystem; ROOT made by an untimed strata info, as for each strata way)"
  meta migrate.cmd.strata-copy "strata --root ROOT migrate -q --copy --from DOCKER_ROOT"
  meta migrate.cmd.strata-pull "for each image: strata --root ROOT pull -q REGISTRY/corpus/IMAGE:latest (the alternative: fetch it all again)"
  meta migrate.cmd.cp "cp -a DOCKER_ROOT/overlay2 DIR (the floor of copying the layer files)"
  for run in $(seq 1 "$RUNS"); do
    local order=(strata strata-copy strata-pull cp)
    ((run % 2)) || order=(cp strata-pull strata-copy strata)
    for sys in "${order[@]}"; do
      rm -rf "$root" "$WORK/cp"
      [ "$sys" = cp ] || "$STRATA" --root "$root" info > /dev/null
      case $sys in
        strata) timed migrate strata "$run" -- "$STRATA" --root "$root" migrate -q --from "$from" ;;
        strata-copy) timed migrate strata-copy "$run" -- "$STRATA" --root "$root" migrate -q --copy --from "$from" ;;
        strata-pull)
          timed migrate strata-pull "$run" -- sh -c "for r in $refs; do '$STRATA' --root '$root' pull -q \$r > /dev/null || exit 1; done" ;;
        cp) timed migrate cp "$run" -- cp -a "$from/overlay2" "$WORK/cp" ;;
      esac
    done
  done
  meta migrate.bytes.strata "$(rm -rf "$root"; "$STRATA" --root "$root" migrate -q --copy --from "$from" > /dev/null; du -sB1 "$root" | cut -f1)"
  stop_daemons
  rm -rf "$root" "$WORK/cp" "$WORK/docker-src" "$WORK/registry"
}

for s in "${SCENARIOS[@]}"; do
  declare -F "scenario_$s" > /dev/null || { echo "bench: unknown scenario $s" >&2; exit 2; }
  t=$(date +%s)
  "scenario_$s"
  meta "elapsed.$s" $(($(date +%s) - t))
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
meta elapsed.total $(($(date +%s) - STARTED))
python3 "$HERE/test_report.py"   # the grading the page is written with, checked on made-up runs
python3 "$HERE/report.py" "$RESULTS" "$META" "$(dirname "$REPORT")" > "$REPORT"
echo "== report: $REPORT"
