import * as tf from '@tensorflow/tfjs';
import { installAugmentView } from './augment';
import { installFusedBatchNorm } from './batchnorm';
import { installConv2DBackpropFilter } from './conv2d-backprop-filter';
import { installConv2DBackpropInput } from './conv2d-backprop-input';
import { installOptimizerUpdates, MIXMASK_ADAM_UPDATE, MIXMASK_EMA_UPDATE, MIXMASK_SGD_UPDATE } from './optimizer-update';
import { replaceKernel } from './program';
import { BATCH_NORM_RUNNING_STATS_KERNEL, FUSED_BATCH_NORM_GRAD_KERNEL, FUSED_BATCH_NORM_KERNEL } from '../batchnorm-op';
import { AUGMENT_VIEW_KERNEL } from '../augment-op';

/**
 * Kernels we register for tfjs-backend-webgpu 4.22 where its own fail on our shapes.
 *
 * Transpose: a 2-D [1, 0] transpose runs a tiled program with one 16×16 workgroup per tile in
 * x and y, and the backend can only fold an oversized dispatch when it is flat. A side longer
 * than 16 × 65,535 (maxComputeWorkgroupsPerDimension) then throws "Dispatch size exceeds WebGPU
 * limits in Y or Z dimension" — e.g. [N·H·W, 3] pixel rows in the augmentations at batch 256
 * and 64×64. Such transposes go through the general N-D program instead (as [1, a, b] with
 * perm [0, 2, 1]), whose flat dispatch is folded; smaller ones keep the faster tiled program.
 *
 * BatchMatMul: the product's rows are dispatched in y, so more than ~2 million rows (the
 * augmentations' [N·H·W, 3] × [3, 3] colour maps at batch 512 and 64×64) hit the same limit.
 * Such products (also the fused product + bias of tf.fused.matMul) are computed in blocks of
 * rows and concatenated.
 *
 * Training kernels, one per file of this folder: Conv2DBackpropFilter as a split-K GEMM
 * (conv2d-backprop-filter.ts); Conv2DBackpropInput as a polyphase GEMM (conv2d-backprop-input.ts);
 * training-mode BatchNorm (+ ReLU) and its gradient, fused, and its running-statistics update
 * (batchnorm.ts); fused SGD, Adam and EMA parameter updates (optimizer-update.ts); one augmented
 * view's per-pixel chain, 1–2 dispatches where the composite takes ~75 (augment.ts).
 */
export const WEBGPU_KERNELS = ['Transpose', 'BatchMatMul', '_FusedMatMul', 'Conv2DBackpropFilter', 'Conv2DBackpropInput', FUSED_BATCH_NORM_KERNEL, FUSED_BATCH_NORM_GRAD_KERNEL, BATCH_NORM_RUNNING_STATS_KERNEL, MIXMASK_SGD_UPDATE, MIXMASK_ADAM_UPDATE, MIXMASK_EMA_UPDATE, AUGMENT_VIEW_KERNEL] as const;

interface WebgpuBackendLike extends tf.KernelBackend {
  device: { limits: { maxComputeWorkgroupsPerDimension: number } };
  incRef(dataId: tf.DataId): void;
  disposeData(dataId: tf.DataId): boolean;
}

type Args = { inputs: tf.NamedTensorInfoMap; backend: unknown; attrs?: tf.NamedAttrMap };
type Kernel = (args: Args) => tf.TensorInfo;

const TILE = 16;
/** Rows per block of a large product: below the limit for every matMul program's row tile (≥ 8). */
export const MATMUL_ROW_BLOCK = 1 << 19;
let stockTranspose: Kernel | null = null;
const stockMatMul = new Map<string, Kernel>();

function transpose(args: Args): tf.TensorInfo {
  const x = args.inputs.x as tf.TensorInfo;
  const perm = (args.attrs as { perm: number[] }).perm;
  const backend = args.backend as WebgpuBackendLike;
  const limit = backend.device.limits.maxComputeWorkgroupsPerDimension;
  const tiled2d = x.shape.length === 2 && perm[0] === 1 && perm[1] === 0;
  if (!tiled2d || Math.max(...x.shape.map((d) => Math.ceil(d / TILE))) <= limit) return stockTranspose!(args);
  const [a, b] = x.shape;
  // Views share the data (as the backend's own Reshape does): one more reference each.
  backend.incRef(x.dataId);
  const x3: tf.TensorInfo = { dataId: x.dataId, shape: [1, a, b], dtype: x.dtype };
  try {
    const y3 = stockTranspose!({ ...args, inputs: { x: x3 }, attrs: { perm: [0, 2, 1] } });
    return { dataId: y3.dataId, shape: [b, a], dtype: y3.dtype };
  } finally {
    backend.disposeData(x3.dataId);
  }
}

const rowBlocked = (name: string): Kernel => (args) => {
  const stock = stockMatMul.get(name)!;
  const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined> & { a: tf.TensorInfo; b: tf.TensorInfo };
  const transposeA = (args.attrs as { transposeA: boolean }).transposeA;
  const rank = a.shape.length;
  const rows = a.shape[rank - 2];
  // An epilogue operand with a row axis would need slicing too; the shapes we meet broadcast.
  const perRow = [bias, preluActivationWeights].some((t) => t !== undefined && t.shape.length >= 2 && t.shape[t.shape.length - 2] !== 1);
  if (transposeA || rows <= MATMUL_ROW_BLOCK || perRow) return stock(args);
  const backend = args.backend as WebgpuBackendLike;
  const slice = tf.getKernel('Slice', 'webgpu')!.kernelFunc as unknown as Kernel;
  const concat = tf.getKernel('Concat', 'webgpu')!.kernelFunc as unknown as Kernel;
  const parts: tf.TensorInfo[] = [];
  try {
    for (let r = 0; r < rows; r += MATMUL_ROW_BLOCK) {
      const n = Math.min(MATMUL_ROW_BLOCK, rows - r);
      const begin = a.shape.map((_, i) => (i === rank - 2 ? r : 0));
      const size = a.shape.map((d, i) => (i === rank - 2 ? n : d));
      const block = slice({ inputs: { x: a }, backend, attrs: { begin, size } });
      try {
        parts.push(stock({ ...args, inputs: { ...args.inputs, a: block } }));
      } finally {
        backend.disposeData(block.dataId);
      }
    }
    return concat({ inputs: parts as unknown as tf.NamedTensorInfoMap, backend, attrs: { axis: rank - 2 } });
  } finally {
    for (const p of parts) backend.disposeData(p.dataId);
  }
};

/**
 * Registers the kernels above and, unless `training` is false (tfjs's own then run, for
 * comparisons), the training kernels of this folder for 'webgpu'. Once per process;
 * tfjs-backend-webgpu must be imported.
 */
export function installWebgpuKernels(opts: { training?: boolean } = {}): void {
  if (stockTranspose) return;
  for (const name of ['BatchMatMul', '_FusedMatMul']) stockMatMul.set(name, replaceKernel(name, rowBlocked(name)) as Kernel);
  stockTranspose = replaceKernel('Transpose', transpose) as Kernel;
  if (opts.training === false) return;
  installConv2DBackpropFilter();
  installConv2DBackpropInput();
  installFusedBatchNorm();
  installOptimizerUpdates();
  installAugmentView();
}
