import * as tf from '@tensorflow/tfjs';
import { ensureBackend } from '../backend';
import { rawToBatch } from '../data/pipeline';
import { augmentView, testTransform, type AugmentSpec, type Recipe } from '../data/recipes';
import type { Dataset, RawBatch } from '../data/types';
import { Linear } from '../models/layers';
import type { ResNet } from '../models/resnet';
import { Rng } from '../util/rng';
import { checkInt, checkNumber, countTopK, defaultTransform, type EvalTransform, percent, type ProgressFn, resolveMilestones, stopIfAborted } from './common';
import { extractFeatures } from './features';
import { Sgd, stepFactor } from '../optim';
import { labelSubset } from './subsets';

/**
 * Semi-supervised (1 % / 10 % of the labels) and supervised (100 %) fine-tuning, Table 3: the
 * whole backbone plus a new linear classifier trained end to end with SGD, momentum 0.9,
 * separate backbone / classifier learning rates, batch 256, 20 epochs, lr × 0.1 at epochs 12
 * and 16, weight decay 0, on a class-balanced label subset of the training split.
 */
export type FinetuneProtocol = 'semi1' | 'semi10' | 'finetune';

export const FINETUNE_PRESETS: Record<FinetuneProtocol, { fraction: number; backboneLr: number; classifierLr: number }> = {
  semi1: { fraction: 0.01, backboneLr: 0.002, classifierLr: 0.5 },
  semi10: { fraction: 0.1, backboneLr: 0.002, classifierLr: 0.5 },
  finetune: { fraction: 1, backboneLr: 0.001, classifierLr: 0.05 },
};

export const FINETUNE_DEFAULTS = {
  epochs: 20,
  milestones: [12, 16] as readonly number[],
  gamma: 0.1,
  momentum: 0.9,
  weightDecay: 0,
  batchSize: 256,
  /** RandomResizedCrop scale and horizontal flip of the training images (the usual fine-tuning augmentation). */
  cropScale: [0.08, 1] as readonly [number, number],
  flipProb: 0.5,
} as const;

export interface FineTuneOptions {
  train: Dataset;
  test: Dataset;
  protocol: FinetuneProtocol;
  /** Share of labelled training samples (overrides the protocol's 1 % / 10 % / 100 %). */
  fraction?: number;
  /** Seed of the class-balanced label subset (default 0: the same subset for every method). */
  subsetSeed?: number;
  /** Labelled training samples to use instead of the class-balanced draw. */
  trainIndices?: ArrayLike<number>;
  testIndices?: ArrayLike<number>;
  backboneLr?: number;
  classifierLr?: number;
  /** Default 20 (Table 3). */
  epochs?: number;
  /** Default [12, 16] scaled to `epochs`. */
  milestones?: number[];
  gamma?: number;
  momentum?: number;
  weightDecay?: number;
  batchSize?: number;
  /** Seed of the classifier init, batch order and augmentation (default 0). */
  seed?: number;
  transform?: Partial<EvalTransform>;
  /** Training augmentation (random resized crop + flip), or false for the test transform only. */
  augment?: { cropScale?: [number, number]; flipProb?: number } | false;
  /** Images per forward pass when evaluating (default 256). */
  evalBatchSize?: number;
  onProgress?: ProgressFn;
  /** Stops at the next batch with an InterruptedError once aborted (the backbone keeps the steps done so far). */
  signal?: AbortSignal;
}

export interface FineTuneResult {
  top1: number;
  top5: number;
  /** Test samples evaluated. */
  n: number;
  protocol: FinetuneProtocol;
  fraction: number;
  labelledSamples: number;
  /** Per-class count of the balanced subset (null when trainIndices was given). */
  perClass: number | null;
  epochs: number;
  milestones: number[];
  backboneLr: number;
  classifierLr: number;
  batchSize: number;
  lossHistory: number[];
}

/** Whether the active backend can train convolutions (stock tfjs-backend-wasm 4.22 cannot). */
export function canTrainConvolutions(): boolean {
  return tf.getKernel('Conv2DBackpropFilter', tf.getBackend()) !== undefined;
}

/**
 * Fine-tunes `backbone` in place (load a fresh copy per protocol) with a new linear classifier
 * and returns the test top-1 / top-5 of backbone + classifier in eval mode.
 */
export async function fineTune(backbone: ResNet, opts: FineTuneOptions): Promise<FineTuneResult> {
  await ensureBackend(); // never the plain-JavaScript fallback without a word
  if (!opts || !opts.train || !opts.test) throw new Error('fineTune: options train and test (datasets) are required');
  const preset = FINETUNE_PRESETS[opts.protocol];
  if (!preset) throw new Error(`option protocol must be one of ${Object.keys(FINETUNE_PRESETS).join(', ')}, got '${String(opts.protocol)}'`);
  const d = FINETUNE_DEFAULTS;
  const epochs = opts.epochs ?? d.epochs;
  checkInt('epochs', epochs, 0);
  const milestones = resolveMilestones('milestones', opts.milestones, epochs, d.milestones, d.epochs);
  const gamma = opts.gamma ?? d.gamma;
  checkNumber('gamma', gamma, { positive: true });
  const backboneLr = opts.backboneLr ?? preset.backboneLr;
  const classifierLr = opts.classifierLr ?? preset.classifierLr;
  checkNumber('backboneLr', backboneLr, { min: 0 });
  checkNumber('classifierLr', classifierLr, { min: 0 });
  const batchSize = opts.batchSize ?? d.batchSize;
  checkInt('batchSize', batchSize, 2);
  const fraction = opts.fraction ?? preset.fraction;
  const transform = defaultTransform(opts.train, opts.transform);
  if (opts.train.numClasses !== opts.test.numClasses) {
    throw new Error(`fineTune: train ${opts.train.name} has ${opts.train.numClasses} classes, test ${opts.test.name} has ${opts.test.numClasses}`);
  }
  const numClasses = opts.train.numClasses;
  if (epochs > 0 && !canTrainConvolutions()) {
    throw new Error(
      `fineTune: backend '${tf.getBackend()}' has no Conv2DBackpropFilter kernel (convolution weight gradients), ` +
        'so the backbone cannot be fine-tuned on it; use a backend that trains (see lib/backend), or the linear protocol',
    );
  }

  let labelled: Int32Array;
  let perClass: number | null = null;
  if (opts.trainIndices) {
    labelled = Int32Array.from(opts.trainIndices);
    if (labelled.length === 0) throw new Error('option trainIndices is empty');
  } else {
    const sub = labelSubset(opts.train, { fraction, seed: opts.subsetSeed ?? 0 });
    labelled = sub.indices;
    perClass = sub.perClass;
  }

  let augment: { spec: AugmentSpec; recipe: Recipe } | null = null;
  if (opts.augment !== false) {
    const cropScale = opts.augment?.cropScale ?? d.cropScale;
    if (!(cropScale.length === 2 && cropScale[0] > 0 && cropScale[0] <= cropScale[1] && cropScale[1] <= 1)) {
      throw new Error(`option augment.cropScale must be [lo, hi] with 0 < lo ≤ hi ≤ 1, got [${cropScale.join(', ')}]`);
    }
    const flipProb = opts.augment?.flipProb ?? d.flipProb;
    checkNumber('augment.flipProb', flipProb, { min: 0 });
    const spec: AugmentSpec = { crop: { scale: [cropScale[0], cropScale[1]], ratio: [3 / 4, 4 / 3] }, flipProb, jitter: null, grayscaleProb: 0, blur: null, solarizeProb: 0 };
    augment = { spec, recipe: { name: 'finetune', size: transform.size, views: [spec, spec], normalize: transform.normalize, jitterOrder: 'fixed' } };
  }

  const rng = new Rng(opts.seed ?? 0);
  const classifier = new Linear(backbone.featureDim, numClasses, rng.fork());
  const opt = new Sgd(
    [
      { params: backbone.trainableVariables(), lr: backboneLr },
      { params: classifier.trainableVariables(), lr: classifierLr },
    ],
    { momentum: opts.momentum ?? d.momentum, weightDecay: opts.weightDecay ?? d.weightDecay },
  );
  const lossHistory: number[] = [];
  try {
    for (let epoch = 0; epoch < epochs; epoch++) {
      opt.lrFactor = stepFactor(epoch, milestones, gamma);
      const order = rng.permutation(labelled.length);
      const batches: Int32Array[] = [];
      for (let s = 0; s < order.length; s += batchSize) {
        const b = order.subarray(s, Math.min(s + batchSize, order.length));
        // Training-mode BatchNorm needs ≥ 2 samples; a last batch of one is dropped.
        if (b.length >= 2) batches.push(Int32Array.from(b, (i) => labelled[i]));
      }
      if (batches.length === 0) throw new Error(`fineTune: ${labelled.length} labelled sample(s): too few for one batch of ≥ 2`);
      let lossSum = 0;
      let seen = 0;
      let pending: Promise<RawBatch> = opts.train.read(batches[0]);
      for (let bi = 0; bi < batches.length; bi++) {
        const raw = await pending;
        stopIfAborted(opts.signal, 'fine-tuning', `at epoch ${epoch + 1} of ${epochs} (batch ${bi + 1} of ${batches.length})`,
          'the backbone keeps the steps done so far: rebuild or reload it, then re-run the cell');
        if (bi + 1 < batches.length) {
          pending = opts.train.read(batches[bi + 1]);
          pending.catch(() => undefined);
        }
        const lossT = tf.tidy(() => {
          const b = rawToBatch(raw);
          const x = augment ? augmentView(b.images, augment.spec, augment.recipe, rng) : testTransform(b.images, transform);
          const y = tf.oneHot(b.labels, numClasses);
          const { value, grads } = tf.variableGrads(
            () => tf.losses.softmaxCrossEntropy(y, classifier.apply(backbone.apply(x, true))) as tf.Scalar,
            opt.variables(),
          );
          opt.step(grads);
          return value;
        });
        const loss = (await lossT.data())[0];
        lossT.dispose();
        if (!Number.isFinite(loss)) throw new Error(`fineTune: the loss diverged at epoch ${epoch + 1}; lower backboneLr / classifierLr`);
        lossSum += loss * raw.n;
        seen += raw.n;
        opts.onProgress?.({ task: 'finetune', phase: 'train', done: bi + 1, total: batches.length, epoch: epoch + 1, epochs, loss: lossSum / seen });
      }
      lossHistory.push(lossSum / seen);
    }
    // Evaluate backbone + classifier in eval mode: the logits are the "features" of extractFeatures.
    const logits = await extractFeatures((x) => classifier.apply(backbone.apply(x, false)), opts.test, {
      batchSize: opts.evalBatchSize ?? 256,
      transform,
      indices: opts.testIndices,
      onProgress: opts.onProgress,
      phase: 'test',
      signal: opts.signal,
    });
    const [c1, c5] = countTopK(logits.data, numClasses, logits.labels, [1, 5]);
    return {
      top1: percent(c1, logits.n),
      top5: percent(c5, logits.n),
      n: logits.n,
      protocol: opts.protocol,
      fraction,
      labelledSamples: labelled.length,
      perClass,
      epochs,
      milestones,
      backboneLr,
      classifierLr,
      batchSize,
      lossHistory,
    };
  } finally {
    opt.dispose();
    classifier.dispose();
  }
}
