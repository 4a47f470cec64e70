import * as tf from '@tensorflow/tfjs';
import { ensureBackend } from '../backend';
import { rawToBatch } from '../data/pipeline';
import { testTransform } from '../data/recipes';
import type { Dataset, RawBatch } from '../data/types';
import type { ResNet } from '../models/resnet';
import { checkInt, defaultTransform, stopIfAborted, type EvalTransform, type ProgressFn } from './common';

/** Row-major features in plain JS memory: n rows of `dim` floats (a 50k × 2048 bank is 400 MB, no tensor held). */
export interface FeatureSet {
  data: Float32Array;
  dim: number;
}

/** Features plus the labels of the same rows. */
export interface LabelledFeatures extends FeatureSet {
  n: number;
  labels: Int32Array;
}

export interface ExtractOptions {
  /** Images per forward pass (default 256): bounds memory; results do not depend on it in eval mode. */
  batchSize?: number;
  /** Resize/normalisation; default: the dataset's size, no normalisation. */
  transform?: Partial<EvalTransform>;
  /** Samples to extract, in this order (default: all). */
  indices?: ArrayLike<number>;
  onProgress?: ProgressFn;
  /** Phase name in progress events (default 'features'). */
  phase?: string;
  /** Stops at the next batch with an InterruptedError once aborted. */
  signal?: AbortSignal;
}

/** Anything mapping images [N,H,W,3] → features [N,D] in eval mode (a ResNet, or a test double). */
export type FeatureFn = (x: tf.Tensor4D) => tf.Tensor2D;

/** The backbone as a feature function: eval mode (BatchNorm running statistics, no state change). */
export function backboneFeatures(backbone: ResNet): FeatureFn {
  return (x) => backbone.apply(x, false);
}

/**
 * Pooled backbone features of a dataset, batch by batch, in eval mode with the test transform.
 * The next batch is read while the current one is computed; every batch's tensors are freed
 * before the next, so memory stays at one batch plus the output array.
 */
export async function extractFeatures(model: ResNet | FeatureFn, ds: Dataset, opts: ExtractOptions = {}): Promise<LabelledFeatures> {
  await ensureBackend(); // never the plain-JavaScript fallback without a word
  const batchSize = opts.batchSize ?? 256;
  checkInt('batchSize', batchSize, 1);
  const transform = defaultTransform(ds, opts.transform);
  const fn: FeatureFn = typeof model === 'function' ? model : backboneFeatures(model);
  const indices = opts.indices ?? null;
  const n = indices ? indices.length : ds.size;
  if (n === 0) throw new Error(`extractFeatures: ${ds.name} selects no samples`);
  const phase = opts.phase ?? 'features';
  const slice = (b: number): number[] => {
    const out: number[] = [];
    for (let i = b; i < Math.min(b + batchSize, n); i++) {
      const j = indices ? indices[i] : i;
      if (!Number.isInteger(j) || j < 0 || j >= ds.size) throw new Error(`extractFeatures: index ${j} out of range [0, ${ds.size}) of ${ds.name}`);
      out.push(j);
    }
    return out;
  };
  let data: Float32Array | null = null;
  let dim = 0;
  const labels = new Int32Array(n);
  let pending: Promise<RawBatch> = ds.read(slice(0));
  for (let start = 0; start < n; start += batchSize) {
    const raw = await pending;
    stopIfAborted(opts.signal, 'feature extraction', `at image ${start} of ${n} (${phase})`);
    const nextStart = start + batchSize;
    if (nextStart < n) {
      pending = ds.read(slice(nextStart));
      // A failing read surfaces when awaited, not as an unhandled rejection.
      pending.catch(() => undefined);
    }
    const feats = tf.tidy(() => {
      const b = rawToBatch(raw);
      b.labels.dispose();
      const x = testTransform(b.images, transform);
      const f = fn(x);
      if (f.rank !== 2 || f.shape[0] !== raw.n) throw new Error(`extractFeatures: model returned [${f.shape}] for ${raw.n} images; expected [${raw.n}, D]`);
      return f;
    });
    try {
      if (data === null) {
        dim = feats.shape[1];
        data = new Float32Array(n * dim);
      } else if (feats.shape[1] !== dim) {
        throw new Error(`extractFeatures: feature size changed from ${dim} to ${feats.shape[1]}`);
      }
      data.set(await feats.data(), start * dim);
    } finally {
      feats.dispose();
    }
    labels.set(raw.labels, start);
    opts.onProgress?.({ task: 'features', phase, done: Math.min(nextStart, n), total: n });
  }
  return { data: data!, dim, n, labels };
}
