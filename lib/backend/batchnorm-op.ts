import * as tf from '@tensorflow/tfjs';

/**
 * Batch normalisation in training mode, optionally followed by ReLU.
 *
 * A backend may register a fused kernel (and its gradient) under `FUSED_BATCH_NORM_KERNEL`;
 * when the active backend has it, the backbones use it, otherwise they fall back to the
 * composite tfjs ops below. The contract of the fused kernel:
 *   inputs  { x: [..., C], scale: [C], offset: [C] }
 *   attrs   { varianceEpsilon: number, relu: boolean }
 *   outputs [ y (shape of x), mean [C], variance [C] (biased, i.e. divided by N) ]
 * Only `y` carries a gradient; `mean` and `variance` feed the running statistics.
 */
export const FUSED_BATCH_NORM_KERNEL = 'MixMaskFusedBatchNormTrain';

/**
 * The fused kernel's gradient, which a backend registering the kernel registers too:
 *   inputs  { dy, x, y, mean, variance, scale } (y, mean, variance: the forward's outputs)
 *   attrs   as the forward's
 *   outputs [ dx, dScale [C], dOffset [C] ]
 * With g = dy·[y > 0] (ReLU) or dy, x̂ = (x − mean)/√(variance + ε), M elements per channel:
 *   dOffset = Σ g,  dScale = Σ g·x̂,  dx = scale/√(variance + ε) · (g − (dOffset + x̂·dScale)/M).
 */
export const FUSED_BATCH_NORM_GRAD_KERNEL = 'MixMaskFusedBatchNormTrainGrad';

/**
 * Registers the fused kernel's gradient (for every backend: it runs FUSED_BATCH_NORM_GRAD_KERNEL
 * on the active one). Idempotent; each backend that registers the kernel calls it.
 */
export function registerFusedBatchNormGradient(): void {
  if (tf.getGradient(FUSED_BATCH_NORM_KERNEL)) return;
  tf.registerGradient({
    kernelName: FUSED_BATCH_NORM_KERNEL,
    inputsToSave: ['x', 'scale'],
    outputsToSave: [true, true, true],
    gradFunc: (dys, saved, attrs) => {
      const dy = (Array.isArray(dys) ? dys[0] : dys) as tf.Tensor;
      const [x, scale, y, mean, variance] = saved;
      const a = attrs as unknown as { varianceEpsilon: number; relu: boolean };
      const [dx, dScale, dOffset] = tf.engine().runKernel(
        FUSED_BATCH_NORM_GRAD_KERNEL,
        { dy, x, y, mean, variance, scale } as unknown as tf.NamedTensorMap,
        { varianceEpsilon: a.varianceEpsilon, relu: a.relu } as unknown as tf.NamedAttrMap,
      ) as tf.Tensor[];
      return { x: () => dx, scale: () => dScale, offset: () => dOffset };
    },
  });
}

export interface BatchNormTrainResult {
  y: tf.Tensor;
  mean: tf.Tensor1D;
  variance: tf.Tensor1D;
}

export function hasFusedBatchNorm(): boolean {
  return tf.getKernel(FUSED_BATCH_NORM_KERNEL, tf.getBackend()) !== undefined;
}

export function batchNormTrain(
  x: tf.Tensor,
  scale: tf.Tensor1D,
  offset: tf.Tensor1D,
  varianceEpsilon: number,
  relu: boolean,
): BatchNormTrainResult {
  if (hasFusedBatchNorm()) {
    const [y, mean, variance] = tf.engine().runKernel(
      FUSED_BATCH_NORM_KERNEL,
      { x, scale, offset } as unknown as tf.NamedTensorMap,
      { varianceEpsilon, relu } as unknown as tf.NamedAttrMap,
    ) as tf.Tensor[];
    return { y, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
  }
  return batchNormTrainComposite(x, scale, offset, varianceEpsilon, relu);
}

/** Reference implementation from stock tfjs ops (also the fallback on every backend). */
export function batchNormTrainComposite(
  x: tf.Tensor,
  scale: tf.Tensor1D,
  offset: tf.Tensor1D,
  varianceEpsilon: number,
  relu: boolean,
): BatchNormTrainResult {
  const axes = x.shape.slice(0, -1).map((_, i) => i);
  const { mean, variance } = tf.moments(x, axes);
  const inv = tf.mul(tf.rsqrt(tf.add(variance, varianceEpsilon)), scale);
  const normed = tf.add(tf.mul(tf.sub(x, mean), inv), offset);
  const y = relu ? tf.relu(normed) : normed;
  return { y, mean: mean as tf.Tensor1D, variance: variance as tf.Tensor1D };
}

/**
 * BatchNorm's running statistics after one training batch, as one kernel call (PyTorch
 * semantics, momentum m, n = `count` elements per channel in the batch):
 *   inputs  { runningMean [C], runningVar [C], numBatchesTracked [] (int32), mean [C], variance [C] }
 *           (mean, variance: the batch's, as FUSED_BATCH_NORM_KERNEL returns them, variance biased)
 *   attrs   { momentum: number in [0, 1], count: integer ≥ 1 }
 *   outputs [ runningMean' = (1 − m)·runningMean + m·mean,
 *             runningVar'  = (1 − m)·runningVar + m·n/(n − 1)·variance  (n/(n − 1) → 1 when n = 1),
 *             numBatchesTracked' = numBatchesTracked + 1 (int32) ]
 * Outputs are new tensors (the caller assigns them to its buffers). A training step updates the
 * running statistics of every BatchNorm call, so this is one dispatch where it was three
 * (two EMA updates and an add); backends compute it from `runningStatsCoefficients`.
 */
export const BATCH_NORM_RUNNING_STATS_KERNEL = 'MixMaskBatchNormRunningStats';

export interface RunningStatsInputs {
  runningMean: tf.TensorInfo;
  runningVar: tf.TensorInfo;
  numBatchesTracked: tf.TensorInfo;
  mean: tf.TensorInfo;
  variance: tf.TensorInfo;
}

export interface RunningStatsAttrs {
  momentum: number;
  count: number;
}

/**
 * Throws, naming the operand or attribute, unless the running-statistics operands are as the
 * contract says; returns C.
 */
export function checkRunningStats(inputs: RunningStatsInputs, attrs: RunningStatsAttrs): number {
  const k = BATCH_NORM_RUNNING_STATS_KERNEL;
  for (const name of ['runningMean', 'runningVar', 'numBatchesTracked', 'mean', 'variance'] as const) {
    if (inputs[name] === undefined) throw new Error(`${k}: input ${name} is missing`);
  }
  const C = inputs.runningMean.shape[0];
  for (const name of ['runningMean', 'runningVar', 'mean', 'variance'] as const) {
    const t = inputs[name];
    if (t.dtype !== 'float32') throw new Error(`${k}: ${name} must be float32, got ${t.dtype}`);
    if (t.shape.length !== 1 || t.shape[0] !== C) throw new Error(`${k}: ${name} has shape [${t.shape}], expected [${C}] (runningMean's channels)`);
  }
  if (C === 0) throw new Error(`${k}: runningMean has no channels`);
  const nbt = inputs.numBatchesTracked;
  if (nbt.dtype !== 'int32' || nbt.shape.length !== 0) throw new Error(`${k}: numBatchesTracked must be an int32 scalar, got ${nbt.dtype} of shape [${nbt.shape}]`);
  const { momentum, count } = attrs;
  if (!(typeof momentum === 'number' && momentum >= 0 && momentum <= 1)) throw new Error(`${k}: momentum must be a number in [0, 1], got ${momentum}`);
  if (!(Number.isInteger(count) && count >= 1)) throw new Error(`${k}: count (elements per channel in the batch) must be an integer ≥ 1, got ${count}`);
  return C;
}

/**
 * running' = keep·running + weight·batch, per statistic. In float64 here (1 − f32(m) would round
 * m first); each backend rounds these once to its precision.
 */
export function runningStatsCoefficients(attrs: RunningStatsAttrs): { keep: number; meanWeight: number; varWeight: number } {
  const { momentum: m, count: n } = attrs;
  return { keep: 1 - m, meanWeight: m, varWeight: n > 1 ? (m * n) / (n - 1) : m };
}

export function hasRunningStatsKernel(): boolean {
  return tf.getKernel(BATCH_NORM_RUNNING_STATS_KERNEL, tf.getBackend()) !== undefined;
}

/**
 * The new [runningMean, runningVar, numBatchesTracked] (contract above): the active backend's
 * kernel where it registers one, else the same formula in tfjs ops.
 */
export function batchNormRunningStats(inputs: { runningMean: tf.Tensor; runningVar: tf.Tensor; numBatchesTracked: tf.Tensor; mean: tf.Tensor; variance: tf.Tensor }, attrs: RunningStatsAttrs): [tf.Tensor1D, tf.Tensor1D, tf.Scalar] {
  checkRunningStats(inputs, attrs);
  if (hasRunningStatsKernel()) {
    return tf.engine().runKernel(BATCH_NORM_RUNNING_STATS_KERNEL, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as [tf.Tensor1D, tf.Tensor1D, tf.Scalar];
  }
  const { keep, meanWeight, varWeight } = runningStatsCoefficients(attrs);
  return tf.tidy(() => [
    tf.add(tf.mul(inputs.runningMean, keep), tf.mul(inputs.mean, meanWeight)) as tf.Tensor1D,
    tf.add(tf.mul(inputs.runningVar, keep), tf.mul(inputs.variance, varWeight)) as tf.Tensor1D,
    tf.add(inputs.numBatchesTracked, tf.scalar(1, 'int32')) as tf.Scalar,
  ]);
}
