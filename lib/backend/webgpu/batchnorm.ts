import * as tf from '@tensorflow/tfjs';
import {
  BATCH_NORM_RUNNING_STATS_KERNEL,
  FUSED_BATCH_NORM_GRAD_KERNEL,
  FUSED_BATCH_NORM_KERNEL,
  type RunningStatsAttrs,
  type RunningStatsInputs,
  checkRunningStats,
  registerFusedBatchNormGradient,
  runningStatsCoefficients,
} from '../batchnorm-op';
import { runMultiOutput } from './multi-output';
import { type KernelArgs, type Uniform, type WebgpuBackendLike, type WebgpuProgram, addKernel, ints, tuning } from './program';

/**
 * Training-mode BatchNorm (+ ReLU), its gradient and the running-statistics update for webgpu,
 * under the kernel names and contracts of lib/backend/batchnorm-op.ts (the composite tfjs
 * version takes ~25 dispatches forward and more backward, each reduction over [N, H, W] preceded
 * by a full transpose). Data is [R, C] (channels last, R = N·H·W rows).
 *
 * Forward (3 dispatches): per-channel sums of x − s and (x − s)² over blocks of rows (s: the
 * channel's first value, so that E[x²] − E[x]² does not cancel when |mean| ≫ std), one workgroup
 * column per block; mean and variance from the blocks' sums, in a fixed order, both in one
 * dispatch (./multi-output.ts); one elementwise pass y = (x − mean)·scale/√(var + ε) + offset
 * (then max(·, 0)).
 * Backward (3 dispatches): per-channel Σg and Σg·(x − mean) with g = dy·[y > 0] (or dy) over
 * blocks of rows; the blocks summed, with dOffset and dScale, in one dispatch; one elementwise
 * pass for dx. Deterministic: every sum runs in a fixed order.
 * Running statistics (1 dispatch): running mean, running variance and num_batches_tracked.
 *
 * The sums need every row before anything can use them, and WebGPU has no grid-wide barrier,
 * so each direction is three dispatches: sums, a per-channel finish, an elementwise pass.
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
 * S1 = Σg and S2 = Σg·(x − mean) (the summed sums, [2, C]).
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

/**
 * Per-channel finishing passes, one thread per channel, each writing several [C] outputs in one
 * dispatch (./multi-output.ts: our own shader, no tfjs preamble), where tfjs's one-output
 * programs took one dispatch per output. The blocks are added in order (deterministic), with the
 * same arithmetic as those programs.
 */
const MOMENTS_WGSL = `
  @group(0) @binding(0) var<storage, read_write> mean : array<f32>;
  @group(0) @binding(1) var<storage, read_write> variance : array<f32>;
  @group(0) @binding(2) var<storage, read> sums : array<f32>;
  @group(0) @binding(3) var<storage, read> x : array<f32>;
  struct U { R : i32, C : i32, blocks : i32, }
  @group(0) @binding(4) var<uniform> u : U;
  @compute @workgroup_size(${WG})
  fn main(@builtin(global_invocation_id) id : vec3<u32>) {
    let c = i32(id.x);
    if (c < u.C) {
      var s1 = 0.0;
      var s2 = 0.0;
      for (var b = 0; b < u.blocks; b++) {
        s1 += sums[b * u.C + c];
        s2 += sums[(u.blocks + b) * u.C + c];
      }
      // Shifted sums: mean = s + S1/R, variance = S2/R − (S1/R)² (s = x[0, c], see ChannelSums).
      let rows = f32(u.R);
      mean[c] = x[c] + s1 / rows;
      variance[c] = max(0.0, s2 / rows - (s1 / rows) * (s1 / rows));
    }
  }`;

/** sums = (Σg, Σg·(x − mean)) as [2, C] for dx; dOffset = Σg; dScale = Σg·(x − mean)/√(var + ε). */
const GRAD_FINISH_WGSL = `
  @group(0) @binding(0) var<storage, read_write> sums : array<f32>;
  @group(0) @binding(1) var<storage, read_write> dScale : array<f32>;
  @group(0) @binding(2) var<storage, read_write> dOffset : array<f32>;
  @group(0) @binding(3) var<storage, read> partials : array<f32>;
  @group(0) @binding(4) var<storage, read> variance : array<f32>;
  struct U { C : i32, blocks : i32, eps : f32, }
  @group(0) @binding(5) var<uniform> u : U;
  @compute @workgroup_size(${WG})
  fn main(@builtin(global_invocation_id) id : vec3<u32>) {
    let c = i32(id.x);
    if (c < u.C) {
      var s1 = 0.0;
      var s2 = 0.0;
      for (var b = 0; b < u.blocks; b++) {
        s1 += partials[b * u.C + c];
        s2 += partials[(u.blocks + b) * u.C + c];
      }
      sums[c] = s1;
      sums[u.C + c] = s2;
      dOffset[c] = s1;
      dScale[c] = s2 / sqrt(variance[c] + u.eps);
    }
  }`;

/** Running statistics (contract and coefficients in ../batchnorm-op.ts); invocation 0 also counts the batch. */
const RUNNING_STATS_WGSL = `
  @group(0) @binding(0) var<storage, read_write> runningMeanOut : array<f32>;
  @group(0) @binding(1) var<storage, read_write> runningVarOut : array<f32>;
  @group(0) @binding(2) var<storage, read_write> trackedOut : array<i32>;
  @group(0) @binding(3) var<storage, read> runningMean : array<f32>;
  @group(0) @binding(4) var<storage, read> runningVar : array<f32>;
  @group(0) @binding(5) var<storage, read> tracked : array<i32>;
  @group(0) @binding(6) var<storage, read> batchMean : array<f32>;
  @group(0) @binding(7) var<storage, read> batchVar : array<f32>;
  struct U { C : i32, keep : f32, meanWeight : f32, varWeight : f32, }
  @group(0) @binding(8) var<uniform> u : U;
  @compute @workgroup_size(${WG})
  fn main(@builtin(global_invocation_id) id : vec3<u32>) {
    let c = i32(id.x);
    if (c == 0) {
      trackedOut[0] = tracked[0] + 1;
    }
    if (c < u.C) {
      runningMeanOut[c] = u.keep * runningMean[c] + u.meanWeight * batchMean[c];
      runningVarOut[c] = u.keep * runningVar[c] + u.varWeight * batchVar[c];
    }
  }`;

/** One thread per channel: the dispatch is not folded, so C must fit one dimension's workgroups. */
function channelDispatch(backend: WebgpuBackendLike, name: string, C: number): [number, number, number] {
  const groups = Math.ceil(C / WG);
  const limit = backend.device.limits.maxComputeWorkgroupsPerDimension;
  if (groups > limit) throw new Error(`${name} on webgpu: ${C} channels need ${groups} workgroups of ${WG}, the device allows ${limit}`);
  return [groups, 1, 1];
}

function vector(C: number): { shape: number[]; dtype: tf.DataType } {
  return { shape: [C], dtype: 'float32' };
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
    const [mean, variance] = runMultiOutput(backend, {
      name: 'MixMaskBnMoments',
      key: `mixmaskBnMoments_${WG}`,
      wgsl: () => MOMENTS_WGSL,
      outputs: [vector(C), vector(C)],
      inputs: [sums, x],
      uniforms: ints(R, C, blocks),
      dispatch: channelDispatch(backend, FUSED_BATCH_NORM_KERNEL, C),
    });
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
  try {
    const [sums, dScale, dOffset] = runMultiOutput(backend, {
      name: 'MixMaskBnGradFinish',
      key: `mixmaskBnGradFinish_${WG}`,
      wgsl: () => GRAD_FINISH_WGSL,
      outputs: [{ shape: [2, C], dtype: 'float32' }, vector(C), vector(C)],
      inputs: [partials, variance],
      uniforms: [...ints(C, blocks), { type: 'float32', data: [eps] }],
      dispatch: channelDispatch(backend, FUSED_BATCH_NORM_GRAD_KERNEL, C),
    });
    try {
      const dxInputs = relu ? [dy, x, mean, variance, scale, sums, y] : [dy, x, mean, variance, scale, sums];
      const dx = backend.runWebGPUProgram(new GradInputProgram(x.shape, !!relu), dxInputs, 'float32', [...ints(R, C), { type: 'float32', data: [eps] }]);
      return [dx, dScale, dOffset];
    } finally {
      backend.disposeData(sums.dataId);
    }
  } finally {
    backend.disposeData(partials.dataId);
  }
}

function runningStats(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WebgpuBackendLike;
  const inputs = args.inputs as unknown as RunningStatsInputs;
  const attrs = args.attrs as unknown as RunningStatsAttrs;
  const C = checkRunningStats(inputs, attrs);
  const { keep, meanWeight, varWeight } = runningStatsCoefficients(attrs);
  return runMultiOutput(backend, {
    name: 'MixMaskBnRunningStats',
    key: `mixmaskBnRunningStats_${WG}`,
    wgsl: () => RUNNING_STATS_WGSL,
    outputs: [vector(C), vector(C), { shape: [], dtype: 'int32' }],
    inputs: [inputs.runningMean, inputs.runningVar, inputs.numBatchesTracked, inputs.mean, inputs.variance],
    uniforms: [...ints(C), ...[keep, meanWeight, varWeight].map((v): Uniform => ({ type: 'float32', data: [v] }))],
    dispatch: channelDispatch(backend, BATCH_NORM_RUNNING_STATS_KERNEL, C),
  });
}

/** Registers the fused BatchNorm kernels, the (shared) gradient and the running-statistics kernel for webgpu. Idempotent. */
export function installFusedBatchNorm(): void {
  if (installed) return;
  addKernel(FUSED_BATCH_NORM_KERNEL, batchNormTrain);
  addKernel(FUSED_BATCH_NORM_GRAD_KERNEL, batchNormTrainGrad);
  addKernel(BATCH_NORM_RUNNING_STATS_KERNEL, runningStats);
  registerFusedBatchNormGradient();
  installed = true;
}
