import * as tf from '@tensorflow/tfjs';
import { FUSED_BATCH_NORM_GRAD_KERNEL, FUSED_BATCH_NORM_KERNEL, registerFusedBatchNormGradient } from '../batchnorm-op';
import { type KernelArgs, type Uniform, type WebgpuBackendLike, type WebgpuProgram, addKernel, ints, tuning } from './program';

/**
 * Training-mode BatchNorm (+ ReLU) and its gradient for webgpu, under the kernel names and
 * contract of lib/backend/batchnorm-op.ts (the composite tfjs version takes ~25 dispatches
 * forward and more backward, each reduction over [N, H, W] preceded by a full transpose).
 * Data is [R, C] (channels last, R = N·H·W rows).
 *
 * Forward (4 dispatches): per-channel sums of x − s and (x − s)² over blocks of rows (s: the
 * channel's first value, so that E[x²] − E[x]² does not cancel when |mean| ≫ std), one workgroup
 * column per block; mean and variance from the blocks' sums, in a fixed order; one elementwise
 * pass y = (x − mean)·scale/√(var + ε) + offset (then max(·, 0)).
 * Backward (5 dispatches, 4 with one block): per-channel Σg and Σg·(x − mean) with g = dy·[y > 0]
 * (or dy) over blocks of rows; the blocks summed; one elementwise pass for dx; dOffset and
 * dScale from the sums. Deterministic: every sum runs in a fixed order.
 */
const WG = 64;
/** Fewest rows a block sums (below that a second stage costs more than it saves). */
const MIN_BLOCK_ROWS = 64;

interface BnAttrs {
  varianceEpsilon: number;
  relu: boolean;
}

/** Row blocks for a per-channel reduction of [R, C]: about `tuning.targetWorkgroups` workgroups in all. */
export function rowBlocks(R: number, C: number, targetWorkgroups = tuning.targetWorkgroups): { blocks: number; rowsPerBlock: number } {
  const columns = Math.ceil(C / WG);
  const wanted = Math.max(1, Math.min(Math.ceil(targetWorkgroups / columns), Math.floor(R / MIN_BLOCK_ROWS)));
  const rowsPerBlock = Math.ceil(R / wanted);
  return { blocks: Math.ceil(R / rowsPerBlock), rowsPerBlock };
}

/**
 * Per-channel partial sums of [R, C] over blocks of rows → [2, blocks, C].
 * 'moments': x − s and (x − s)², s = x[0, c]; 'grad': g and g·(x − mean).
 */
class ChannelSumsProgram implements WebgpuProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [2], y: [1] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  uniforms = 'R : i32, C : i32, rowsPerBlock : i32, blocks : i32,';

  constructor(
    private readonly kind: 'moments' | 'grad',
    private readonly relu: boolean,
    C: number,
    blocks: number,
  ) {
    this.variableNames = kind === 'moments' ? ['x'] : relu ? ['dy', 'x', 'mean', 'y'] : ['dy', 'x', 'mean'];
    this.outputShape = [2, blocks, C];
    this.dispatch = [Math.ceil(C / WG), blocks, 1];
    this.shaderKey = `mixmaskBnSums_${kind}_${relu}`;
  }

  getUserCode(): string {
    const term =
      this.kind === 'moments'
        ? `let v = x[i] - shift;
              s1 += v;
              s2 += v * v;`
        : `let g = ${this.relu ? 'select(0.0, dy[i], y[i] > 0.0)' : 'dy[i]'};
              s1 += g;
              s2 += g * (x[i] - shift);`;
    return `
      fn main() {
        let c = i32(workgroupId.x) * ${WG} + i32(localId.x);
        let block = i32(workgroupId.y);
        if (c < uniforms.C) {
          let shift = ${this.kind === 'moments' ? 'x[c]' : 'mean[c]'};
          let start = block * uniforms.rowsPerBlock;
          let end = min(start + uniforms.rowsPerBlock, uniforms.R);
          var s1 = 0.0;
          var s2 = 0.0;
          for (var r = start; r < end; r++) {
            let i = r * uniforms.C + c;
            ${term}
          }
          result[block * uniforms.C + c] = s1;
          result[(uniforms.blocks + block) * uniforms.C + c] = s2;
        }
      }
    `;
  }
}

/**
 * [C] from the [2, blocks, C] partial sums, adding the blocks in order:
 * 'mean' x[0, c] + S1/R; 'variance' max(0, S2/R − (S1/R)²); 'sum0' S1; 'dScale' S2/√(var + ε).
 */
class ChannelFinishProgram implements WebgpuProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  uniforms = 'R : i32, C : i32, blocks : i32, eps : f32,';
  size = true;

  constructor(private readonly kind: 'mean' | 'variance' | 'sum0' | 'dScale', C: number) {
    this.variableNames = kind === 'mean' ? ['sums', 'x'] : kind === 'dScale' ? ['sums', 'variance'] : ['sums'];
    this.outputShape = [C];
    this.dispatch = [Math.ceil(C / WG), 1, 1];
    this.shaderKey = `mixmaskBnFinish_${kind}`;
  }

  getUserCode(): string {
    const value = {
      mean: 'x[c] + s1 / f32(uniforms.R)',
      variance: 'max(0.0, s2 / f32(uniforms.R) - (s1 / f32(uniforms.R)) * (s1 / f32(uniforms.R)))',
      sum0: 's1',
      dScale: 's2 / sqrt(variance[c] + uniforms.eps)',
    }[this.kind];
    return `
      fn main(c : i32) {
        if (c < uniforms.C) {
          var s1 = 0.0;
          var s2 = 0.0;
          for (var b = 0; b < uniforms.blocks; b++) {
            s1 += sums[b * uniforms.C + c];
            s2 += sums[(uniforms.blocks + b) * uniforms.C + c];
          }
          result[c] = ${value};
        }
      }
    `;
  }
}

/** y = (x − mean)·scale/√(var + ε) + offset, then ReLU when asked. */
class NormalizeProgram implements WebgpuProgram {
  variableNames = ['x', 'mean', 'variance', 'scale', 'offset'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  uniforms = 'C : i32, eps : f32,';
  size = true;

  constructor(
    shape: number[],
    private readonly relu: boolean,
  ) {
    this.outputShape = shape;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    this.dispatch = [Math.ceil(shape.reduce((a, b) => a * b, 1) / WG), 1, 1];
    this.shaderKey = `mixmaskBnNormalize_${relu}`;
  }

  getUserCode(): string {
    return `
      fn main(i : i32) {
        if (i < uniforms.size) {
          let c = i % uniforms.C;
          let k = scale[c] / sqrt(variance[c] + uniforms.eps);
          let v = (x[i] - mean[c]) * k + offset[c];
          result[i] = ${this.relu ? 'max(v, 0.0)' : 'v'};
        }
      }
    `;
  }
}

/**
 * dx = k·g − k·inv²·(x − mean)·S2/R − k·S1/R with k = scale·inv, inv = 1/√(var + ε),
 * S1 = Σg and S2 = Σg·(x − mean) (the summed [2, C] or one-block [2, 1, C] sums).
 */
class GradInputProgram implements WebgpuProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  uniforms = 'R : i32, C : i32, eps : f32,';
  size = true;

  constructor(
    shape: number[],
    private readonly relu: boolean,
  ) {
    this.variableNames = relu ? ['dy', 'x', 'mean', 'variance', 'scale', 'sums', 'y'] : ['dy', 'x', 'mean', 'variance', 'scale', 'sums'];
    this.outputShape = shape;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    this.dispatch = [Math.ceil(shape.reduce((a, b) => a * b, 1) / WG), 1, 1];
    this.shaderKey = `mixmaskBnGradInput_${relu}`;
  }

  getUserCode(): string {
    return `
      fn main(i : i32) {
        if (i < uniforms.size) {
          let c = i % uniforms.C;
          let inv = 1.0 / sqrt(variance[c] + uniforms.eps);
          let k = scale[c] * inv;
          let rows = f32(uniforms.R);
          let g = ${this.relu ? 'select(0.0, dy[i], y[i] > 0.0)' : 'dy[i]'};
          result[i] = k * g - k * inv * inv * (x[i] - mean[c]) * (sums[uniforms.C + c] / rows) - k * (sums[c] / rows);
        }
      }
    `;
  }
}

function channelsOf(x: tf.TensorInfo): { R: number; C: number } {
  const C = x.shape[x.shape.length - 1];
  const size = x.shape.reduce((a, b) => a * b, 1);
  return { R: C === 0 ? 0 : size / C, C };
}

function finish(backend: WebgpuBackendLike, kind: 'mean' | 'variance' | 'sum0' | 'dScale', inputs: tf.TensorInfo[], R: number, C: number, blocks: number, eps: number): tf.TensorInfo {
  const uniforms: Uniform[] = [...ints(R, C, blocks), { type: 'float32', data: [eps] }];
  return backend.runWebGPUProgram(new ChannelFinishProgram(kind, C), inputs, 'float32', uniforms);
}

let installed = false;

function checkInputs(name: string, infos: Record<string, tf.TensorInfo>, C: number): void {
  for (const [k, t] of Object.entries(infos)) {
    if (t.dtype !== 'float32') throw new Error(`${name} on webgpu: ${k} must be float32, got ${t.dtype}`);
    if (t.shape.length === 1 && t.shape[0] !== C) throw new Error(`${name} on webgpu: ${k} has ${t.shape[0]} channels, x has ${C}`);
  }
}

function batchNormTrain(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WebgpuBackendLike;
  const { x, scale, offset } = args.inputs as { x: tf.TensorInfo; scale: tf.TensorInfo; offset: tf.TensorInfo };
  const { varianceEpsilon: eps, relu } = args.attrs as unknown as BnAttrs;
  const { R, C } = channelsOf(x);
  checkInputs(FUSED_BATCH_NORM_KERNEL, { x, scale, offset }, C);
  if (R === 0) throw new Error(`${FUSED_BATCH_NORM_KERNEL} on webgpu: x of shape [${x.shape}] has no elements per channel`);
  const { blocks, rowsPerBlock } = rowBlocks(R, C);
  const sums = backend.runWebGPUProgram(new ChannelSumsProgram('moments', false, C, blocks), [x], 'float32', ints(R, C, rowsPerBlock, blocks));
  try {
    const mean = finish(backend, 'mean', [sums, x], R, C, blocks, eps);
    const variance = finish(backend, 'variance', [sums], R, C, blocks, eps);
    const y = backend.runWebGPUProgram(new NormalizeProgram(x.shape, !!relu), [x, mean, variance, scale, offset], 'float32', [
      ...ints(C),
      { type: 'float32', data: [eps] },
    ]);
    return [y, mean, variance];
  } finally {
    backend.disposeData(sums.dataId);
  }
}

function batchNormTrainGrad(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WebgpuBackendLike;
  const { dy, x, y, mean, variance, scale } = args.inputs as Record<string, tf.TensorInfo>;
  const { varianceEpsilon: eps, relu } = args.attrs as unknown as BnAttrs;
  const { R, C } = channelsOf(x);
  checkInputs(FUSED_BATCH_NORM_GRAD_KERNEL, { dy, x, y, mean, variance, scale }, C);
  if (R === 0) throw new Error(`${FUSED_BATCH_NORM_GRAD_KERNEL} on webgpu: x of shape [${x.shape}] has no elements per channel`);
  const { blocks, rowsPerBlock } = rowBlocks(R, C);
  const partialInputs = relu ? [dy, x, mean, y] : [dy, x, mean];
  const partials = backend.runWebGPUProgram(new ChannelSumsProgram('grad', !!relu, C, blocks), partialInputs, 'float32', ints(R, C, rowsPerBlock, blocks));
  // One block: its partial sums are the sums.
  let sums = partials;
  try {
    if (blocks > 1) sums = backend.runWebGPUProgram(new SumBlocksProgram(C), [partials], 'float32', ints(C, blocks));
    const dxInputs = relu ? [dy, x, mean, variance, scale, sums, y] : [dy, x, mean, variance, scale, sums];
    const dx = backend.runWebGPUProgram(new GradInputProgram(x.shape, !!relu), dxInputs, 'float32', [...ints(R, C), { type: 'float32', data: [eps] }]);
    const dScale = finish(backend, 'dScale', [sums, variance], R, C, 1, eps);
    const dOffset = finish(backend, 'sum0', [sums], R, C, 1, eps);
    return [dx, dScale, dOffset];
  } finally {
    if (sums !== partials) backend.disposeData(sums.dataId);
    backend.disposeData(partials.dataId);
  }
}

/** [2, blocks, C] → [2, 1, C], adding the blocks in order. */
class SumBlocksProgram implements WebgpuProgram {
  variableNames = ['partials'];
  outputShape: number[];
  shaderKey = 'mixmaskBnSumBlocks';
  dispatchLayout = { x: [0, 1, 2] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  uniforms = 'C : i32, blocks : i32,';
  size = true;

  constructor(C: number) {
    this.outputShape = [2, 1, C];
    this.dispatch = [Math.ceil((2 * C) / WG), 1, 1];
  }

  getUserCode(): string {
    return `
      fn main(i : i32) {
        if (i < uniforms.size) {
          let half = i / uniforms.C;
          let c = i - half * uniforms.C;
          var s = 0.0;
          for (var b = 0; b < uniforms.blocks; b++) {
            s += partials[(half * uniforms.blocks + b) * uniforms.C + c];
          }
          result[i] = s;
        }
      }
    `;
  }
}

/** Registers the fused BatchNorm kernels for webgpu and the (shared) gradient. Idempotent. */
export function installFusedBatchNorm(): void {
  if (installed) return;
  addKernel(FUSED_BATCH_NORM_KERNEL, batchNormTrain);
  addKernel(FUSED_BATCH_NORM_GRAD_KERNEL, batchNormTrainGrad);
  registerFusedBatchNormGradient();
  installed = true;
}
