import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { BackendCandidate } from '../types';
import { activateWasm, wasmAvailable } from '../wasm';
import { buildStatusReason, defaultAddonPath, loadAddon } from './addon';
import { installOnednnKernels, ONEDNN_KERNELS } from './kernels';
import { applyPrecision, BF16_DETAIL, PRECISION_ENV } from './precision';

export { defaultAddonPath, loadAddon, buildStatusReason } from './addon';
export type { OnednnAddon } from './addon';
export { parsePrecision, applyPrecision, BF16_DETAIL, PRECISION_ENV } from './precision';
export type { OnednnPrecision } from './precision';
export { installOnednnKernels, uninstallOnednnKernels, onednnKernelsInstalled, kernelStats, ONEDNN_KERNELS } from './kernels';

/**
 * `wasm+onednn`: the tfjs `wasm` backend (SIMD, one thread: oneDNN's OpenMP threads do the heavy work; lib/backend/wasm) with its convolutions
 * (forward, backward data, backward weights) and the fused training BatchNorm(+ReLU) replaced by
 * the optional native addon of native/onednn (oneDNN, and our own loops where they are faster). The rest of lib/ is unchanged: it
 * still runs on tfjs's 'wasm' backend; only those kernels are registered anew.
 *
 * Precision: fp32 unless initBackend asks for bf16 (its `precision` option or MIXMASK_PRECISION):
 * then, where oneDNN reports native bf16, convolutions and matmuls run in bf16 with fp32 outputs
 * (./precision.ts); elsewhere it stays fp32 and the report line says why.
 */
export interface OnednnCandidateOptions {
  /** The .node file (default MIXMASK_ONEDNN_ADDON or native/onednn/build/Release/mixmask_onednn.node). */
  addonPath?: string;
  /** Winograd for 3×3 stride-1 layers (default on; MIXMASK_ONEDNN_WINOGRAD=0 turns it off). */
  winograd?: boolean;
  /** Probe timeout in ms. */
  timeoutMs?: number;
}

const PROBE_SCRIPT = `
const addonPath = process.argv[1];
try {
  const m = { exports: {} };
  process.dlopen(m, addonPath);
  const a = m.exports;
  // A 1x3x3x1 input, 2x2 filter of ones, valid: every output is the sum of a 2x2 window.
  const x = new Float32Array([1, 2, 3, 4, 5, 6, 7, 8, 9]);
  const w = new Float32Array([1, 1, 1, 1]);
  const y = new Float32Array(4);
  a.conv(1, x, w, y, [1, 3, 3, 1, 1, 2, 2, 2, 2, 1, 1, 0, 0, 0, 0], false);
  const want = [12, 16, 24, 28];
  if (want.some((v, i) => Math.abs(y[i] - v) > 1e-5)) throw new Error('wrong result from a test convolution: ' + Array.from(y));
  process.stdout.write(JSON.stringify({ ok: true, info: a.info() }));
} catch (e) {
  process.stdout.write(JSON.stringify({ ok: false, error: String((e && e.message) || e) }));
}
`;

/** Loads the addon in a child process and runs one small convolution; never throws. */
export function probeOnednnAddon(addonPath: string, timeoutMs = 60_000): { ok: boolean; reason: string } {
  if (!fs.existsSync(addonPath)) {
    const why = buildStatusReason();
    return {
      ok: false,
      reason: why ? `native addon not built: ${why}` : `native addon not built (${addonPath} is missing; install libdnnl-dev, then run node scripts/build-native.mjs)`,
    };
  }
  const res = spawnSync(process.execPath, ['-e', PROBE_SCRIPT, addonPath], { encoding: 'utf8', timeout: timeoutMs, env: { ...process.env, OMP_NUM_THREADS: '1' } });
  if (res.error) return { ok: false, reason: `probe failed to run: ${res.error.message}` };
  if (res.signal) return { ok: false, reason: `native addon crashed while loading (${res.signal})` };
  try {
    const parsed = JSON.parse(res.stdout) as { ok: boolean; error?: string; info?: { version: string; isa: string } };
    if (!parsed.ok) return { ok: false, reason: `native addon failed to load: ${(parsed.error ?? 'unknown error').split('\n')[0]}` };
    return { ok: true, reason: `oneDNN ${parsed.info?.version} (${parsed.info?.isa})` };
  } catch {
    const tail = (res.stderr ?? '').trim().split('\n').slice(-1)[0] ?? '';
    return { ok: false, reason: `native addon probe exited with code ${res.status}${tail ? `: ${tail}` : ''}` };
  }
}

export function onednnCandidate(opts: OnednnCandidateOptions = {}): BackendCandidate {
  const addonPath = opts.addonPath ?? defaultAddonPath();
  return {
    name: 'wasm+onednn',
    async check() {
      const wasm = wasmAvailable();
      if (!wasm.ok) return wasm;
      return probeOnednnAddon(addonPath, opts.timeoutMs);
    },
    async activate({ threads, precision: asked }) {
      const addon = loadAddon(addonPath);
      const ompThreads = addon.setThreads(threads);
      // The heavy kernels run on oneDNN's OpenMP threads; the wasm pool's workers, spinning after
      // each XNNPACK op, only took cores from them. One wasm thread, measured on the Xeon at 2
      // threads: ResNet-18 b32 step 385/390 -> 372/374 ms, MoCo v2 + MixMask w16 b128 578/597 ->
      // 523/510 ms, and no op slower (the broadcast Multiply/Add/Sub got faster: 60 -> 35 ms).
      const wasm = await activateWasm({ threads: 1 });
      const winograd = opts.winograd ?? process.env.MIXMASK_ONEDNN_WINOGRAD !== '0';
      // bf16 only where the addon accepts it; otherwise fp32, and the report says why.
      const refused = asked === 'bf16' ? applyPrecision(addon, 'bf16') : null;
      const precision = asked === 'bf16' && refused === null ? 'bf16' : 'fp32';
      installOnednnKernels(addon, { winograd, precision });
      const info = addon.info();
      const convs = precision === 'bf16' ? `${BF16_DETAIL} (direct convolutions: oneDNN has no bf16 Winograd)` : winograd ? 'fp32, Winograd for 3×3 stride 1 (ours, F(2×2) or F(4×4), where the 2×2 tiles are no more than the channels; else oneDNN\'s F(4×4))' : 'fp32, direct convolutions only';
      const note = refused ? `; bf16 asked for (${PRECISION_ENV} or the precision option) but unavailable, fp32 instead: ${refused}` : '';
      return {
        detail: `oneDNN ${info.version} (${info.isa}), ${ompThreads} OpenMP thread${ompThreads === 1 ? '' : 's'}, ${convs}${note}; kernels: ${ONEDNN_KERNELS.join(', ')}, Identity (no copy); SGD and EMA update loops native; wasm: ${wasm.detail}`,
        threads: ompThreads,
        precision,
      };
    },
  };
}
