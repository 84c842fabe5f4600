#!/bin/sh
# The prepared GPU check, on the GPU host (no Node, no network needed; see scripts/gpu-check/README.md):
#
#   sh run.sh REPORT_DIR [--allow-software]
#
# Unpacks Node and the app next to this script (work/, or GPU_CHECK_WORK), extracts the Vulkan loader
# from the libvulkan1 .deb, points Vulkan at NVIDIA's ICD where one exists, runs the reference fixtures
# on webgpu (failing unless Dawn reports a hardware adapter; --allow-software accepts lavapipe, for the
# round trip on a CPU host), then the bench on webgpu at GPU_CHECK_BENCH_CONFIG (default M,L) with the
# PyTorch columns when python3 has torch. Writes environment.txt, fixtures.txt, bench.txt and
# summary.txt into REPORT_DIR. Exit status: 0 when both steps passed.
set -u
usage="usage: sh run.sh REPORT_DIR [--allow-software]"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
REPORT=$1
shift
ALLOW=""
for a in "$@"; do
  case $a in
  --allow-software) ALLOW=--allow-software ;;
  *) echo "unknown argument: $a; $usage" >&2; exit 2 ;;
  esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
WORK=${GPU_CHECK_WORK:-$HERE/work}
LIMIT=${GPU_CHECK_TIMEOUT:-600}
mkdir -p "$REPORT" && REPORT=$(cd "$REPORT" && pwd) || exit 2
: >"$REPORT/summary.txt"
log() { echo "$*" | tee -a "$REPORT/summary.txt"; }
started=$(date +%s)

# xz, or Python's lzma where xz is missing.
unxz_to_stdout() {
  if command -v xz >/dev/null 2>&1; then xz -dc "$1"; else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"
  fi
}

# dpkg-deb, or ar + tar, or Python reading the ar archive.
extract_deb() {
  deb=$1
  dest=$2
  if command -v dpkg-deb >/dev/null 2>&1; then dpkg-deb -x "$deb" "$dest" && return; fi
  tmp=$(mktemp -d)
  if command -v ar >/dev/null 2>&1; then (cd "$tmp" && ar x "$deb"); else
    python3 - "$deb" "$tmp" <<'EOF'
import os, sys
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'!<arch>\n', 'not an ar archive'
pos = 8
while pos + 60 <= len(data):
    name = data[pos:pos + 16].decode().strip().rstrip('/')
    size = int(data[pos + 48:pos + 58].decode().strip())
    open(os.path.join(sys.argv[2], name), 'wb').write(data[pos + 60:pos + 60 + size])
    pos += 60 + size + (size % 2)
EOF
  fi
  member=$(ls "$tmp"/data.tar.* | head -1)
  case $member in
  *.xz) unxz_to_stdout "$member" | tar -xf - -C "$dest" ;;
  *) tar -xf "$member" -C "$dest" ;;
  esac
  rm -rf "$tmp"
}

run_limited() {
  if command -v timeout >/dev/null 2>&1; then timeout "$LIMIT" "$@"; else "$@"; fi
}

rm -rf "$WORK" && mkdir -p "$WORK/vulkan" || exit 1
unxz_to_stdout "$HERE/node.xz" >"$WORK/node" && chmod +x "$WORK/node" || { log "FAIL: could not unpack node.xz"; exit 1; }
unxz_to_stdout "$HERE/app.tar.xz" | tar -xf - -C "$WORK" || { log "FAIL: could not unpack app.tar.xz"; exit 1; }
deb=$(ls "$HERE"/libvulkan1_*.deb 2>/dev/null | head -1)
[ -n "$deb" ] && extract_deb "$deb" "$WORK/vulkan" || { log "FAIL: could not extract the libvulkan1 .deb"; exit 1; }
LD_LIBRARY_PATH="$WORK/vulkan/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export LD_LIBRARY_PATH

# NVIDIA's ICD: containers mount the driver under /usr/local/nvidia; hosts have it in the standard dirs.
if [ -z "${VK_DRIVER_FILES:-}" ]; then
  for icd in /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json /usr/share/vulkan/icd.d/nvidia_icd.json \
    /etc/vulkan/icd.d/nvidia_icd.json /usr/local/share/vulkan/icd.d/nvidia_icd.json; do
    if [ -f "$icd" ]; then
      VK_DRIVER_FILES=$icd
      export VK_DRIVER_FILES
      break
    fi
  done
fi
: "${XDG_RUNTIME_DIR:=$WORK/xdg}"
mkdir -p "$XDG_RUNTIME_DIR" && chmod 700 "$XDG_RUNTIME_DIR"
export XDG_RUNTIME_DIR

{
  echo "date: $(date -u)"
  echo "host: $(uname -a)"
  echo "node: $("$WORK/node" --version)"
  echo "VK_DRIVER_FILES: ${VK_DRIVER_FILES:-(unset: the loader's default search)}"
  echo "LD_LIBRARY_PATH: $LD_LIBRARY_PATH"
  echo "ICD files:"
  ls -l /usr/local/nvidia/share/vulkan/icd.d /usr/share/vulkan/icd.d /etc/vulkan/icd.d 2>&1
  echo "nvidia-smi:"
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  echo "python3 torch:"
  python3 -c 'import torch; print(torch.__version__, "cuda" if torch.cuda.is_available() else "no cuda")' 2>&1
} >"$REPORT/environment.txt" 2>&1
log "environment: $REPORT/environment.txt (VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset})"

cd "$WORK/app" || exit 1
run_limited "$WORK/node" check/scripts/gpu-check/check-fixtures.js $ALLOW >"$REPORT/fixtures.txt" 2>&1
fixtures_rc=$?
log "$(grep -m1 '^backend:' "$REPORT/fixtures.txt" || echo 'backend: (no line; see fixtures.txt)')"
log "$(grep -m1 '^fixtures:' "$REPORT/fixtures.txt" || tail -n 3 "$REPORT/fixtures.txt")"
log "fixtures: exit $fixtures_rc"

# The bench's flags as bench/lstm.bench.ts defines them; GPU_CHECK_BENCH_ARGS adds more.
# shellcheck disable=SC2086
run_limited "$WORK/node" bench/dist/lstm.bench.js --backend webgpu --config "${GPU_CHECK_BENCH_CONFIG:-M,L}" \
  ${GPU_CHECK_BENCH_ARGS:-} >"$REPORT/bench.txt" 2>&1
bench_rc=$?
log "bench (--config ${GPU_CHECK_BENCH_CONFIG:-M,L}): exit $bench_rc, table in $REPORT/bench.txt"
log "elapsed: $(($(date +%s) - started)) s"
[ $fixtures_rc -eq 0 ] && [ $bench_rc -eq 0 ]
