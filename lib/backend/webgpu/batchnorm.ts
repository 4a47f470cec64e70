import * as tf from '@tensorflow/tfjs';
import {
  BATCH_NORM_RUNNING_STATS_KERNEL,
  FUSED_BATCH_NORM_GRAD_KERNEL,
  FUSED_BATCH_NORM_KERNEL,
  type BatchNormKernelAttrs,
  type RunningStatsAttrs,
  type RunningStatsInputs,
  batchNormStatsShape,
  checkBatchNormGroups,
  checkBatchNormResidual,
  checkBatchNormStats,
  checkRunningStats,
  declareGroupedBatchNorm,
  declareResidualBatchNorm,
  registerFusedBatchNormGradient,
  runningStatsCoefficients,
} from '../batchnorm-op';
import { runMultiOutput } from './multi-output';
import { type KernelArgs, type Uniform, type WebgpuBackendLike, type WebgpuProgram, addKernel, ints, tuning } from './program';

/**
 * Training-mode BatchNorm (+ residual, + ReLU), its gradient and the running-statistics update for webgpu,
 * under the kernel names and contracts of lib/backend/batchnorm-op.ts (the composite tfjs
 * version takes ~25 dispatches forward and more backward, each reduction over [N, H, W] preceded
 * by a full transpose). Data is [R, C] (channels last, R = N·H·W rows), in G groups of R/G
 * contiguous rows (the contract's `groups`; G = 1 but for MoCo's shuffle-BN), each with its own
 * statistics: the sums run per (group, block of rows), the finishing passes per group, and the
 * elementwise passes read their row's group's statistics, so the dispatch count does not depend
 * on G.
 *
 * Forward (3 dispatches): per-channel sums of x − s and (x − s)² over blocks of rows (s: the
 * channel's first value, so that E[x²] − E[x]² does not cancel when |mean| ≫ std), one workgroup
 * column per block; mean and variance from the blocks' sums, in a fixed order, both in one
 * dispatch (./multi-output.ts); one elementwise pass y = (x − mean)·scale/√(var + ε) + offset
 * (+ the residual, then max(·, 0)).
 * Backward (3 dispatches): per-channel Σg and Σg·(x − mean) with g = dy·[y > 0] (or dy) over
 * blocks of rows; the blocks summed, with dOffset, dScale and dx's per-channel coefficients, in
 * one dispatch; one elementwise pass for dx that also writes dResidual = g when the forward had a
 * residual (two outputs, one dispatch). Deterministic: every sum runs in a fixed order.
 * Running statistics (1 dispatch): running mean, running variance and num_batches_tracked (the
 * G updates of a grouped batch in order, in the same dispatch).
 *
 * The sums need every row before anything can use them, and WebGPU has no grid-wide barrier,
 * so each direction is three dispatches: sums, a per-channel finish, an elementwise pass.
 */
const WG = 64;
/** Fewest rows a block sums (below that a second stage costs more than it saves). */
const MIN_BLOCK_ROWS = 64;

/** Row blocks for a per-channel reduction of [R, C]: about `tuning.targetWorkgroups` workgroups in all. */
export function rowBlocks(R: number, C: number, targetWorkgroups = tuning.targetWorkgroups): { blocks: number; rowsPerBlock: number } {
  const columns = Math.ceil(C / WG);
  const wanted = Math.max(1, Math.min(Math.ceil(targetWorkgroups / columns), Math.floor(R / MIN_BLOCK_ROWS)));
  const rowsPerBlock = Math.ceil(R / wanted);
  return { blocks: Math.ceil(R / rowsPerBlock), rowsPerBlock };
}

/**
 * Per-channel partial sums of [R, C] over blocks of rows → [2, groups·blocks, C], block b of
 * group g at g·blocks + b (`blocks` blocks of a group's R/G rows per group).
 * 'moments': x − s and (x − s)², s = the group's first row x[g·R/G, c]; 'grad': g and
 * g·(x − mean) with the group's mean.
 */
class ChannelSumsProgram implements WebgpuProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [2], y: [1] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  uniforms = 'rowsPerGroup : i32, C : i32, rowsPerBlock : i32, blocks : i32, totalBlocks : i32,';

  constructor(
    private readonly kind: 'moments' | 'grad',
    private readonly relu: boolean,
    C: number,
    totalBlocks: number,
  ) {
    this.variableNames = kind === 'moments' ? ['x'] : relu ? ['dy', 'x', 'mean', 'y'] : ['dy', 'x', 'mean'];
    this.outputShape = [2, totalBlocks, C];
    this.dispatch = [Math.ceil(C / WG), totalBlocks, 1];
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
        let group = block / uniforms.blocks;
        if (c < uniforms.C) {
          let shift = ${this.kind === 'moments' ? 'x[group * uniforms.rowsPerGroup * uniforms.C + c]' : 'mean[group * uniforms.C + c]'};
          let start = group * uniforms.rowsPerGroup + (block % uniforms.blocks) * uniforms.rowsPerBlock;
          let end = min(start + uniforms.rowsPerBlock, (group + 1) * uniforms.rowsPerGroup);
          var s1 = 0.0;
          var s2 = 0.0;
          for (var r = start; r < end; r++) {
            let i = r * uniforms.C + c;
            ${term}
          }
          result[block * uniforms.C + c] = s1;
          result[(uniforms.totalBlocks + block) * uniforms.C + c] = s2;
        }
      }
    `;
  }
}

/**
 * y = (x − mean)·scale/√(var + ε) + offset (+ residual) with the element's group's statistics,
 * then ReLU when asked: the residual add and the ReLU cost no dispatch of their own.
 */
class NormalizeProgram implements WebgpuProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [WG, 1, 1];
  uniforms = 'C : i32, groupSize : i32, eps : f32,';
  size = true;

  constructor(
    shape: number[],
    private readonly relu: boolean,
    private readonly residual: boolean,
  ) {
    this.variableNames = residual ? ['x', 'mean', 'variance', 'scale', 'offset', 'residual'] : ['x', 'mean', 'variance', 'scale', 'offset'];
    this.outputShape = shape;
    this.dispatchLayout = { x: shape.map((_, i) => i) };
    this.dispatch = [Math.ceil(shape.reduce((a, b) => a * b, 1) / WG), 1, 1];
    this.shaderKey = `mixmaskBnNormalize_${relu}_${residual}`;
  }

  getUserCode(): string {
    return `
      fn main(i : i32) {
        if (i < uniforms.size) {
          let c = i % uniforms.C;
          let s = (i / uniforms.groupSize) * uniforms.C + c;
          let k = scale[c] / sqrt(variance[s] + uniforms.eps);
          let v = (x[i] - mean[s]) * k + offset[c]${this.residual ? ' + residual[i]' : ''};
          result[i] = ${this.relu ? 'max(v, 0.0)' : 'v'};
        }
      }
    `;
  }
}

/** Test hook: a lower cap than the device's maxComputeWorkgroupsPerDimension, to exercise the dx pass's 2-D grid on small tensors. */
export const bnTuning = { maxWorkgroupsPerDimension: null as number | null };

/**
 * The gradient's elementwise pass, one dispatch (./multi-output.ts) writing dx and, with a
 * residual, dResidual = g (which the tfjs Add's gradient and the Relu's took a dispatch or two
 * for): dx = k·g − A·(x − mean) − B, with the per-(group, channel) coefficients k, A, B
 * [3, G, C] of the finishing pass. Bindings: dx, (dResidual,) dy, x, mean, coef, (y): at most 7
 * storage buffers, under WebGPU's default limit of 8. The flat index spans a 2-D grid when the
 * workgroups outnumber maxComputeWorkgroupsPerDimension (4.2 M elements at 64 a workgroup).
 */
function gradInputWgsl(relu: boolean, residual: boolean): string {
  const outputs = residual ? ['dx', 'dResidual'] : ['dx'];
  const inputs = relu ? ['dy', 'x', 'mean', 'coef', 'y'] : ['dy', 'x', 'mean', 'coef'];
  const bindings = [
    ...outputs.map((b) => `var<storage, read_write> ${b} : array<f32>;`),
    ...inputs.map((b) => `var<storage, read> ${b} : array<f32>;`),
    'var<uniform> u : U;',
  ];
  return `
  struct U { size : i32, C : i32, groupSize : i32, GC : i32, }
  ${bindings.map((b, j) => `@group(0) @binding(${j}) ${b}`).join('\n  ')}
  @compute @workgroup_size(${WG})
  fn main(@builtin(workgroup_id) wid : vec3<u32>, @builtin(num_workgroups) nwg : vec3<u32>, @builtin(local_invocation_index) lid : u32) {
    let i = i32(wid.y * nwg.x + wid.x) * ${WG} + i32(lid);
    if (i < u.size) {
      let c = i % u.C;
      let s = (i / u.groupSize) * u.C + c;
      let g = ${relu ? 'select(0.0, dy[i], y[i] > 0.0)' : 'dy[i]'};
      dx[i] = coef[s] * g - coef[u.GC + s] * (x[i] - mean[s]) - coef[2 * u.GC + s];${residual ? '\n      dResidual[i] = g;' : ''}
    }
  }`;
}

/** A 1-D dispatch of `size` elements at WG per workgroup, folded into x · y past the per-dimension cap. */
function elementwiseGrid(backend: WebgpuBackendLike, name: string, size: number): [number, number, number] {
  const cap = bnTuning.maxWorkgroupsPerDimension ?? backend.device.limits.maxComputeWorkgroupsPerDimension;
  const workgroups = Math.ceil(size / WG);
  const x = Math.min(workgroups, cap);
  const y = Math.ceil(workgroups / x);
  if (y > cap) throw new Error(`${name} on webgpu: ${size} elements need ${workgroups} workgroups, more than a ${cap} × ${cap} grid`);
  return [x, y, 1];
}

function channelsOf(x: tf.TensorInfo): { R: number; C: number } {
  const C = x.shape[x.shape.length - 1];
  const size = x.shape.reduce((a, b) => a * b, 1);
  return { R: C === 0 ? 0 : size / C, C };
}

/**
 * Per-channel finishing passes, one thread per channel (looping over the groups), each writing
 * several outputs in one dispatch (./multi-output.ts: our own shader, no tfjs preamble), where
 * tfjs's one-output programs took one dispatch per output. The blocks are added in order
 * (deterministic), with the same arithmetic as those programs.
 */
const MOMENTS_WGSL = `
  @group(0) @binding(0) var<storage, read_write> mean : array<f32>;
  @group(0) @binding(1) var<storage, read_write> variance : array<f32>;
  @group(0) @binding(2) var<storage, read> sums : array<f32>;
  @group(0) @binding(3) var<storage, read> x : array<f32>;
  struct U { rowsPerGroup : i32, C : i32, blocks : i32, groups : i32, }
  @group(0) @binding(4) var<uniform> u : U;
  @compute @workgroup_size(${WG})
  fn main(@builtin(global_invocation_id) id : vec3<u32>) {
    let c = i32(id.x);
    if (c < u.C) {
      let totalBlocks = u.groups * u.blocks;
      let rows = f32(u.rowsPerGroup);
      for (var g = 0; g < u.groups; g++) {
        var s1 = 0.0;
        var s2 = 0.0;
        for (var b = g * u.blocks; b < (g + 1) * u.blocks; b++) {
          s1 += sums[b * u.C + c];
          s2 += sums[(totalBlocks + b) * u.C + c];
        }
        // Shifted sums: mean = s + S1/R, variance = S2/R − (S1/R)² (s = the group's first x, see ChannelSums).
        mean[g * u.C + c] = x[g * u.rowsPerGroup * u.C + c] + s1 / rows;
        variance[g * u.C + c] = max(0.0, s2 / rows - (s1 / rows) * (s1 / rows));
      }
    }
  }`;

/**
 * Per group, the dx pass's coefficients [3, G, C] from S1 = Σg and S2 = Σg·(x − mean), with
 * inv = 1/√(var + ε), k = scale·inv, R rows per group: k, A = k·inv²·S2/R, B = k·S1/R (dx =
 * k·g − A·(x − mean) − B, i.e. k·(g − (dOffset + x̂·dScale)/R) per group); over the groups,
 * dOffset = Σg and dScale = Σg·(x − mean)/√(var + ε) (scale and offset are shared by the groups).
 */
const GRAD_FINISH_WGSL = `
  @group(0) @binding(0) var<storage, read_write> coef : array<f32>;
  @group(0) @binding(1) var<storage, read_write> dScale : array<f32>;
  @group(0) @binding(2) var<storage, read_write> dOffset : array<f32>;
  @group(0) @binding(3) var<storage, read> partials : array<f32>;
  @group(0) @binding(4) var<storage, read> variance : array<f32>;
  @group(0) @binding(5) var<storage, read> scale : array<f32>;
  struct U { C : i32, blocks : i32, groups : i32, rowsPerGroup : i32, eps : f32, }
  @group(0) @binding(6) var<uniform> u : U;
  @compute @workgroup_size(${WG})
  fn main(@builtin(global_invocation_id) id : vec3<u32>) {
    let c = i32(id.x);
    if (c < u.C) {
      let totalBlocks = u.groups * u.blocks;
      let GC = u.groups * u.C;
      let rows = f32(u.rowsPerGroup);
      var d1 = 0.0;
      var d2 = 0.0;
      for (var g = 0; g < u.groups; g++) {
        var s1 = 0.0;
        var s2 = 0.0;
        for (var b = g * u.blocks; b < (g + 1) * u.blocks; b++) {
          s1 += partials[b * u.C + c];
          s2 += partials[(totalBlocks + b) * u.C + c];
        }
        let s = g * u.C + c;
        let inv = 1.0 / sqrt(variance[s] + u.eps);
        let k = scale[c] * inv;
        coef[s] = k;
        coef[GC + s] = k * inv * inv * (s2 / rows);
        coef[2 * GC + s] = k * (s1 / rows);
        d1 += s1;
        d2 += s2 / sqrt(variance[s] + u.eps);
      }
      dOffset[c] = d1;
      dScale[c] = d2;
    }
  }`;

/**
 * Running statistics (contract and coefficients in ../batchnorm-op.ts): the groups' updates in
 * order, each rounded to f32 as consecutive dispatches would; invocation 0 also counts the batches.
 */
const RUNNING_STATS_WGSL = `
  @group(0) @binding(0) var<storage, read_write> runningMeanOut : array<f32>;
  @group(0) @binding(1) var<storage, read_write> runningVarOut : array<f32>;
  @group(0) @binding(2) var<storage, read_write> trackedOut : array<i32>;
  @group(0) @binding(3) var<storage, read> runningMean : array<f32>;
  @group(0) @binding(4) var<storage, read> runningVar : array<f32>;
  @group(0) @binding(5) var<storage, read> tracked : array<i32>;
  @group(0) @binding(6) var<storage, read> batchMean : array<f32>;
  @group(0) @binding(7) var<storage, read> batchVar : array<f32>;
  struct U { C : i32, groups : i32, keep : f32, meanWeight : f32, varWeight : f32, }
  @group(0) @binding(8) var<uniform> u : U;
  @compute @workgroup_size(${WG})
  fn main(@builtin(global_invocation_id) id : vec3<u32>) {
    let c = i32(id.x);
    if (c == 0) {
      trackedOut[0] = tracked[0] + u.groups;
    }
    if (c < u.C) {
      var m : f32 = runningMean[c];
      var v : f32 = runningVar[c];
      for (var g = 0; g < u.groups; g++) {
        m = u.keep * m + u.meanWeight * batchMean[g * u.C + c];
        v = u.keep * v + u.varWeight * batchVar[g * u.C + c];
      }
      runningMeanOut[c] = m;
      runningVarOut[c] = v;
    }
  }`;

/** One thread per channel: the dispatch is not folded, so C must fit one dimension's workgroups. */
function channelDispatch(backend: WebgpuBackendLike, name: string, C: number): [number, number, number] {
  const groups = Math.ceil(C / WG);
  const limit = backend.device.limits.maxComputeWorkgroupsPerDimension;
  if (groups > limit) throw new Error(`${name} on webgpu: ${C} channels need ${groups} workgroups of ${WG}, the device allows ${limit}`);
  return [groups, 1, 1];
}

function vector(shape: number[]): { shape: number[]; dtype: tf.DataType } {
  return { shape, dtype: 'float32' };
}

let installed = false;

function checkInputs(name: string, infos: Record<string, tf.TensorInfo>, C: number): void {
  for (const [k, t] of Object.entries(infos)) {
    if (t.dtype !== 'float32') throw new Error(`${name} on webgpu: ${k} must be float32, got ${t.dtype}`);
    if (t.shape.length === 1 && t.shape[0] !== C) throw new Error(`${name} on webgpu: ${k} has ${t.shape[0]} channels, x has ${C}`);
  }
}

/**
 * Rows per group and the blocks each group's rows are summed in (about `tuning.targetWorkgroups`
 * workgroups over all groups).
 */
function groupBlocks(R: number, C: number, groups: number): { rowsPerGroup: number; blocks: number; rowsPerBlock: number } {
  const rowsPerGroup = R / groups;
  return { rowsPerGroup, ...rowBlocks(rowsPerGroup, C, Math.max(1, Math.ceil(tuning.targetWorkgroups / groups))) };
}

function batchNormTrain(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WebgpuBackendLike;
  const { x, scale, offset, residual } = args.inputs as { x: tf.TensorInfo; scale: tf.TensorInfo; offset: tf.TensorInfo; residual?: tf.TensorInfo };
  const { varianceEpsilon: eps, relu, groups: g, residual: hasResidual } = args.attrs as unknown as BatchNormKernelAttrs;
  const { R, C } = channelsOf(x);
  checkInputs(FUSED_BATCH_NORM_KERNEL, { x, scale, offset }, C);
  checkBatchNormResidual(`${FUSED_BATCH_NORM_KERNEL} on webgpu`, x, residual, hasResidual);
  if (R === 0) throw new Error(`${FUSED_BATCH_NORM_KERNEL} on webgpu: x of shape [${x.shape}] has no elements per channel`);
  const groups = checkBatchNormGroups(`${FUSED_BATCH_NORM_KERNEL} on webgpu`, x.shape, g);
  const { rowsPerGroup, blocks, rowsPerBlock } = groupBlocks(R, C, groups);
  const sums = backend.runWebGPUProgram(new ChannelSumsProgram('moments', false, C, groups * blocks), [x], 'float32', ints(rowsPerGroup, C, rowsPerBlock, blocks, groups * blocks));
  try {
    const stats = batchNormStatsShape(groups, C);
    const [mean, variance] = runMultiOutput(backend, {
      name: 'MixMaskBnMoments',
      key: `mixmaskBnMoments_${WG}`,
      wgsl: () => MOMENTS_WGSL,
      outputs: [vector(stats), vector(stats)],
      inputs: [sums, x],
      uniforms: ints(rowsPerGroup, C, blocks, groups),
      dispatch: channelDispatch(backend, FUSED_BATCH_NORM_KERNEL, C),
    });
    const normalizeInputs = residual ? [x, mean, variance, scale, offset, residual] : [x, mean, variance, scale, offset];
    const y = backend.runWebGPUProgram(new NormalizeProgram(x.shape, !!relu, residual !== undefined), normalizeInputs, 'float32', [
      ...ints(C, rowsPerGroup * C),
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
  const { varianceEpsilon: eps, relu, groups: g, residual } = args.attrs as unknown as BatchNormKernelAttrs;
  const { R, C } = channelsOf(x);
  checkInputs(FUSED_BATCH_NORM_GRAD_KERNEL, { dy, x, y, mean, variance, scale }, C);
  if (R === 0) throw new Error(`${FUSED_BATCH_NORM_GRAD_KERNEL} on webgpu: x of shape [${x.shape}] has no elements per channel`);
  const groups = checkBatchNormGroups(`${FUSED_BATCH_NORM_GRAD_KERNEL} on webgpu`, x.shape, g);
  checkBatchNormStats(`${FUSED_BATCH_NORM_GRAD_KERNEL} on webgpu`, { mean, variance }, groups, C);
  const { rowsPerGroup, blocks, rowsPerBlock } = groupBlocks(R, C, groups);
  const partialInputs = relu ? [dy, x, mean, y] : [dy, x, mean];
  const partials = backend.runWebGPUProgram(new ChannelSumsProgram('grad', !!relu, C, groups * blocks), partialInputs, 'float32', ints(rowsPerGroup, C, rowsPerBlock, blocks, groups * blocks));
  try {
    const [coef, dScale, dOffset] = runMultiOutput(backend, {
      name: 'MixMaskBnGradFinish',
      key: `mixmaskBnGradFinish_coef_${WG}`,
      wgsl: () => GRAD_FINISH_WGSL,
      outputs: [vector([3, groups * C]), vector([C]), vector([C])],
      inputs: [partials, variance, scale],
      uniforms: [...ints(C, blocks, groups, rowsPerGroup), { type: 'float32', data: [eps] }],
      dispatch: channelDispatch(backend, FUSED_BATCH_NORM_GRAD_KERNEL, C),
    });
    try {
      const size = R * C;
      // dx and (with a residual) dResidual = g in one dispatch.
      const [dx, ...dResidual] = runMultiOutput(backend, {
        name: 'MixMaskBnGradInput',
        key: `mixmaskBnGradInput_${!!relu}_${!!residual}_${WG}`,
        wgsl: () => gradInputWgsl(!!relu, !!residual),
        outputs: residual ? [vector(x.shape), vector(x.shape)] : [vector(x.shape)],
        inputs: relu ? [dy, x, mean, coef, y] : [dy, x, mean, coef],
        uniforms: ints(size, C, rowsPerGroup * C, groups * C),
        dispatch: elementwiseGrid(backend, FUSED_BATCH_NORM_GRAD_KERNEL, size),
      });
      return [dx, dScale, dOffset, ...dResidual];
    } finally {
      backend.disposeData(coef.dataId);
    }
  } finally {
    backend.disposeData(partials.dataId);
  }
}

function runningStats(args: KernelArgs): tf.TensorInfo[] {
  const backend = args.backend as WebgpuBackendLike;
  const inputs = args.inputs as unknown as RunningStatsInputs;
  const attrs = args.attrs as unknown as RunningStatsAttrs;
  const { channels: C, groups } = checkRunningStats(inputs, attrs);
  const { keep, meanWeight, varWeight } = runningStatsCoefficients(attrs);
  return runMultiOutput(backend, {
    name: 'MixMaskBnRunningStats',
    key: `mixmaskBnRunningStats_${WG}`,
    wgsl: () => RUNNING_STATS_WGSL,
    outputs: [vector([C]), vector([C]), { shape: [], dtype: 'int32' }],
    inputs: [inputs.runningMean, inputs.runningVar, inputs.numBatchesTracked, inputs.mean, inputs.variance],
    uniforms: [...ints(C, groups), ...[keep, meanWeight, varWeight].map((v): Uniform => ({ type: 'float32', data: [v] }))],
    dispatch: channelDispatch(backend, BATCH_NORM_RUNNING_STATS_KERNEL, C),
  });
}

/** Registers the fused BatchNorm kernels, the (shared) gradient and the running-statistics kernel for webgpu. Idempotent. */
export function installFusedBatchNorm(): void {
  if (installed) return;
  addKernel(FUSED_BATCH_NORM_KERNEL, batchNormTrain);
  addKernel(FUSED_BATCH_NORM_GRAD_KERNEL, batchNormTrainGrad);
  addKernel(BATCH_NORM_RUNNING_STATS_KERNEL, runningStats);
  const kernels = { forward: batchNormTrain as unknown as tf.KernelFunc, grad: batchNormTrainGrad as unknown as tf.KernelFunc };
  declareGroupedBatchNorm('webgpu', kernels);
  declareResidualBatchNorm('webgpu', kernels);
  registerFusedBatchNormGradient();
  installed = true;
}
