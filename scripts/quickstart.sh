#!/usr/bin/env bash
# strata's main job, end to end, on a fresh Debian machine. Installs what it needs (apt), builds
# strata, starts a local CNCF distribution registry on 127.0.0.1, puts a small real image in it
# (busybox, built here with umoci and copied in with skopeo), pulls it with `strata pull`
# (download, verify, unpack into overlayfs snapshots) and shows `strata images`,
# `strata snapshot ls` and `strata info`. Run and `system df` join as they land.
#
#   scripts/quickstart.sh          (as root: apt, /var/lib/strata)
#   STRATA_ROOT=DIR scripts/quickstart.sh
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
export STRATA_ROOT=${STRATA_ROOT:-/var/lib/strata}

need=()
for p in docker-registry skopeo umoci busybox-static runc curl python3; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || need+=("$p")
done
if ((${#need[@]})); then
  echo "== installing ${need[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}"
fi

echo "== building strata (release)"
(cd "$REPO" && cargo build --release --locked -q -p strata-cli)
STRATA="$REPO/target/release/strata"
[ "$(id -u)" = 0 ] || STRATA="$SUDO --preserve-env=STRATA_ROOT $STRATA"

WORK=$(mktemp -d /tmp/strata-quickstart.XXXXXX)
REG_PID=
cleanup() { [ -z "$REG_PID" ] || kill "$REG_PID" 2>/dev/null || true; rm -rf "$WORK"; }
trap cleanup EXIT

echo "== starting a local registry"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
cat > "$WORK/registry.yml" <<YML
version: 0.1
log: { level: warn }
storage: { filesystem: { rootdirectory: $WORK/registry }, delete: { enabled: true } }
http: { addr: 127.0.0.1:$PORT }
YML
docker-registry serve "$WORK/registry.yml" > "$WORK/registry.log" 2>&1 &
REG_PID=$!
for _ in $(seq 50); do curl -fsS "http://127.0.0.1:$PORT/v2/" > /dev/null 2>&1 && break; sleep 0.1; done
curl -fsS "http://127.0.0.1:$PORT/v2/" > /dev/null || { cat "$WORK/registry.log"; exit 1; }
REG=127.0.0.1:$PORT
echo "registry at http://$REG"

echo "== building a busybox image and pushing it to $REG/demo/busybox:latest"
mkdir -p "$WORK/rootfs/bin"
cp /bin/busybox "$WORK/rootfs/bin/busybox"
for cmd in sh ls cat echo true printf sleep uname; do ln -s busybox "$WORK/rootfs/bin/$cmd"; done
umoci init --layout "$WORK/oci"
umoci new --image "$WORK/oci:latest"
umoci insert --image "$WORK/oci:latest" "$WORK/rootfs/bin" /bin > /dev/null
umoci config --image "$WORK/oci:latest" --config.cmd sh
skopeo --insecure-policy copy -q --dest-tls-verify=false "oci:$WORK/oci:latest" "docker://$REG/demo/busybox:latest"

echo "== strata pull $REG/demo/busybox:latest"
$STRATA pull "$REG/demo/busybox:latest"
echo
echo "== strata run --rm $REG/demo/busybox:latest uname -a"
$STRATA run --rm "$REG/demo/busybox:latest" uname -a
echo
echo "== strata run -d (a background container), exec into it, ps --size"
$STRATA rm -f quickstart > /dev/null 2>&1 || true
$STRATA run -d --name quickstart "$REG/demo/busybox:latest" sleep 600
$STRATA exec quickstart sh -c 'printf hello > /hello.txt'
$STRATA ps --size
echo
echo "== strata system df (with the container still there)"
$STRATA system df
$STRATA rm -f quickstart
echo
echo "== strata images"
$STRATA images
echo
echo "== strata snapshot ls (the unpacked layers, by chainID)"
$STRATA snapshot ls
echo
echo "== strata info"
$STRATA info
