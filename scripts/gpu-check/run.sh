#!/usr/bin/env bash
# The WebGPU check on a GPU machine without Node.js or network (packed by scripts/gpu-check/
# pack.sh into build/gpu-check/; run from anywhere: bash build/gpu-check/run.sh):
#   1. unpacks payload.tar.xz (Node.js, the compiled check, dawn.node, loader .debs);
#   2. if the system has no Vulkan loader, unpacks the .debs into a private folder (not into /);
#      points Vulkan/EGL at the NVIDIA driver's files when the system does not;
#   3. the backend report (the chain, then webgpu forced), the kernel agreement and training-step
#      tests against cpu/wasm (test/backend/webgpu-*.test), `npm run bench` on webgpu (with the
#      per-kernel profile and dispatch count of a MoCo v2 + MixMask step, bench/sections/12), then
#      two extra bench runs: that step at Table 1's batch 512, and the conv shapes with tfjs's own
#      kernels (MIXMASK_WEBGPU_KERNELS=stock) for a before/after on the same GPU.
# Results in $OUT (else build/gpu-check/out): summary.json, report.txt, report.json, tests.txt,
# bench.txt, bench.jsonl, bench-extra.jsonl. Environment: GPU_CHECK_WORK (unpack folder, default /tmp),
# GPU_CHECK_BENCH (bench arguments, default "--only 10,12,20,30,40,50"), GPU_CHECK_TRAIN_BATCHES
# (the training bench's batches, default 32,256), GPU_CHECK_TEST_TIMEOUT, GPU_CHECK_BENCH_TIMEOUT
# and GPU_CHECK_EXTRA_TIMEOUT (seconds, default 180, 240 and 150: together under the device
# tool's 600), MIXMASK_DAWN_FLAGS (e.g.
# backend=opengles to try Dawn's OpenGL ES path instead of Vulkan), GPU_CHECK_PACKED_LOADERS=1
# (use the packed loaders even where the system has its own).
set -uo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
work="${GPU_CHECK_WORK:-/tmp/mixmask-gpu-check-work}"
out="${OUT:-$here/out}"
mkdir -p "$work" "$out"
log() { echo "[gpu-check] $*" | tee -a "$out/report.txt" >&2; }
: >"$out/report.txt"

# ---- 1. unpack
if [ ! -x "$work/mixmask-gpu-check/node/bin/node" ]; then
  if command -v xz >/dev/null; then
    tar -xJf "$here/payload.tar.xz" -C "$work" || { log "cannot unpack payload.tar.xz"; exit 1; }
  else
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1], "r:xz").extractall(sys.argv[2])' "$here/payload.tar.xz" "$work" ||
      { log "cannot unpack payload.tar.xz (no xz, and python3 failed)"; exit 1; }
  fi
fi
pack="$work/mixmask-gpu-check"
node="$pack/node/bin/node"
app="$pack/app"
log "node $("$node" --version) at $node"

# ---- 2. loaders and driver files
if [ -n "${GPU_CHECK_PACKED_LOADERS:-}" ] || ! ldconfig -p 2>/dev/null | grep -q 'libvulkan\.so\.1 '; then
  sysroot="$work/sysroot"
  mkdir -p "$sysroot"
  for deb in "$pack"/debs/*.deb; do
    if command -v dpkg-deb >/dev/null; then
      dpkg-deb -x "$deb" "$sysroot"
    else
      (tmp="$(mktemp -d)" && cd "$tmp" && ar x "$deb" && tar -xf data.tar.* -C "$sysroot" && rm -rf "$tmp")
    fi || log "could not unpack $(basename "$deb")"
  done
  export LD_LIBRARY_PATH="$sysroot/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  log "no system Vulkan loader: using the packed ones from $sysroot"
fi
for d in /usr/local/nvidia/lib64 /usr/local/nvidia/lib; do
  [ -d "$d" ] && export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$d"
done
has_icd() { ls /usr/share/vulkan/icd.d/*.json /etc/vulkan/icd.d/*.json >/dev/null 2>&1; }
nv_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -z "${VK_DRIVER_FILES:-}${VK_ICD_FILENAMES:-}" ] && ! has_icd && [ -f "$nv_icd" ]; then
  export VK_DRIVER_FILES="$nv_icd"
fi
nv_egl=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
if [ -z "${__EGL_VENDOR_LIBRARY_FILENAMES:-}" ] && [ ! -d /usr/share/glvnd/egl_vendor.d ] && [ -f "$nv_egl" ]; then
  export __EGL_VENDOR_LIBRARY_FILENAMES="$nv_egl"
fi
log "VK_DRIVER_FILES=${VK_DRIVER_FILES:-} VK_ICD_FILENAMES=${VK_ICD_FILENAMES:-} LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-} MIXMASK_DAWN_FLAGS=${MIXMASK_DAWN_FLAGS:-}"
command -v nvidia-smi >/dev/null && nvidia-smi -L 2>&1 | tee -a "$out/report.txt" >&2

cd "$app"
status_report=0 status_tests=0 status_bench=0

# ---- 3a. backend report: the chain as it stands, then webgpu forced (with the adapter)
t0=$(date +%s)
{ echo "== the backend chain"; "$node" dist/scripts/backend-report.js 2>&1; } | tee -a "$out/report.txt"
{ echo "== webgpu forced"; "$node" dist/scripts/backend-report.js --force webgpu --json "$out/report.json" 2>&1; } | tee -a "$out/report.txt"
status_report=${PIPESTATUS[0]}
t1=$(date +%s)

# ---- 3b. kernel agreement and training-step tests (CI=true: a webgpu that cannot start fails)
CI=true timeout "${GPU_CHECK_TEST_TIMEOUT:-180}" "$node" --test --test-reporter=spec \
  dist/test/backend/webgpu-*.test.js >"$out/tests.txt" 2>&1
status_tests=$?
tail -n 12 "$out/tests.txt" >&2
t2=$(date +%s)

# ---- 3c. the bench on webgpu
read -r -a bench_args <<<"${GPU_CHECK_BENCH:---only 10,12,20,30,40,50}"
MIXMASK_BENCH_TRAIN_BATCHES="${GPU_CHECK_TRAIN_BATCHES:-32,256}" MIXMASK_BACKEND=webgpu timeout "${GPU_CHECK_BENCH_TIMEOUT:-240}" "$node" dist/bench/run.js --json "${bench_args[@]}" >"$out/bench.jsonl" 2>"$out/bench.txt"
status_bench=$?
"$node" -e '
  const fs = require("node:fs");
  for (const line of fs.readFileSync(process.argv[1], "utf8").split("\n").filter((l) => l.startsWith("{"))) {
    const m = JSON.parse(line);
    const parts = [m.name.padEnd(42), `batch ${m.batch}`];
    if (m.imgPerSec !== undefined) parts.push(`${m.imgPerSec.toFixed(1)} img/s`);
    if (m.ms !== undefined) parts.push(`${m.ms.toFixed(1)} ms`);
    if (m.extra) parts.push(Object.entries(m.extra).map(([k, v]) => `${k} ${v}`).join(", "));
    console.log(parts.join(" | "));
  }' "$out/bench.jsonl" | tee -a "$out/bench.txt" >&2
t3=$(date +%s)

# ---- 3d. the MoCo v2 + MixMask step at batch 512, and the conv shapes with tfjs's own kernels
extra() { MIXMASK_BACKEND=webgpu "$@" timeout "${GPU_CHECK_EXTRA_TIMEOUT:-150}" "$node" dist/bench/run.js --json --only 12 >>"$out/bench-extra.jsonl" 2>>"$out/bench.txt"; }
: >"$out/bench-extra.jsonl"
t_extra=$(date +%s)
extra env MIXMASK_BENCH_WEBGPU=convs MIXMASK_WEBGPU_KERNELS=stock
status_extra=$?
GPU_CHECK_EXTRA_TIMEOUT=$(( ${GPU_CHECK_EXTRA_TIMEOUT:-150} - ($(date +%s) - t_extra) ))
[ "$GPU_CHECK_EXTRA_TIMEOUT" -gt 10 ] && { extra env MIXMASK_BENCH_WEBGPU=step MIXMASK_BENCH_WEBGPU_BATCH=512 || status_extra=$?; }
grep -h '"name"' "$out/bench-extra.jsonl" >&2
t4=$(date +%s)

cat >"$out/summary.json" <<EOF
{ "report": $status_report, "tests": $status_tests, "bench": $status_bench, "benchExtra": $status_extra,
  "seconds": { "report": $((t1 - t0)), "tests": $((t2 - t1)), "bench": $((t3 - t2)), "benchExtra": $((t4 - t3)) },
  "node": "$("$node" --version)", "gpu": "$(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version --format=csv,noheader | head -1)" }
EOF
cat "$out/summary.json" >&2
[ "$status_report" -eq 0 ] && [ "$status_tests" -eq 0 ] && [ "$status_bench" -eq 0 ]
