import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
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
import { alloc, f32, Info } from './wasm-ops';

/**
 * Training-mode BatchNorm (+ residual, + ReLU) as one kernel with a hand-written gradient (contract in
 * lib/backend/batchnorm-op.ts). The composite tfjs version records ~10 ops on the tape and keeps
 * each of their outputs alive until the backward pass; this one saves x, y and two [C] vectors,
 * and reads/writes each element twice per direction.
 *
 * Statistics are accumulated in float64, so the result is at least as accurate as the
 * float32 composite. With the contract's `groups`, each group of rows (contiguous) is one pass
 * of the same code over its part of the arrays. With the contract's residual, the forward adds
 * it before the ReLU in the same loop, and the gradient writes dResidual = g in the dx loop.
 */
export { FUSED_BATCH_NORM_GRAD_KERNEL };

function channels(shape: number[]): number {
  return shape[shape.length - 1];
}

/**
 * Per channel of [rows, C] data: Σ a·m and Σ a·b·m in float64, with m the ReLU mask from `bits`
 * (see the gradient) or 1. Four channels at a time over a tile of rows that stays in L1, so
 * the sums live in registers rather than in the Float64Arrays (about 2× faster, measured).
 */
function channelSums(a: Float32Array, b: Float32Array, bits: Int32Array | null, rows: number, C: number): [Float64Array, Float64Array] {
  const s1 = new Float64Array(C);
  const s2 = new Float64Array(C);
  if (C % 4 !== 0) {
    for (let p = 0, i = 0; p < rows; p++) {
      for (let c = 0; c < C; c++, i++) {
        const v = bits ? a[i] * (-bits[i] >>> 31) : a[i];
        s1[c] += v;
        s2[c] += v * b[i];
      }
    }
    return [s1, s2];
  }
  const tile = Math.max(1, Math.floor(4096 / C));
  for (let p0 = 0; p0 < rows; p0 += tile) {
    const p1 = Math.min(rows, p0 + tile);
    for (let c = 0; c < C; c += 4) {
      let a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
      if (bits) {
        for (let i = p0 * C + c, end = p1 * C; i < end; i += C) {
          const v0 = a[i] * (-bits[i] >>> 31), v1 = a[i + 1] * (-bits[i + 1] >>> 31);
          const v2 = a[i + 2] * (-bits[i + 2] >>> 31), v3 = a[i + 3] * (-bits[i + 3] >>> 31);
          a0 += v0; a1 += v1; a2 += v2; a3 += v3;
          b0 += v0 * b[i]; b1 += v1 * b[i + 1]; b2 += v2 * b[i + 2]; b3 += v3 * b[i + 3];
        }
      } else {
        for (let i = p0 * C + c, end = p1 * C; i < end; i += C) {
          const v0 = a[i], v1 = a[i + 1], v2 = a[i + 2], v3 = a[i + 3];
          a0 += v0; a1 += v1; a2 += v2; a3 += v3;
          b0 += v0 * b[i]; b1 += v1 * b[i + 1]; b2 += v2 * b[i + 2]; b3 += v3 * b[i + 3];
        }
      }
      s1[c] += a0; s1[c + 1] += a1; s1[c + 2] += a2; s1[c + 3] += a3;
      s2[c] += b0; s2[c + 1] += b1; s2[c + 2] += b2; s2[c + 3] += b3;
    }
  }
  return [s1, s2];
}

function fusedBatchNormTrain(args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }): Info[] {
  const backend = args.backend as BackendWasm;
  const { x, scale, offset, residual } = args.inputs as { x: Info; scale: Info; offset: Info; residual?: Info };
  const { varianceEpsilon, relu, groups: g, residual: hasResidual } = args.attrs as unknown as BatchNormKernelAttrs;
  const C = channels(x.shape);
  const groups = checkBatchNormGroups(`${FUSED_BATCH_NORM_KERNEL} on wasm`, x.shape, g);
  checkBatchNormResidual(`${FUSED_BATCH_NORM_KERNEL} on wasm`, x, residual, hasResidual);
  const y = alloc(backend, x.shape);
  const meanT = alloc(backend, batchNormStatsShape(groups, C));
  const varT = alloc(backend, batchNormStatsShape(groups, C));
  const xAll = f32(backend, x);
  const yAll = f32(backend, y);
  const sc = f32(backend, scale);
  const of = f32(backend, offset);
  const means = f32(backend, meanT);
  const vars = f32(backend, varT);
  const resAll = residual ? f32(backend, residual) : null;
  const rows = xAll.length / C / groups;
  const size = rows * C;
  for (let grp = 0; grp < groups; grp++) {
    const xs = xAll.subarray(grp * size, (grp + 1) * size);
    const ys = yAll.subarray(grp * size, (grp + 1) * size);
    const rs = resAll ? resAll.subarray(grp * size, (grp + 1) * size) : null;
    const [sum, sq] = channelSums(xs, xs, null, rows, C);
    // Float64 coefficients: y = (x − μ)·mul + offset keeps its precision when |μ| ≫ σ.
    const mu = new Float64Array(C);
    const mul = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      const m = sum[c] / rows;
      const v = Math.max(0, sq[c] / rows - m * m);
      means[grp * C + c] = m;
      vars[grp * C + c] = v;
      mu[c] = m;
      mul[c] = sc[c] / Math.sqrt(v + varianceEpsilon);
    }
    if (rs) {
      // The residual is added in float32, as the tfjs Add it replaces (y rounded, then + r, then ReLU).
      for (let p = 0, i = 0; p < rows; p++) {
        for (let c = 0; c < C; c++, i++) {
          const v = Math.fround(Math.fround((xs[i] - mu[c]) * mul[c] + of[c]) + rs[i]);
          ys[i] = relu ? (v + Math.abs(v)) * 0.5 : v;
        }
      }
    } else if (relu) {
      // ReLU without a branch: (v + |v|)/2 is exact, and activations are positive about half the
      // time, so `v > 0 ? v : 0` mispredicts on every other element (5× slower, measured).
      for (let p = 0, i = 0; p < rows; p++) {
        for (let c = 0; c < C; c++, i++) {
          const v = (xs[i] - mu[c]) * mul[c] + of[c];
          ys[i] = (v + Math.abs(v)) * 0.5;
        }
      }
    } else {
      for (let p = 0, i = 0; p < rows; p++) {
        for (let c = 0; c < C; c++, i++) ys[i] = (xs[i] - mu[c]) * mul[c] + of[c];
      }
    }
  }
  return [y, meanT, varT];
}

/**
 * With g = dy·[y > 0] (or dy), x̂ = (x − μ)/σ:
 *   d offset = Σ g,  d scale = Σ g·x̂,  dx = scale/σ · (g − (d offset + x̂ · d scale)/M)
 * where M is the number of rows (elements per channel).
 */
function fusedBatchNormTrainGrad(args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }): Info[] {
  const backend = args.backend as BackendWasm;
  const { dy, x, y, mean, variance, scale } = args.inputs as Record<string, Info>;
  const { varianceEpsilon, relu, groups: g, residual } = args.attrs as unknown as BatchNormKernelAttrs;
  const C = channels(x.shape);
  const groups = checkBatchNormGroups(`${FUSED_BATCH_NORM_GRAD_KERNEL} on wasm`, x.shape, g);
  checkBatchNormStats(`${FUSED_BATCH_NORM_GRAD_KERNEL} on wasm`, { mean, variance }, groups, C);
  const dx = alloc(backend, x.shape);
  const dScale = alloc(backend, [C]);
  const dOffset = alloc(backend, [C]);
  const dResidual = residual ? alloc(backend, x.shape) : null;
  const dyAll = f32(backend, dy);
  const xAll = f32(backend, x);
  // y ≥ +0 after the forward's ReLU, so its bits as int32 are > 0 exactly where the ReLU passed:
  // (−bits) >>> 31 is that 0/1 mask without a branch (see the forward).
  const yAll = relu ? f32(backend, y) : null;
  const bitsAll = yAll ? new Int32Array(yAll.buffer, yAll.byteOffset, yAll.length) : null;
  const mean32 = f32(backend, mean);
  const va = f32(backend, variance);
  const sc = f32(backend, scale);
  const dxAll = f32(backend, dx);
  const drAll = dResidual ? f32(backend, dResidual) : null;
  const rows = xAll.length / C / groups;
  const size = rows * C;
  // dScale and dOffset add up over the groups (in float64, rounded once).
  const dsSum = new Float64Array(C);
  const dofSum = new Float64Array(C);
  for (let grp = 0; grp < groups; grp++) {
    const part = <T extends Float32Array | Int32Array>(a: T): T => a.subarray(grp * size, (grp + 1) * size) as T;
    const dys = part(dyAll);
    const xs = part(xAll);
    const yBits = bitsAll ? part(bitsAll) : null;
    const dxs = part(dxAll);
    const drs = drAll ? part(drAll) : null;
    const [sg, sgx] = channelSums(dys, xs, yBits, rows, C);
    // dx = k·g − a·(x − μ) − b per channel, with float64 coefficients.
    const mu = new Float64Array(C);
    const k = new Float64Array(C);
    const a = new Float64Array(C);
    const b = new Float64Array(C);
    for (let c = 0; c < C; c++) {
      mu[c] = mean32[grp * C + c];
      const inv = 1 / Math.sqrt(va[grp * C + c] + varianceEpsilon);
      const dsc = (sgx[c] - mu[c] * sg[c]) * inv; // Σ g·x̂
      dsSum[c] += dsc;
      dofSum[c] += sg[c];
      const kc = sc[c] * inv;
      k[c] = kc;
      // k·x̂·dsc/M = (x − μ)·k·inv·dsc/M
      a[c] = (kc * inv * dsc) / rows;
      b[c] = kc * (sg[c] / rows);
    }
    if (drs) {
      // dResidual = g, written in the same loop.
      for (let p = 0, i = 0; p < rows; p++) {
        for (let c = 0; c < C; c++, i++) {
          const gv = yBits ? dys[i] * (-yBits[i] >>> 31) : dys[i];
          drs[i] = gv;
          dxs[i] = k[c] * gv - a[c] * (xs[i] - mu[c]) - b[c];
        }
      }
    } else if (yBits) {
      for (let p = 0, i = 0; p < rows; p++) {
        for (let c = 0; c < C; c++, i++) {
          const gv = dys[i] * (-yBits[i] >>> 31);
          dxs[i] = k[c] * gv - a[c] * (xs[i] - mu[c]) - b[c];
        }
      }
    } else {
      for (let p = 0, i = 0; p < rows; p++) {
        for (let c = 0; c < C; c++, i++) dxs[i] = k[c] * dys[i] - a[c] * (xs[i] - mu[c]) - b[c];
      }
    }
  }
  f32(backend, dScale).set(dsSum);
  f32(backend, dOffset).set(dofSum);
  return dResidual ? [dx, dScale, dOffset, dResidual] : [dx, dScale, dOffset];
}

/**
 * The running statistics after a batch (contract in lib/backend/batchnorm-op.ts): a loop over C
 * channels, far cheaper than the three tfjs kernel calls it replaces. Coefficients in float64,
 * each result rounded once to float32 — once per group for [G, C] statistics, as G
 * consecutive calls would.
 */
function runningStats(args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }): Info[] {
  const backend = args.backend as BackendWasm;
  const inputs = args.inputs as unknown as RunningStatsInputs;
  const attrs = args.attrs as unknown as RunningStatsAttrs;
  const { channels: C, groups } = checkRunningStats(inputs, attrs);
  const { keep, meanWeight, varWeight } = runningStatsCoefficients(attrs);
  const meanOut = alloc(backend, [C]);
  const varOut = alloc(backend, [C]);
  const trackedOut = backend.makeOutput([], 'int32');
  // Views after the allocations (see f32).
  const rm = f32(backend, inputs.runningMean);
  const rv = f32(backend, inputs.runningVar);
  const bm = f32(backend, inputs.mean);
  const bv = f32(backend, inputs.variance);
  const rm2 = f32(backend, meanOut);
  const rv2 = f32(backend, varOut);
  for (let c = 0; c < C; c++) {
    let m = rm[c];
    let v = rv[c];
    for (let g = 0; g < groups; g++) {
      m = Math.fround(keep * m + meanWeight * bm[g * C + c]);
      v = Math.fround(keep * v + varWeight * bv[g * C + c]);
    }
    rm2[c] = m;
    rv2[c] = v;
  }
  (backend.typedArrayFromHeap(trackedOut) as Int32Array)[0] = ((backend.typedArrayFromHeap(inputs.numBatchesTracked) as Int32Array)[0] + groups) | 0;
  return [meanOut, varOut, trackedOut];
}

/** Registers the fused BatchNorm kernels, the (shared) gradient and the running-statistics kernel for wasm. Idempotent. */
export function registerFusedBatchNorm(): void {
  for (const [kernelName, kernelFunc] of [
    [FUSED_BATCH_NORM_KERNEL, fusedBatchNormTrain],
    [FUSED_BATCH_NORM_GRAD_KERNEL, fusedBatchNormTrainGrad],
    [BATCH_NORM_RUNNING_STATS_KERNEL, runningStats],
  ] as const) {
    if (!tf.getKernel(kernelName, 'wasm')) {
      tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
    }
  }
  // These two implement groups and the residual; kernels registered later under the same names declare their own (lib/backend/onednn/kernels.ts).
  const kernels = { forward: fusedBatchNormTrain as unknown as tf.KernelFunc, grad: fusedBatchNormTrainGrad as unknown as tf.KernelFunc };
  declareGroupedBatchNorm('wasm', kernels);
  declareResidualBatchNorm('wasm', kernels);
  registerFusedBatchNormGradient();
}
