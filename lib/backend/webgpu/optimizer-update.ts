import * as tf from '@tensorflow/tfjs';
import {
  FUSED_ADAM_UPDATE as MIXMASK_ADAM_UPDATE, FUSED_EMA_UPDATE as MIXMASK_EMA_UPDATE, FUSED_SGD_UPDATE as MIXMASK_SGD_UPDATE,
  type AdamUpdateAttrs, type EmaUpdateAttrs, type SgdUpdateAttrs, checkAdamStep, updateOperands,
} from '../fused-update-op';
import { runMultiOutput, storageBindingLimit } from './multi-output';
import { type KernelArgs, type Uniform, type WebgpuBackendLike, addKernel } from './program';

/**
 * The multi-tensor update kernels of lib/backend/fused-update-op.ts (their contract) for webgpu.
 * tfjs runs one output per dispatch, so a per-tensor SGD update cost 2 dispatches, Adam 3 and
 * EMA 1 per parameter (128 + 64 per MoCo v2 step of a ResNet-18). Here one dispatch
 * (./multi-output.ts) updates as many tensors as the device's storage bindings allow, writing
 * all their outputs: a tensor takes 5 bindings for SGD (w, g, v in; w', v' out), 7 for Adam, 3
 * for EMA, so at 16 bindings (Mesa's llvmpipe, once ./index.ts asks for the adapter's limit
 * rather than WebGPU's default 8) 3, 2 and 5 tensors per dispatch; the list is cut into
 * consecutive chunks of that many, ceil(n / perDispatch) dispatches.
 *
 * Within a dispatch each tensor owns a run of consecutive workgroups (its element count / WG,
 * rounded up); the uniforms give each tensor's element count and the end of its run, and the
 * shader finds a workgroup's tensor by comparing its flat index with the ends (one branch per
 * tensor: WGSL cannot index bindings). The flat index spans a 2-D grid (x · y) where the
 * workgroups outnumber maxComputeWorkgroupsPerDimension (65,535: 4.2 M elements at WG 64;
 * three of ResNet-50's 3×3×512×512 kernels in one SGD dispatch are 7.1 M).
 *
 * A shader is generated per (kind, tensors in the dispatch, Nesterov); everything else
 * (sizes, rates, hyper-parameters) is uniform, so a step compiles at most two pipelines per
 * kind (full chunks and the last one).
 */
export { FUSED_SGD_UPDATE as MIXMASK_SGD_UPDATE, FUSED_ADAM_UPDATE as MIXMASK_ADAM_UPDATE, FUSED_EMA_UPDATE as MIXMASK_EMA_UPDATE } from '../fused-update-op';

const WG = 64;

/** Test hook: a lower cap than the device's maxComputeWorkgroupsPerDimension, to exercise the 2-D grid on small tensors. */
export const updateTuning = {
  maxWorkgroupsPerDimension: null as number | null,
};

/** One kind of update: its shader's per-tensor buffers, uniforms and body. */
interface UpdateKind {
  name: string;
  /** Shader names of the per-tensor inputs, in the contract's operand order. */
  inputs: string[];
  /** Shader names of the per-tensor outputs, in the contract's output order. */
  outputs: string[];
  /** Per-tensor f32 uniforms (after each tensor's `end` and `n`), suffixed with the tensor index. */
  perTensor: string[];
  /** Shared f32 uniforms. */
  shared: string[];
  /** Part of the pipeline key: whatever else the body bakes in. */
  variant: string;
  /** WGSL statements for tensor k's element i (uniforms in `u`). */
  body(k: number): string;
}

const sgdKind = (nesterov: boolean): UpdateKind => ({
  name: MIXMASK_SGD_UPDATE,
  inputs: ['w', 'g', 'v'],
  outputs: ['nw', 'nv'],
  perTensor: ['lr'],
  shared: ['mu', 'wd'],
  variant: nesterov ? 'nesterov' : 'plain',
  body: (k) => `
        let w = w${k}[i];
        let g = g${k}[i] + u.wd * w;
        let v = u.mu * v${k}[i] + g;
        nv${k}[i] = v;
        nw${k}[i] = w - u.lr${k} * ${nesterov ? '(g + u.mu * v)' : 'v'};`,
});

const adamKind: UpdateKind = {
  name: MIXMASK_ADAM_UPDATE,
  inputs: ['w', 'g', 'm', 'v'],
  outputs: ['nw', 'nm', 'nv'],
  // a = lr / (1 − β1^t)
  perTensor: ['a'],
  // ob = 1 − β (computed in float64: 1 − f32(0.999) is off by 1e-5 relative); c2 = 1 − β2^t
  shared: ['b1', 'ob1', 'b2', 'ob2', 'c2', 'eps', 'wd'],
  variant: '',
  body: (k) => `
        let w = w${k}[i];
        let g = g${k}[i] + u.wd * w;
        let m = u.b1 * m${k}[i] + u.ob1 * g;
        let v = u.b2 * v${k}[i] + u.ob2 * g * g;
        nm${k}[i] = m;
        nv${k}[i] = v;
        nw${k}[i] = w - u.a${k} * m / (sqrt(v / u.c2) + u.eps);`,
};

const emaKind: UpdateKind = {
  name: MIXMASK_EMA_UPDATE,
  inputs: ['t', 'o'],
  outputs: ['nt'],
  // s = (1 − m)·onlineScale
  perTensor: ['s'],
  shared: ['m'],
  variant: '',
  body: (k) => `
        nt${k}[i] = u.m * t${k}[i] + u.s${k} * o${k}[i];`,
};

function wgsl(kind: UpdateKind, count: number): string {
  const tensors = Array.from({ length: count }, (_, k) => k);
  const buffers = [
    ...tensors.flatMap((k) => kind.outputs.map((b) => `var<storage, read_write> ${b}${k} : array<f32>;`)),
    ...tensors.flatMap((k) => kind.inputs.map((b) => `var<storage, read> ${b}${k} : array<f32>;`)),
    'var<uniform> u : Uniforms;',
  ];
  const fields = [
    ...tensors.flatMap((k) => [`end${k} : i32,`, `n${k} : i32,`, ...kind.perTensor.map((f) => `${f}${k} : f32,`)]),
    ...kind.shared.map((f) => `${f} : f32,`),
  ];
  const branches = tensors.map((k) => `if (wg < u.end${k}) {
      let i = (wg - ${k === 0 ? '0' : `u.end${k - 1}`}) * ${WG} + i32(lid);
      if (i < u.n${k}) {${kind.body(k)}
      }
    }`);
  return `
  struct Uniforms { ${fields.join(' ')} }
  ${buffers.map((b, j) => `@group(0) @binding(${j}) ${b}`).join('\n  ')}
  @compute @workgroup_size(${WG})
  fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
    // Flat workgroup index over the 2-D grid (y > 1 only beyond maxComputeWorkgroupsPerDimension).
    let wg = i32(wid.y * nwg.x + wid.x);
    ${branches.join(' else ')}
  }`;
}

/** How many tensors of `kind` one dispatch may update on this device. */
function tensorsPerDispatch(backend: tf.KernelBackend, kind: { inputs: string[]; outputs: string[] }): number {
  const limit = storageBindingLimit(backend);
  const per = kind.inputs.length + kind.outputs.length;
  const count = Math.floor(limit / per);
  if (count < 1) throw new Error(`fused update: a tensor needs ${per} storage bindings, the device allows ${limit}`);
  return count;
}

/**
 * Runs `kind` over `list` (each tensor's inputs in kind.inputs order, its per-tensor uniforms),
 * `perDispatch` tensors per dispatch; returns every tensor's outputs, in list order.
 */
function runUpdates(
  backend: WebgpuBackendLike, kind: UpdateKind, list: Array<{ inputs: tf.TensorInfo[]; perTensor: number[] }>, shared: number[],
): tf.TensorInfo[] {
  const perDispatch = tensorsPerDispatch(backend, kind);
  const cap = updateTuning.maxWorkgroupsPerDimension ?? backend.device.limits.maxComputeWorkgroupsPerDimension;
  const results: tf.TensorInfo[] = [];
  for (let start = 0; start < list.length; start += perDispatch) {
    const chunk = list.slice(start, start + perDispatch);
    const uniforms: Uniform[] = [];
    let end = 0;
    for (const t of chunk) {
      const n = tf.util.sizeFromShape(t.inputs[0].shape);
      end += Math.ceil(n / WG);
      uniforms.push({ type: 'int32', data: [end] }, { type: 'int32', data: [n] }, ...t.perTensor.map((x) => ({ type: 'float32' as const, data: [x] })));
    }
    uniforms.push(...shared.map((x) => ({ type: 'float32' as const, data: [x] })));
    const x = Math.min(end, cap);
    const y = Math.ceil(end / x);
    if (y > cap) throw new Error(`${kind.name}: ${end} workgroups exceed a ${cap} × ${cap} grid`);
    const outputs = runMultiOutput(backend, {
      name: kind.name,
      key: `mixmaskUpdate_${kind.name}_${kind.variant}_${chunk.length}_wg${WG}`,
      wgsl: () => wgsl(kind, chunk.length),
      outputs: chunk.flatMap((t) => kind.outputs.map(() => ({ shape: t.inputs[0].shape, dtype: 'float32' as const }))),
      inputs: chunk.flatMap((t) => t.inputs),
      uniforms,
      dispatch: [x, y, 1],
    });
    results.push(...outputs);
  }
  return results;
}

function sgdUpdate(args: KernelArgs): tf.TensorInfo[] {
  const a = args.attrs as unknown as SgdUpdateAttrs;
  const list = updateOperands(MIXMASK_SGD_UPDATE, args.inputs, { lr: a.lr });
  return runUpdates(args.backend as WebgpuBackendLike, sgdKind(a.nesterov ?? false), list.map((o, k) => ({ inputs: [o.w, o.g, o.v], perTensor: [a.lr[k]] })), [a.momentum, a.weightDecay]);
}

function adamUpdate(args: KernelArgs): tf.TensorInfo[] {
  const a = args.attrs as unknown as AdamUpdateAttrs;
  const list = updateOperands(MIXMASK_ADAM_UPDATE, args.inputs, { lr: a.lr });
  checkAdamStep(a.step);
  const c1 = 1 - a.beta1 ** a.step;
  const c2 = 1 - a.beta2 ** a.step;
  return runUpdates(
    args.backend as WebgpuBackendLike, adamKind,
    list.map((o, k) => ({ inputs: [o.w, o.g, o.m, o.v], perTensor: [a.lr[k] / c1] })),
    [a.beta1, 1 - a.beta1, a.beta2, 1 - a.beta2, c2, a.eps, a.weightDecay],
  );
}

function emaUpdate(args: KernelArgs): tf.TensorInfo[] {
  const a = args.attrs as unknown as EmaUpdateAttrs;
  const list = updateOperands(MIXMASK_EMA_UPDATE, args.inputs, a.onlineScale === undefined ? {} : { onlineScale: a.onlineScale });
  return runUpdates(
    args.backend as WebgpuBackendLike, emaKind,
    list.map((o, k) => ({ inputs: [o.target, o.online], perTensor: [(1 - a.momentum) * (a.onlineScale?.[k] ?? 1)] })),
    [a.momentum],
  );
}

/** Tensors per dispatch of each update kernel on the active webgpu backend (for tests and reports). */
export function updateTensorsPerDispatch(backend: tf.KernelBackend): Record<string, number> {
  return Object.fromEntries([sgdKind(false), adamKind, emaKind].map((k) => [k.name, tensorsPerDispatch(backend, k)]));
}

let installed = false;

/** Registers the three update kernels for webgpu. Idempotent. */
export function installOptimizerUpdates(): void {
  if (installed) return;
  addKernel(MIXMASK_SGD_UPDATE, sgdUpdate);
  addKernel(MIXMASK_ADAM_UPDATE, adamUpdate);
  addKernel(MIXMASK_EMA_UPDATE, emaUpdate);
  installed = true;
}
