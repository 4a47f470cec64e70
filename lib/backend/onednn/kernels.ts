import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import {
  type BatchNormKernelAttrs,
  batchNormStatsShape,
  checkBatchNormGroups,
  checkBatchNormResidual,
  checkBatchNormStats,
  declareGroupedBatchNorm,
  declareResidualBatchNorm,
  FUSED_BATCH_NORM_KERNEL,
} from '../batchnorm-op';
import { CONV_BN_EVAL_KERNEL, checkConvBnEval, type ConvBnEvalAttrs } from '../conv-bn-op';
import { FUSED_BATCH_NORM_GRAD_KERNEL } from '../wasm/batchnorm';
import { setNativeUpdateLoops } from '../wasm/fused-update';
import { alloc, f32, Info } from '../wasm/wasm-ops';
import { CONV_ALGORITHM, type ConvAlgorithmCode, type OnednnAddon } from './addon';
import { applyPrecision, OnednnPrecision } from './precision';

/**
 * Kernels for the `wasm` backend that run oneDNN on the tensors' memory in place (views into the
 * wasm heap, no copies): Conv2D, FusedConv2D (bias + ReLU), its two gradients, BatchMatMul, same-shape Add, the fused training
 * BatchNorm(+residual, +ReLU) with its gradient (contract in lib/backend/batchnorm-op.ts), and the evaluation-mode
 * conv + BatchNorm (+residual, +ReLU) of lib/backend/conv-bn-op.ts. Shapes oneDNN is not given (NCHW,
 * dilated convolutions, empty tensors) go to the kernels that were registered before.
 */
export const ONEDNN_KERNELS = ['Conv2D', 'FusedConv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'BatchMatMul', 'Add', FUSED_BATCH_NORM_KERNEL, FUSED_BATCH_NORM_GRAD_KERNEL, CONV_BN_EVAL_KERNEL] as const;

export interface OnednnKernelOptions {
  /**
   * Winograd for 3×3 stride-1 convolutions with ≥ 32 input and output channels (oneDNN falls back
   * to direct where it has none). Default true: measured 1.4–1.6× faster per ResNet-18 step than
   * direct, within 1e-5 of the cpu backend. fp32 only: oneDNN has no bf16 Winograd, so bf16 runs
   * direct. Which layers, and which of oneDNN's F(4×4, 3×3) and our F(2×2, 3×3) / F(4×4, 3×3): `convAlgorithm`.
   */
  winograd?: boolean;
  /** Also take over the fused BatchNorm and its gradient (default true). */
  batchNorm?: boolean;
  /**
   * Identity without a copy (a new reference to the same memory, as the cpu backend does): the
   * stock wasm Identity copies, ~540 calls and ~30 ms per ResNet-18 step (default true).
   */
  identityNoCopy?: boolean;
  /**
   * 'bf16': convolutions and matmuls in bf16 with f32 outputs (./precision.ts); needs native
   * bf16 (installOnednnKernels throws where the CPU lacks it). Default 'fp32'; installing
   * without it puts the addon back to fp32.
   */
  precision?: OnednnPrecision;
}

type KernelArgs = { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap };
type Shape4 = [number, number, number, number];

interface ConvAttrs {
  strides: number | [number, number];
  pad: unknown;
  dataFormat?: string;
  dilations?: number | [number, number];
  dimRoundingMode?: unknown;
}

function convInfo(xShape: Shape4, filterShape: Shape4, attrs: ConvAttrs): tf.backend_util.Conv2DInfo | null {
  if (attrs.dataFormat !== undefined && attrs.dataFormat !== 'NHWC') return null;
  const d = attrs.dilations ?? 1;
  if (!(d === 1 || (Array.isArray(d) && d[0] === 1 && d[1] === 1))) return null;
  const info = tf.backend_util.computeConv2DInfo(xShape, filterShape, attrs.strides, 1, attrs.pad as 'same', attrs.dimRoundingMode as 'floor' | undefined);
  const p = info.padInfo;
  if ([p.top, p.bottom, p.left, p.right].some((v) => v < 0)) return null;
  if (info.outShape.some((v) => v <= 0) || xShape.some((v) => v <= 0) || filterShape.some((v) => v <= 0)) return null;
  // oneDNN's own size rule must give the same output (floor division).
  if (Math.floor((info.inHeight + p.top + p.bottom - info.filterHeight) / info.strideHeight) + 1 !== info.outHeight) return null;
  if (Math.floor((info.inWidth + p.left + p.right - info.filterWidth) / info.strideWidth) + 1 !== info.outWidth) return null;
  return info;
}

function dims(info: tf.backend_util.Conv2DInfo): number[] {
  const p = info.padInfo;
  return [
    info.batchSize,
    info.inHeight,
    info.inWidth,
    info.inChannels,
    info.outChannels,
    info.filterHeight,
    info.filterWidth,
    info.outHeight,
    info.outWidth,
    info.strideHeight,
    info.strideWidth,
    p.top,
    p.bottom,
    p.left,
    p.right,
  ];
}

/**
 * Direct or Winograd, and whose, per layer, by a fixed rule (the same algorithm for a layer in
 * every run, so a resumed run computes what the uninterrupted one would). Measured per layer with
 * `node dist/bench/onednn-winograd.js` and in whole steps (Xeon, avx512_core_amx, 2 threads;
 * docs/performance.md):
 * - Winograd for 3×3 stride 1 with ≥ 32 input and output channels: at 16 channels oneDNN's
 *   Winograd is ~2× slower than direct (0.43–0.67 at 384×32×32×16), at 32 about even (0.91–1.20),
 *   from 64 on faster (1.3–2.6).
 * - Ours where the layer has no more 2×2 output tiles than channels (N·⌈OH/2⌉·⌈OW/2⌉ ≤
 *   min(Ci, Co)): there the transformed weights, not the activations, are the traffic; oneDNN
 *   rebuilds them on every call and runs its products at half the matmul rate. F(2×2) up to half
 *   that many tiles: ResNet-18's 4×4×512 layers at batch 32 (128 tiles) took 9.9–10.5 ms per
 *   direction in a step with oneDNN's F(4×4), 4.9–6.6 with ours. F(4×4) above: the same layers at
 *   batch 128 (512 tiles) took 175–185 ms per step (three layers, three directions) with oneDNN's
 *   or our F(2×2), 148–151 with our F(4×4). With more tiles oneDNN's F(4×4) wins (8×8×256 at
 *   batch 32, 512 tiles: 42 ms per step against 42–46 with ours; 14 against 16 ms alone at
 *   batch 128).
 * - Unequal pads (explicit ones only) never go to oneDNN's F(4×4): see below.
 * bf16 runs direct whatever this says (no Winograd here has a bf16 form).
 */
export function convAlgorithm(info: tf.backend_util.Conv2DInfo, opts: OnednnKernelOptions): ConvAlgorithmCode {
  const square3 = info.filterHeight === 3 && info.filterWidth === 3 && info.strideHeight === 1 && info.strideWidth === 1;
  if (opts.winograd === false || !square3 || info.inChannels < 32 || info.outChannels < 32) return CONV_ALGORITHM.direct;
  const tiles = info.batchSize * Math.ceil(info.outHeight / 2) * Math.ceil(info.outWidth / 2);
  const channels = Math.min(info.inChannels, info.outChannels);
  if (2 * tiles <= channels) return CONV_ALGORITHM.oursF2x2;
  if (tiles <= channels) return CONV_ALGORITHM.oursF4x4;
  // oneDNN 2.6's F(4×4) backward data is wrong where a dimension's two pads differ (0/1: relative
  // error 1.4 against direct, measured; forward and backward weights agree). tfjs's 'same' at
  // stride 1 pads 1/1, so only explicit pads get here: they run direct.
  const p = info.padInfo;
  return p.top === p.bottom && p.left === p.right ? CONV_ALGORITHM.onednnF4x4 : CONV_ALGORITHM.direct;
}

export interface KernelStats {
  calls: Record<string, number>;
  delegated: Record<string, number>;
  /** oneDNN implementation names seen per kernel (e.g. "brg:avx512_core"). */
  impls: Record<string, string[]>;
}

export function makeKernels(addon: OnednnAddon, previous: Map<string, tf.KernelConfig | undefined>, opts: OnednnKernelOptions, stats: KernelStats) {
  const count = (name: string, impl?: string) => {
    stats.calls[name] = (stats.calls[name] ?? 0) + 1;
    if (impl) {
      const list = (stats.impls[name] ??= []);
      if (!list.includes(impl)) list.push(impl);
    }
  };
  const delegate = (name: string, args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] => {
    stats.delegated[name] = (stats.delegated[name] ?? 0) + 1;
    const k = previous.get(name);
    if (!k) throw new Error(`wasm+onednn: ${name} is not supported for these attributes and no previous wasm kernel exists`);
    return k.kernelFunc(args as unknown as Parameters<tf.KernelFunc>[0]);
  };

  const conv2D = (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const { x, filter } = args.inputs as { x: Info; filter: Info };
    const info = convInfo(x.shape as Shape4, filter.shape as Shape4, args.attrs as unknown as ConvAttrs);
    if (!info) return delegate('Conv2D', args);
    const y = alloc(backend, info.outShape);
    count('Conv2D', addon.conv(1, f32(backend, x), f32(backend, filter), f32(backend, y), dims(info), convAlgorithm(info, opts)));
    return y;
  };

  // tfjs's FusedConv2D (tf.fused.conv2d: the evaluation-mode conv + BatchNorm of lib/models):
  // bias of Co values and a linear or ReLU activation in one oneDNN primitive; other activations,
  // biases that broadcast otherwise and PReLU weights go to the previous kernel.
  const fusedConv2D = (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const { x, filter, bias, preluActivationWeights } = args.inputs as { x: Info; filter: Info; bias?: Info; preluActivationWeights?: Info };
    const attrs = args.attrs as unknown as ConvAttrs & { activation?: string };
    const info = convInfo(x.shape as Shape4, filter.shape as Shape4, attrs);
    const activation = attrs.activation ?? 'linear';
    const plainBias = !bias || (bias.dtype === 'float32' && bias.shape.length === 1 && bias.shape[0] === info?.outChannels);
    if (!info || preluActivationWeights || !plainBias || (activation !== 'linear' && activation !== 'relu')) return delegate('FusedConv2D', args);
    const y = alloc(backend, info.outShape);
    const b = bias ? f32(backend, bias) : null;
    count('FusedConv2D', addon.conv(1, f32(backend, x), f32(backend, filter), f32(backend, y), dims(info), convAlgorithm(info, opts), b, activation === 'relu'));
    return y;
  };

  // The evaluation-mode layer (lib/backend/conv-bn-op.ts): BatchNorm folded into the filter, the
  // convolution, the residual (a sum post-op) and the ReLU in one native call. convBnEval sends
  // empty tensors to the composite; other shapes the contract allows, oneDNN takes.
  const convBnEval = (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const inputs = args.inputs as unknown as { x: Info; filter: Info; scale: Info; offset: Info; mean: Info; variance: Info; residual?: Info };
    const a = args.attrs as unknown as ConvBnEvalAttrs;
    const where = `${CONV_BN_EVAL_KERNEL} on wasm+onednn`;
    checkConvBnEval(where, inputs, a);
    const info = convInfo(inputs.x.shape as Shape4, inputs.filter.shape as Shape4, { strides: a.strides, pad: a.pad });
    if (!info) throw new Error(`${where}: oneDNN does not take x [${inputs.x.shape}] with filter [${inputs.filter.shape}], strides ${a.strides}, pad ${a.pad}`);
    const y = alloc(backend, info.outShape);
    const [xs, ws, sc, of, ms, vs] = [inputs.x, inputs.filter, inputs.scale, inputs.offset, inputs.mean, inputs.variance].map((t) => f32(backend, t));
    const rs = inputs.residual ? f32(backend, inputs.residual) : null;
    count(CONV_BN_EVAL_KERNEL, addon.convBn(xs, ws, sc, of, ms, vs, a.varianceEpsilon, rs, f32(backend, y), dims(info), convAlgorithm(info, opts), !!a.relu));
    return y;
  };

  const conv2DBackpropInput = (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const { dy, filter } = args.inputs as { dy: Info; filter: Info };
    const attrs = args.attrs as unknown as ConvAttrs & { inputShape: Shape4 };
    const info = convInfo(attrs.inputShape, filter.shape as Shape4, attrs);
    if (!info) return delegate('Conv2DBackpropInput', args);
    const dx = alloc(backend, attrs.inputShape);
    count('Conv2DBackpropInput', addon.conv(2, f32(backend, dy), f32(backend, filter), f32(backend, dx), dims(info), convAlgorithm(info, opts)));
    return dx;
  };

  const conv2DBackpropFilter = (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const { x, dy } = args.inputs as { x: Info; dy: Info };
    const attrs = args.attrs as unknown as ConvAttrs & { filterShape: Shape4 };
    const info = convInfo(x.shape as Shape4, attrs.filterShape, attrs);
    if (!info) return delegate('Conv2DBackpropFilter', args);
    const dw = alloc(backend, attrs.filterShape);
    count('Conv2DBackpropFilter', addon.conv(3, f32(backend, x), f32(backend, dy), f32(backend, dw), dims(info), convAlgorithm(info, opts)));
    return dw;
  };

  // Groups (contiguous parts of the batch) run one after another on views of the same memory;
  // the residual is an input of the forward and dResidual an output of the gradient (contract in
  // lib/backend/batchnorm-op.ts). Parts below 2^17 elements run on one thread (native/onednn:
  // splitting them costs more in synchronisation than the work).
  const batchNorm = (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const { x, scale, offset, residual } = args.inputs as { x: Info; scale: Info; offset: Info; residual?: Info };
    const a = args.attrs as unknown as BatchNormKernelAttrs;
    const groups = checkBatchNormGroups(`${FUSED_BATCH_NORM_KERNEL} on wasm+onednn`, x.shape, a.groups);
    checkBatchNormResidual(`${FUSED_BATCH_NORM_KERNEL} on wasm+onednn`, x, residual, a.residual);
    const C = x.shape[x.shape.length - 1];
    const size = x.shape.reduce((p, q) => p * q, 1) / groups;
    if (size === 0 || C === 0) return delegate(FUSED_BATCH_NORM_KERNEL, args);
    const y = alloc(backend, x.shape);
    const mean = alloc(backend, batchNormStatsShape(groups, C));
    const variance = alloc(backend, batchNormStatsShape(groups, C));
    const [xs, ys, ms, vs] = [x, y, mean, variance].map((t) => f32(backend, t));
    const rs = residual ? f32(backend, residual) : undefined;
    const sc = f32(backend, scale);
    const of = f32(backend, offset);
    for (let g = 0; g < groups; g++) {
      const part = (arr: Float32Array, n: number) => arr.subarray(g * n, (g + 1) * n);
      addon.bnForward(part(xs, size), sc, of, part(ys, size), part(ms, C), part(vs, C), size / C, C, a.varianceEpsilon, !!a.relu, rs && part(rs, size));
    }
    count(FUSED_BATCH_NORM_KERNEL);
    return [y, mean, variance];
  };

  const batchNormGrad = (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const { dy, x, y, mean, variance, scale, offset } = args.inputs as { dy: Info; x: Info; y: Info; mean: Info; variance: Info; scale: Info; offset?: Info };
    const a = args.attrs as unknown as BatchNormKernelAttrs;
    const groups = checkBatchNormGroups(`${FUSED_BATCH_NORM_GRAD_KERNEL} on wasm+onednn`, x.shape, a.groups);
    const C = x.shape[x.shape.length - 1];
    checkBatchNormStats(`${FUSED_BATCH_NORM_GRAD_KERNEL} on wasm+onednn`, { mean, variance }, groups, C);
    const size = x.shape.reduce((p, q) => p * q, 1) / groups;
    if (size === 0 || C === 0) return delegate(FUSED_BATCH_NORM_GRAD_KERNEL, args);
    const dx = alloc(backend, x.shape);
    const dScale = alloc(backend, [C]);
    const dOffset = alloc(backend, [C]);
    const dResidual = a.residual ? alloc(backend, x.shape) : null;
    const [dys, xs, ys, ms, vs, sc, dxs] = [dy, x, y, mean, variance, scale, dx].map((t) => f32(backend, t));
    const drs = dResidual ? f32(backend, dResidual) : undefined;
    // With the forward's offset (and no residual) the addon recomputes the ReLU mask from x, as
    // our bnForward computed y, instead of reading y.
    const of = offset ? f32(backend, offset) : undefined;
    // dScale and dOffset add up over the groups: each group's into its own row, summed in float64.
    const partScale = groups === 1 ? f32(backend, dScale) : new Float32Array(groups * C);
    const partOffset = groups === 1 ? f32(backend, dOffset) : new Float32Array(groups * C);
    for (let g = 0; g < groups; g++) {
      const part = (arr: Float32Array, n: number) => arr.subarray(g * n, (g + 1) * n);
      addon.bnBackward(
        part(dys, size),
        part(xs, size),
        part(ys, size),
        part(ms, C),
        part(vs, C),
        sc,
        part(dxs, size),
        part(partScale, C),
        part(partOffset, C),
        size / C,
        C,
        a.varianceEpsilon,
        !!a.relu,
        drs && part(drs, size),
        of,
      );
    }
    if (groups > 1) {
      f32(backend, dScale).set(sumRows(partScale, groups, C));
      f32(backend, dOffset).set(sumRows(partOffset, groups, C));
    }
    count(FUSED_BATCH_NORM_GRAD_KERNEL);
    return dResidual ? [dx, dScale, dOffset, dResidual] : [dx, dScale, dOffset];
  };

  // tf.matMul hands BatchMatMul its operands as they are (rank ≥ 2, transposes as attributes);
  // equal leading (batch) dimensions run on oneDNN, broadcast batches and non-float32 operands
  // go to the previous kernel.
  const batchMatMul = (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const { a, b } = args.inputs as { a: Info; b: Info };
    const { transposeA, transposeB } = args.attrs as unknown as { transposeA: boolean; transposeB: boolean };
    const ra = a.shape.length;
    const rb = b.shape.length;
    if (ra < 2 || rb < 2 || a.dtype !== 'float32' || b.dtype !== 'float32') return delegate('BatchMatMul', args);
    const lead = a.shape.slice(0, -2);
    const leadB = b.shape.slice(0, -2);
    if (lead.length !== leadB.length || lead.some((v, i) => v !== leadB[i])) return delegate('BatchMatMul', args);
    const B = lead.reduce((x, y) => x * y, 1);
    const [a1, a2] = a.shape.slice(-2);
    const [b1, b2] = b.shape.slice(-2);
    const [M, K] = transposeA ? [a2, a1] : [a1, a2];
    const [K2, N] = transposeB ? [b2, b1] : [b1, b2];
    if (K !== K2 || B * M * N * K === 0) return delegate('BatchMatMul', args);
    const out = alloc(backend, [...lead, M, N]);
    count('BatchMatMul', addon.matmul(f32(backend, a), f32(backend, b), f32(backend, out), [B, M, K, N, transposeA ? 1 : 0, transposeB ? 1 : 0]));
    return out;
  };

  // Same-shape float32 sums (the gradients meeting at a ResNet's skip connections) in one native
  // pass; broadcasting and other dtypes go to the previous kernel.
  const add = (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const { a, b } = args.inputs as { a: Info; b: Info };
    if (a.dtype !== 'float32' || b.dtype !== 'float32' || a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) return delegate('Add', args);
    const out = alloc(backend, a.shape);
    if (out.shape.reduce((p, q) => p * q, 1) > 0) addon.add(f32(backend, a), f32(backend, b), f32(backend, out));
    count('Add');
    return out;
  };

  const identity = (args: KernelArgs) => {
    const { x } = args.inputs as { x: Info };
    if (x.dtype === 'string') return delegate('Identity', args);
    (args.backend as BackendWasm).incRef(x.dataId);
    count('Identity');
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };

  return {
    Identity: identity,
    Add: add,
    BatchMatMul: batchMatMul,
    Conv2D: conv2D,
    FusedConv2D: fusedConv2D,
    Conv2DBackpropInput: conv2DBackpropInput,
    Conv2DBackpropFilter: conv2DBackpropFilter,
    [FUSED_BATCH_NORM_KERNEL]: batchNorm,
    [FUSED_BATCH_NORM_GRAD_KERNEL]: batchNormGrad,
    [CONV_BN_EVAL_KERNEL]: convBnEval,
  } as Record<(typeof ONEDNN_KERNELS)[number] | 'Identity', (args: KernelArgs) => tf.TensorInfo | tf.TensorInfo[]>;
}

let installed: { previous: Map<string, tf.KernelConfig | undefined>; addon: OnednnAddon } | null = null;
export const kernelStats: KernelStats = { calls: {}, delegated: {}, impls: {} };

/**
 * Registers the oneDNN kernels for 'wasm', replacing (and remembering) those registered before.
 * Call after activateWasm (whose own kernels it overrides). Idempotent.
 */
export function installOnednnKernels(addon: OnednnAddon, opts: OnednnKernelOptions = {}): void {
  if (installed) uninstallOnednnKernels();
  const refused = applyPrecision(addon, opts.precision ?? 'fp32');
  if (refused) throw new Error(`wasm+onednn: precision '${opts.precision}' is not available: ${refused}`);
  const previous = new Map<string, tf.KernelConfig | undefined>();
  const names: Array<(typeof ONEDNN_KERNELS)[number] | 'Identity'> = [...ONEDNN_KERNELS];
  if (opts.identityNoCopy !== false) names.push('Identity');
  for (const name of names) previous.set(name, tf.getKernel(name, 'wasm'));
  const kernels = makeKernels(addon, previous, opts, kernelStats);
  for (const name of names) {
    if (opts.batchNorm === false && (name === FUSED_BATCH_NORM_KERNEL || name === FUSED_BATCH_NORM_GRAD_KERNEL)) continue;
    if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
    tf.registerKernel({ kernelName: name, backendName: 'wasm', kernelFunc: kernels[name] as unknown as tf.KernelFunc });
  }
  if (opts.batchNorm !== false) {
    const declaredKernels = { forward: kernels[FUSED_BATCH_NORM_KERNEL] as unknown as tf.KernelFunc, grad: kernels[FUSED_BATCH_NORM_GRAD_KERNEL] as unknown as tf.KernelFunc };
    declareGroupedBatchNorm('wasm', declaredKernels);
    declareResidualBatchNorm('wasm', declaredKernels);
  }
  // The fused SGD and EMA updates (wasm's kernels) run their loops natively, over the OpenMP threads.
  setNativeUpdateLoops(addon);
  installed = { previous, addon };
}

/** Row sums of a [rows, C] Float32Array, in float64, rounded once. */
function sumRows(a: Float32Array, rows: number, C: number): Float32Array {
  const sum = new Float64Array(C);
  for (let r = 0; r < rows; r++) for (let c = 0; c < C; c++) sum[c] += a[r * C + c];
  return Float32Array.from(sum);
}

/** Puts back the kernels that were registered before installOnednnKernels (tests compare both). */
export function uninstallOnednnKernels(): void {
  if (!installed) return;
  for (const [name, config] of installed.previous) {
    if (tf.getKernel(name, 'wasm')) tf.unregisterKernel(name, 'wasm');
    if (config) tf.registerKernel(config);
  }
  // The precision lives in the addon; without our kernels nothing should find it in bf16.
  applyPrecision(installed.addon, 'fp32');
  setNativeUpdateLoops(null);
  installed = null;
}

export function onednnKernelsInstalled(): boolean {
  return installed !== null;
}
