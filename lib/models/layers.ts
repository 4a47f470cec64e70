import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng';
import { Module } from './module';
import { batchNormRunningStats, batchNormTrain } from '../backend/batchnorm-op';
import { convBnEval } from '../backend/conv-bn-op';

/**
 * 2-D convolution on NHWC tensors with HWIO weights and explicit symmetric zero padding,
 * exactly as torch.nn.Conv2d pads (tfjs 'same' would pad (0, 1) at stride 2, PyTorch (1, 1)).
 */
export class Conv2d extends Module {
  readonly weight: tf.Variable;

  constructor(
    readonly inChannels: number,
    readonly outChannels: number,
    readonly kernelSize: number,
    readonly stride: number,
    readonly padding: number,
    rng: Rng,
  ) {
    super();
    // Kaiming normal, fan_out, ReLU gain — torchvision's ResNet initialisation.
    const std = Math.sqrt(2 / (outChannels * kernelSize * kernelSize));
    const values = rng.fillNormal(new Float32Array(kernelSize * kernelSize * inChannels * outChannels), 0, std);
    this.weight = this.addParameter('weight', tf.tensor4d(values, [kernelSize, kernelSize, inChannels, outChannels]));
  }

  apply(x: tf.Tensor4D): tf.Tensor4D {
    return tf.conv2d(x, this.weight as tf.Tensor4D, this.stride, this.padding);
  }
}

export interface BatchNormOptions {
  eps?: number;
  /** PyTorch convention: running = (1 − momentum)·running + momentum·batch. */
  momentum?: number;
  /** Learnable scale and offset (false for SimSiam's projector output). */
  affine?: boolean;
}

/**
 * BatchNorm over the last (channel) axis for rank-2 and rank-4 inputs, with PyTorch semantics:
 * batch statistics in training (biased variance to normalise, unbiased for the running
 * variance), running statistics in evaluation.
 *
 * `groups` (training only) cuts the batch into that many equal contiguous parts, each
 * normalised with its own statistics and each updating the running statistics in turn, exactly
 * as that many separate calls on the parts would: MoCo's shuffle-BN runs its key encoder once
 * over the whole batch this way. In evaluation every sample is normalised on its own anyway.
 *
 * `residual` (x's shape): y = act(BN(x) + residual), the end of a ResNet block, which training
 * runs as one kernel where the backend has it (batchnorm-op.ts; else BN, Add, Relu as tfjs ops).
 */
export class BatchNorm extends Module {
  readonly weight: tf.Variable | null;
  readonly bias: tf.Variable | null;
  readonly runningMean: tf.Variable;
  readonly runningVar: tf.Variable;
  readonly numBatchesTracked: tf.Variable;
  readonly eps: number;
  readonly momentum: number;
  private readonly ones: tf.Tensor1D | null;
  private readonly zeros: tf.Tensor1D | null;

  constructor(readonly channels: number, opts: BatchNormOptions = {}) {
    super();
    this.eps = opts.eps ?? 1e-5;
    this.momentum = opts.momentum ?? 0.1;
    const affine = opts.affine ?? true;
    this.weight = affine ? this.addParameter('weight', tf.ones([channels])) : null;
    this.bias = affine ? this.addParameter('bias', tf.zeros([channels])) : null;
    this.runningMean = this.addBuffer('running_mean', tf.zeros([channels]));
    this.runningVar = this.addBuffer('running_var', tf.ones([channels]));
    this.numBatchesTracked = this.addBuffer('num_batches_tracked', tf.scalar(0, 'int32'));
    this.ones = affine ? null : tf.keep(tf.ones([channels]) as tf.Tensor1D);
    this.zeros = affine ? null : tf.keep(tf.zeros([channels]) as tf.Tensor1D);
  }

  apply<T extends tf.Tensor>(x: T, training: boolean, relu = false, groups = 1, residual?: tf.Tensor): T {
    const { scale, offset } = this.affineParameters();
    if (!training) {
      const normed = tf.batchNorm(x, this.runningMean as tf.Tensor1D, this.runningVar as tf.Tensor1D, offset, scale, this.eps);
      const y = residual ? tf.add(normed, residual) : normed;
      return (relu ? tf.relu(y) : y) as T;
    }
    const { y, mean, variance } = batchNormTrain(x, scale, offset, this.eps, relu, { groups, residual });
    this.updateRunningStats(mean, variance, x.size / this.channels / groups);
    return y as T;
  }

  /** γ and β: the learnable scale and offset, or ones and zeros without them (affine: false). */
  affineParameters(): { scale: tf.Tensor1D; offset: tf.Tensor1D } {
    return { scale: (this.weight ?? this.ones) as tf.Tensor1D, offset: (this.bias ?? this.zeros) as tf.Tensor1D };
  }

  private updateRunningStats(mean: tf.Tensor, variance: tf.Tensor, count: number): void {
    // running ← (1 − m)·running + m·batch (unbiased batch variance), num_batches_tracked + 1, once
    // per group ([G, C] statistics; count: elements per channel of a group): one kernel call
    // where the backend registers it (batchnorm-op.ts).
    tf.tidy(() => {
      const [runningMean, runningVar, tracked] = batchNormRunningStats(
        { runningMean: this.runningMean, runningVar: this.runningVar, numBatchesTracked: this.numBatchesTracked, mean, variance },
        { momentum: this.momentum, count },
      );
      this.runningMean.assign(runningMean);
      this.runningVar.assign(runningVar);
      this.numBatchesTracked.assign(tracked);
    });
  }

  override dispose(): void {
    super.dispose();
    this.ones?.dispose();
    this.zeros?.dispose();
  }
}

/**
 * conv → BatchNorm (+ residual) (→ ReLU). In training, the two layers as they are. In evaluation BN is an
 * affine map per output channel, folded into the convolution — weights × γ/√(σ²+ε), then
 * + β − μ·γ/√(σ²+ε) — one evaluation-mode layer (lib/backend/conv-bn-op.ts): on wasm+onednn the
 * folding, the convolution, the residual and the ReLU are one native call, elsewhere tfjs ops
 * around one tf.fused.conv2d (tfjs's stand-alone BatchNorm kernel costs as much as the convolution).
 * `bnGroups`: BatchNorm's groups in training (see BatchNorm). `residual` (the output's shape):
 * added after BatchNorm, before the ReLU (a ResNet block's identity path; see BatchNorm).
 */
export function convBn(conv: Conv2d, bn: BatchNorm, x: tf.Tensor4D, training: boolean, relu = false, bnGroups = 1, residual?: tf.Tensor4D): tf.Tensor4D {
  if (training) return bn.apply(conv.apply(x), true, relu, bnGroups, residual);
  const { scale, offset } = bn.affineParameters();
  return convBnEval(
    { x, filter: conv.weight as tf.Tensor4D, scale, offset, mean: bn.runningMean as tf.Tensor1D, variance: bn.runningVar as tf.Tensor1D, residual },
    { strides: conv.stride, pad: conv.padding, varianceEpsilon: bn.eps, relu },
  );
}

/** Fully connected layer, weight [in, out]; PyTorch's default initialisation. */
export class Linear extends Module {
  readonly weight: tf.Variable;
  readonly bias: tf.Variable | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, rng: Rng, withBias = true) {
    super();
    const bound = 1 / Math.sqrt(inFeatures);
    const w = rng.fillUniform(new Float32Array(inFeatures * outFeatures), -bound, bound);
    this.weight = this.addParameter('weight', tf.tensor2d(w, [inFeatures, outFeatures]));
    this.bias = withBias
      ? this.addParameter('bias', tf.tensor1d(rng.fillUniform(new Float32Array(outFeatures), -bound, bound)))
      : null;
  }

  apply(x: tf.Tensor2D): tf.Tensor2D {
    const y = tf.matMul(x, this.weight as tf.Tensor2D) as tf.Tensor2D;
    return this.bias ? (tf.add(y, this.bias) as tf.Tensor2D) : y;
  }
}
