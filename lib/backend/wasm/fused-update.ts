import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  FUSED_ADAM_UPDATE, FUSED_EMA_UPDATE, FUSED_SGD_UPDATE, type AdamUpdateAttrs, type EmaUpdateAttrs, type SgdUpdateAttrs, checkAdamStep, updateOperands,
} from '../fused-update-op';
import { simdUpdateLoops, type UpdateLoops } from './update-simd';
import { alloc, f32, Info } from './wasm-ops';

/**
 * The multi-tensor parameter updates of lib/backend/fused-update-op.ts (their contract) for the
 * wasm backend, and so for wasm+onednn: one kernel call per step for the whole list, one pass
 * over the wasm heap per tensor, writing new output tensors, where the tfjs ops make 3–10
 * passes and as many intermediate tensors. The pass is the
 * WebAssembly SIMD loop of update-simd.ts (float32 arithmetic) where it instantiates, else, and
 * for the last 0–3 elements, a JavaScript loop over Float32Array views (float64 arithmetic,
 * rounded once per stored value).
 */

type Args = { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap };

/**
 * Native loops over Float32Array views of the heap (the same float32 formulas, over several
 * threads): wasm+onednn's addon installs them (setNativeUpdateLoops) for SGD and the EMA; Adam
 * keeps the SIMD loop.
 */
export interface NativeUpdateLoops {
  sgd(w: Float32Array, g: Float32Array, v: Float32Array, w2: Float32Array, v2: Float32Array, lr: number, momentum: number, weightDecay: number, nesterov: boolean): void;
  ema(target: Float32Array, online: Float32Array, out: Float32Array, m: number, k: number): void;
}

let nativeLoops: NativeUpdateLoops | null = null;

/** Installed by wasm+onednn (null: none). */
export function setNativeUpdateLoops(loops: NativeUpdateLoops | null): void {
  nativeLoops = loops;
}

type LoopKind = 'fastest' | 'simd' | 'js';
let loopKind: LoopKind = 'fastest';

/**
 * Which loops the kernels run: 'fastest' (default: the native ones where installed, else SIMD
 * where it instantiates, else JavaScript), 'simd' or 'js' (for comparisons).
 */
export function setWasmUpdateLoops(kind: LoopKind): void {
  if (kind !== 'fastest' && kind !== 'simd' && kind !== 'js') throw new Error(`setWasmUpdateLoops: kind must be 'fastest', 'simd' or 'js', got ${JSON.stringify(kind)}`);
  loopKind = kind;
}

/** The native loops where installed and asked for, else null. */
function nativeFor(): NativeUpdateLoops | null {
  return loopKind === 'fastest' ? nativeLoops : null;
}

/** The SIMD loops on this backend's memory, or null (JavaScript loops). */
function simdFor(backend: BackendWasm): UpdateLoops | null {
  if (loopKind === 'js') return null;
  const memory = (backend.wasm as unknown as { wasmMemory?: WebAssembly.Memory }).wasmMemory;
  return memory ? simdUpdateLoops(memory) : null;
}

/** Byte offset of a tensor on the heap. */
function at(backend: BackendWasm, t: Info): number {
  return backend.getMemoryOffset(t.dataId);
}

/** One tensor's SGD update (the list's kernel loops over it). */
function sgdOne(backend: BackendWasm, w: Info, g: Info, v: Info, lr: number, mu: number, wd: number, nesterov: boolean): Info[] {
  const wOut = alloc(backend, w.shape);
  const vOut = alloc(backend, w.shape);
  // Views after the allocations: a heap growth would detach earlier ones.
  const ws = f32(backend, w), gs = f32(backend, g), vs = f32(backend, v);
  const w2 = f32(backend, wOut), v2 = f32(backend, vOut);
  const native = nativeFor();
  if (native) {
    native.sgd(ws, gs, vs, w2, v2, lr, mu, wd, nesterov);
    return [wOut, vOut];
  }
  const n = ws.length;
  const simd = simdFor(backend);
  const start = simd ? n & ~3 : 0;
  if (simd) (nesterov ? simd.sgdNesterov : simd.sgd)(at(backend, w), at(backend, g), at(backend, v), at(backend, wOut), at(backend, vOut), 4 * start, lr, mu, wd);
  if (nesterov) {
    for (let i = start; i < n; i++) {
      const wi = ws[i];
      const gi = gs[i] + wd * wi;
      const vi = mu * vs[i] + gi;
      v2[i] = vi;
      w2[i] = wi - lr * (gi + mu * vi);
    }
  } else {
    for (let i = start; i < n; i++) {
      const wi = ws[i];
      const vi = mu * vs[i] + (gs[i] + wd * wi);
      v2[i] = vi;
      w2[i] = wi - lr * vi;
    }
  }
  return [wOut, vOut];
}

function sgdUpdate(args: Args): Info[] {
  const backend = args.backend as BackendWasm;
  const a = args.attrs as unknown as SgdUpdateAttrs;
  const list = updateOperands(FUSED_SGD_UPDATE, args.inputs, { lr: a.lr });
  return list.flatMap((o, k) => sgdOne(backend, o.w, o.g, o.v, a.lr[k], a.momentum, a.weightDecay, a.nesterov ?? false));
}

/** One tensor's Adam update; `step` = lr / (1 − β1^t), c2 = 1 − β2^t. */
function adamOne(backend: BackendWasm, o: Record<string, Info>, a: AdamUpdateAttrs, step: number, c2: number): Info[] {
  const { w, g, m, v } = o;
  const wOut = alloc(backend, w.shape);
  const mOut = alloc(backend, w.shape);
  const vOut = alloc(backend, w.shape);
  const ws = f32(backend, w), gs = f32(backend, g), ms = f32(backend, m), vs = f32(backend, v);
  const w2 = f32(backend, wOut), m2 = f32(backend, mOut), v2 = f32(backend, vOut);
  const { beta1: b1, beta2: b2, eps, weightDecay: wd } = a;
  const n = ws.length;
  const simd = simdFor(backend);
  const start = simd ? n & ~3 : 0;
  if (simd) {
    const p = (t: Info) => at(backend, t);
    simd.adam(p(w), p(g), p(m), p(v), p(wOut), p(mOut), p(vOut), 4 * start, step, b1, 1 - b1, b2, 1 - b2, 1 / c2, eps, wd);
  }
  for (let i = start; i < n; i++) {
    const wi = ws[i];
    const gi = gs[i] + wd * wi;
    // Rounded to float32 as stored, so that the weight update uses the moments the slots keep.
    const mi = Math.fround(b1 * ms[i] + (1 - b1) * gi);
    const vi = Math.fround(b2 * vs[i] + (1 - b2) * gi * gi);
    m2[i] = mi;
    v2[i] = vi;
    w2[i] = wi - (step * mi) / (Math.sqrt(vi / c2) + eps);
  }
  return [wOut, mOut, vOut];
}

function adamUpdate(args: Args): Info[] {
  const backend = args.backend as BackendWasm;
  const a = args.attrs as unknown as AdamUpdateAttrs;
  const list = updateOperands(FUSED_ADAM_UPDATE, args.inputs, { lr: a.lr });
  checkAdamStep(a.step);
  const c1 = 1 - a.beta1 ** a.step;
  const c2 = 1 - a.beta2 ** a.step;
  return list.flatMap((o, k) => adamOne(backend, o, a, a.lr[k] / c1, c2));
}

/** One tensor's EMA: out = mu·target + k·online. */
function emaOne(backend: BackendWasm, target: Info, online: Info, mu: number, k: number): Info {
  const out = alloc(backend, target.shape);
  const ts = f32(backend, target), os = f32(backend, online), t2 = f32(backend, out);
  const native = nativeFor();
  if (native) {
    native.ema(ts, os, t2, mu, k);
    return out;
  }
  const n = ts.length;
  const simd = simdFor(backend);
  const start = simd ? n & ~3 : 0;
  if (simd) simd.ema(at(backend, target), at(backend, online), at(backend, out), 4 * start, mu, k);
  for (let i = start; i < n; i++) t2[i] = mu * ts[i] + k * os[i];
  return out;
}

function emaUpdate(args: Args): Info[] {
  const backend = args.backend as BackendWasm;
  const a = args.attrs as unknown as EmaUpdateAttrs;
  const list = updateOperands(FUSED_EMA_UPDATE, args.inputs, a.onlineScale === undefined ? {} : { onlineScale: a.onlineScale });
  return list.map((o, k) => emaOne(backend, o.target, o.online, a.momentum, (1 - a.momentum) * (a.onlineScale?.[k] ?? 1)));
}

const KERNELS: Array<[string, (args: Args) => Info[]]> = [
  [FUSED_SGD_UPDATE, sgdUpdate],
  [FUSED_ADAM_UPDATE, adamUpdate],
  [FUSED_EMA_UPDATE, emaUpdate],
];

/** The kernel names, for the backend report. */
export const FUSED_UPDATE_KERNELS = KERNELS.map(([name]) => name);

/**
 * Registers (true) or removes (false) the three update kernels for 'wasm'. Without them lib/optim
 * and BatchNorm's running statistics fall back to their tfjs ops (the bench's "before").
 */
export function setWasmFusedUpdates(on: boolean): void {
  for (const [kernelName, kernelFunc] of KERNELS) {
    const present = tf.getKernel(kernelName, 'wasm') !== undefined;
    if (on && !present) tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
    if (!on && present) tf.unregisterKernel(kernelName, 'wasm');
  }
}
