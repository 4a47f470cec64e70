import * as tf from '@tensorflow/tfjs';
import type { Dataset } from '../data/types';
import { l2Normalize } from '../losses';
import { Linear } from '../models/layers';
import type { ResNet } from '../models/resnet';
import { Rng } from '../util/rng';
import { checkInt, checkNumber, countTopK, maxOf, type EvalTransform, percent, type ProgressFn, resolveMilestones, stopIfAborted } from './common';
import { extractFeatures, type FeatureFn, type LabelledFeatures } from './features';
import { Sgd, stepFactor } from '../optim';

/**
 * Linear probe on a frozen backbone (Table 2 protocol: SGD lr 30, momentum 0.9, weight decay 0,
 * 100 epochs, lr × 0.1 at epochs 60 and 80, batch 256). The backbone is frozen and in eval
 * mode, so its features are computed once and the linear layer trains on them — the same
 * optimisation as MoCo's lincls without its random-crop augmentation of the training images
 * (recomputing the backbone every epoch would cost 100 forward passes over the train set).
 */
export const LINEAR_PROBE_DEFAULTS = {
  epochs: 100,
  milestones: [60, 80] as readonly number[],
  gamma: 0.1,
  lr: 30,
  momentum: 0.9,
  weightDecay: 0,
  batchSize: 256,
} as const;

export interface LinearTrainOptions {
  /** Default 100 (Table 2). */
  epochs?: number;
  /** Epochs at which lr is multiplied by gamma; default [60, 80] scaled to `epochs`. */
  milestones?: number[];
  gamma?: number;
  /** Default 30 (Table 2). */
  lr?: number;
  momentum?: number;
  weightDecay?: number;
  batchSize?: number;
  /** Seed of the classifier init and the batch order (default 0). */
  seed?: number;
  /** L2-normalise features before the classifier (default false, as lincls). */
  l2Normalize?: boolean;
  /** Classes (default 1 + the largest training label). */
  numClasses?: number;
  onProgress?: ProgressFn;
  /** Stops at the next batch (features) or step (training) with an InterruptedError once aborted. */
  signal?: AbortSignal;
}

export interface LinearResult {
  top1: number;
  top5: number;
  /** Test samples evaluated. */
  n: number;
  trainSamples: number;
  epochs: number;
  milestones: number[];
  lr: number;
  /** Mean training loss per epoch. */
  lossHistory: number[];
  /** Training-set top-1 (%) with the final classifier. */
  trainTop1: number;
}

/** Top-1/top-5 counts of a linear classifier on features. */
async function evalLinear(layer: Linear, x: tf.Tensor2D, labels: Int32Array, numClasses: number): Promise<[number, number]> {
  const logits = tf.tidy(() => layer.apply(x));
  try {
    return countTopK((await logits.data()) as Float32Array, numClasses, labels, [1, 5]) as [number, number];
  } finally {
    logits.dispose();
  }
}

/** Trains a linear classifier on precomputed features and reports its test accuracy. */
export async function trainLinearOnFeatures(train: LabelledFeatures, test: LabelledFeatures, opts: LinearTrainOptions = {}): Promise<LinearResult> {
  const d = LINEAR_PROBE_DEFAULTS;
  const epochs = opts.epochs ?? d.epochs;
  checkInt('epochs', epochs, 1);
  const milestones = resolveMilestones('milestones', opts.milestones, epochs, d.milestones, d.epochs);
  const gamma = opts.gamma ?? d.gamma;
  checkNumber('gamma', gamma, { positive: true });
  const lr = opts.lr ?? d.lr;
  checkNumber('lr', lr, { positive: true });
  const batchSize = opts.batchSize ?? d.batchSize;
  checkInt('batchSize', batchSize, 1);
  const seed = opts.seed ?? 0;
  if (train.dim !== test.dim) throw new Error(`linear probe: train features have dim ${train.dim}, test ${test.dim}`);
  if (train.n === 0 || test.n === 0) throw new Error('linear probe: empty train or test features');
  const maxLabel = Math.max(maxOf(train.labels), maxOf(test.labels));
  const numClasses = opts.numClasses ?? maxLabel + 1;
  checkInt('numClasses', numClasses, 1);
  if (maxLabel >= numClasses) throw new Error(`linear probe: label ${maxLabel} is out of range for numClasses = ${numClasses}`);

  const rng = new Rng(seed);
  const layer = new Linear(train.dim, numClasses, rng.fork());
  const opt = new Sgd([{ params: layer.trainableVariables(), lr }], { momentum: opts.momentum ?? d.momentum, weightDecay: opts.weightDecay ?? d.weightDecay });
  const prep = (f: LabelledFeatures): tf.Tensor2D =>
    tf.tidy(() => {
      const x = tf.tensor2d(f.data, [f.n, f.dim]);
      return opts.l2Normalize ? l2Normalize(x) : x;
    });
  const xTrain = prep(train);
  const yTrain = tf.tensor1d(train.labels, 'int32');
  const lossHistory: number[] = [];
  try {
    const steps = Math.ceil(train.n / batchSize);
    for (let epoch = 0; epoch < epochs; epoch++) {
      opt.lrFactor = stepFactor(epoch, milestones, gamma);
      const order = rng.permutation(train.n);
      let lossSum = 0;
      for (let s = 0; s < steps; s++) {
        stopIfAborted(opts.signal, 'linear probe', `at epoch ${epoch + 1} of ${epochs} (step ${s + 1} of ${steps})`);
        const idx = order.subarray(s * batchSize, Math.min((s + 1) * batchSize, train.n));
        const lossT = tf.tidy(() => {
          const ib = tf.tensor1d(idx, 'int32');
          const xb = tf.gather(xTrain, ib);
          const yb = tf.oneHot(tf.gather(yTrain, ib), numClasses);
          const { value, grads } = tf.variableGrads(() => tf.losses.softmaxCrossEntropy(yb, layer.apply(xb)) as tf.Scalar, opt.variables());
          opt.step(grads);
          return value;
        });
        lossSum += (await lossT.data())[0] * idx.length;
        lossT.dispose();
        if (!Number.isFinite(lossSum)) throw new Error(`linear probe: the loss diverged at epoch ${epoch + 1} (lr ${lr * opt.lrFactor}); lower option lr`);
      }
      lossHistory.push(lossSum / train.n);
      opts.onProgress?.({ task: 'linear', phase: 'train', done: epoch + 1, total: epochs, epoch: epoch + 1, epochs, loss: lossSum / train.n });
      // Yield to the event loop so progress displays can update between epochs.
      await new Promise((r) => setImmediate(r));
    }
    const [trainC1] = await evalLinear(layer, xTrain, train.labels, numClasses);
    const xTest = prep(test);
    let c1: number;
    let c5: number;
    try {
      [c1, c5] = await evalLinear(layer, xTest, test.labels, numClasses);
    } finally {
      xTest.dispose();
    }
    return { top1: percent(c1, test.n), top5: percent(c5, test.n), n: test.n, trainSamples: train.n, epochs, milestones, lr, lossHistory, trainTop1: percent(trainC1, train.n) };
  } finally {
    xTrain.dispose();
    yTrain.dispose();
    opt.dispose();
    layer.dispose();
  }
}

export interface LinearProbeOptions extends LinearTrainOptions {
  train: Dataset;
  test: Dataset;
  /** Images per forward pass of the feature extraction (default 256). */
  extractBatchSize?: number;
  transform?: Partial<EvalTransform>;
  /** Subset of the training split (e.g. quick runs); default all. */
  trainIndices?: ArrayLike<number>;
  testIndices?: ArrayLike<number>;
}

/** Linear probe of a frozen backbone: features once (eval mode, test transform), then trainLinearOnFeatures. */
export async function linearProbe(backbone: ResNet | FeatureFn, opts: LinearProbeOptions): Promise<LinearResult> {
  if (!opts || !opts.train || !opts.test) throw new Error('linearProbe: options train and test (datasets) are required');
  const ex = { batchSize: opts.extractBatchSize, transform: opts.transform, onProgress: opts.onProgress, signal: opts.signal };
  const train = await extractFeatures(backbone, opts.train, { ...ex, indices: opts.trainIndices, phase: 'train features' });
  const test = await extractFeatures(backbone, opts.test, { ...ex, indices: opts.testIndices, phase: 'test features' });
  return trainLinearOnFeatures(train, test, { ...opts, numClasses: opts.numClasses ?? opts.train.numClasses });
}
