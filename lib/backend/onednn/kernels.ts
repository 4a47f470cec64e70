import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { FUSED_BATCH_NORM_KERNEL } from '../batchnorm-op';
import { FUSED_BATCH_NORM_GRAD_KERNEL } from '../wasm/batchnorm';
import { alloc, f32, Info } from '../wasm/wasm-ops';
import type { OnednnAddon } from './addon';
import { applyPrecision, OnednnPrecision } from './precision';

/**
 * Kernels for the `wasm` backend that run oneDNN on the tensors' memory in place (views into the
 * wasm heap, no copies): Conv2D, its two gradients, BatchMatMul, and the fused training BatchNorm(+ReLU) with
 * its gradient (contract in lib/backend/batchnorm-op.ts). Shapes oneDNN is not given (NCHW,
 * dilated convolutions, empty tensors) go to the kernels that were registered before.
 */
export const ONEDNN_KERNELS = ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter', 'BatchMatMul', FUSED_BATCH_NORM_KERNEL, FUSED_BATCH_NORM_GRAD_KERNEL] as const;

export interface OnednnKernelOptions {
  /**
   * Winograd for 3×3 stride-1 convolutions with ≥ 16 input channels (oneDNN falls back to direct
   * where it has none). Default true: measured 1.4–1.6× faster per ResNet-18 step than direct,
   * within 1e-5 of the cpu backend. fp32 only: oneDNN has no bf16 Winograd, so bf16 runs direct.
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
   * BatchNorms with fewer elements stay on the previous (JavaScript) kernel: oneDNN's
   * multi-threaded BatchNorm synchronises its threads several times per call, which costs more
   * than the work on small tensors (default 2^17 elements).
   */
  minBatchNormSize?: number;
  /**
   * 'bf16': convolutions and matmuls in bf16 with f32 outputs (./precision.ts); needs native
   * bf16 (installOnednnKernels throws where the CPU lacks it). Default 'fp32'; installing
   * without it puts the addon back to fp32.
   */
  precision?: OnednnPrecision;
}

const MIN_BN_SIZE = 1 << 17;

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

function useWinograd(info: tf.backend_util.Conv2DInfo, opts: OnednnKernelOptions): boolean {
  return opts.winograd !== false && info.filterHeight === 3 && info.filterWidth === 3 && info.strideHeight === 1 && info.strideWidth === 1 && info.inChannels >= 16;
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
    count('Conv2D', addon.conv(1, f32(backend, x), f32(backend, filter), f32(backend, y), dims(info), useWinograd(info, opts)));
    return y;
  };

  const conv2DBackpropInput = (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const { dy, filter } = args.inputs as { dy: Info; filter: Info };
    const attrs = args.attrs as unknown as ConvAttrs & { inputShape: Shape4 };
    const info = convInfo(attrs.inputShape, filter.shape as Shape4, attrs);
    if (!info) return delegate('Conv2DBackpropInput', args);
    const dx = alloc(backend, attrs.inputShape);
    count('Conv2DBackpropInput', addon.conv(2, f32(backend, dy), f32(backend, filter), f32(backend, dx), dims(info), useWinograd(info, opts)));
    return dx;
  };

  const conv2DBackpropFilter = (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const { x, dy } = args.inputs as { x: Info; dy: Info };
    const attrs = args.attrs as unknown as ConvAttrs & { filterShape: Shape4 };
    const info = convInfo(x.shape as Shape4, attrs.filterShape, attrs);
    if (!info) return delegate('Conv2DBackpropFilter', args);
    const dw = alloc(backend, attrs.filterShape);
    count('Conv2DBackpropFilter', addon.conv(3, f32(backend, x), f32(backend, dy), f32(backend, dw), dims(info), useWinograd(info, opts)));
    return dw;
  };

  const batchNorm = (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const { x, scale, offset } = args.inputs as { x: Info; scale: Info; offset: Info };
    const { varianceEpsilon, relu } = args.attrs as unknown as { varianceEpsilon: number; relu: boolean };
    const C = x.shape[x.shape.length - 1];
    const size = x.shape.reduce((a, b) => a * b, 1);
    if (size === 0 || C === 0 || size < (opts.minBatchNormSize ?? MIN_BN_SIZE)) return delegate(FUSED_BATCH_NORM_KERNEL, args);
    const y = alloc(backend, x.shape);
    const mean = alloc(backend, [C]);
    const variance = alloc(backend, [C]);
    addon.bnForward(f32(backend, x), f32(backend, scale), f32(backend, offset), f32(backend, y), f32(backend, mean), f32(backend, variance), size / C, C, varianceEpsilon, !!relu, x.shape[0]);
    count(FUSED_BATCH_NORM_KERNEL);
    return [y, mean, variance];
  };

  const batchNormGrad = (args: KernelArgs) => {
    const backend = args.backend as BackendWasm;
    const { dy, x, y, mean, variance, scale } = args.inputs as Record<string, Info>;
    const { varianceEpsilon, relu } = args.attrs as unknown as { varianceEpsilon: number; relu: boolean };
    const C = x.shape[x.shape.length - 1];
    const size = x.shape.reduce((a, b) => a * b, 1);
    if (size === 0 || C === 0 || size < (opts.minBatchNormSize ?? MIN_BN_SIZE)) return delegate(FUSED_BATCH_NORM_GRAD_KERNEL, args);
    const dx = alloc(backend, x.shape);
    const dScale = alloc(backend, [C]);
    const dOffset = alloc(backend, [C]);
    addon.bnBackward(
      f32(backend, dy),
      f32(backend, x),
      f32(backend, y),
      f32(backend, mean),
      f32(backend, variance),
      f32(backend, scale),
      f32(backend, dx),
      f32(backend, dScale),
      f32(backend, dOffset),
      size / C,
      C,
      varianceEpsilon,
      !!relu,
      x.shape[0],
    );
    count(FUSED_BATCH_NORM_GRAD_KERNEL);
    return [dx, dScale, dOffset];
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

  const identity = (args: KernelArgs) => {
    const { x } = args.inputs as { x: Info };
    if (x.dtype === 'string') return delegate('Identity', args);
    (args.backend as BackendWasm).incRef(x.dataId);
    count('Identity');
    return { dataId: x.dataId, shape: x.shape, dtype: x.dtype };
  };

  return {
    Identity: identity,
    BatchMatMul: batchMatMul,
    Conv2D: conv2D,
    Conv2DBackpropInput: conv2DBackpropInput,
    Conv2DBackpropFilter: conv2DBackpropFilter,
    [FUSED_BATCH_NORM_KERNEL]: batchNorm,
    [FUSED_BATCH_NORM_GRAD_KERNEL]: batchNormGrad,
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
  installed = { previous, addon };
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
  installed = null;
}

export function onednnKernelsInstalled(): boolean {
  return installed !== null;
}
