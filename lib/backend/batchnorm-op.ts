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
