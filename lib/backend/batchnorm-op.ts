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
