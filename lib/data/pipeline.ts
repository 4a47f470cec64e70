import * as tf from '@tensorflow/tfjs';
import { Rng } from '../util/rng';
import type { Recipe } from './recipes';
import { twoViews } from './recipes';
import type { Batch, Dataset, RawBatch } from './types';

/**
 * uint8 NHWC (1 or 3 channels) → float32 [n,h,w,3] in [0,1] plus int32 labels. Grayscale is
 * replicated to 3 channels so 3-channel stems work unchanged. The caller disposes the tensors.
 */
export function rawToBatch(raw: RawBatch): Batch {
  const { n, height: h, width: w, channels: c } = raw;
  if (raw.pixels.length !== n * h * w * c) throw new Error(`rawToBatch: ${raw.pixels.length} bytes for ${n}×${h}×${w}×${c}`);
  let images: tf.Tensor4D;
  if (c === 1) {
    // Grayscale scaled and replicated in the one pass that converts the bytes: the wasm Tile
    // kernel takes ~23 ms for a [128, 28, 28, 1] batch, this loop under 1 ms. The float32
    // product of f32(p) and f32(1/255) is the tensor op's, bit for bit.
    const k = Math.fround(1 / 255);
    const f = new Float32Array(3 * raw.pixels.length);
    for (let i = 0, j = 0; i < raw.pixels.length; i++, j += 3) f[j] = f[j + 1] = f[j + 2] = raw.pixels[i] * k;
    images = tf.tensor4d(f, [n, h, w, 3]);
  } else {
    // Typed-array conversion is native; the scaling is one tensor op.
    const f = new Float32Array(raw.pixels);
    images = tf.tidy(() => tf.mul(tf.tensor4d(f, [n, h, w, c]), 1 / 255) as tf.Tensor4D);
  }
  const labels = tf.tensor1d(raw.labels, 'int32');
  return { images, labels, indices: raw.indices };
}

/** Reads `indices` (default all) as one batch of tensors; for small sets and tests. */
export async function loadAll(ds: Dataset, indices?: ArrayLike<number>): Promise<Batch> {
  return rawToBatch(await ds.read(indices ?? Array.from({ length: ds.size }, (_, i) => i)));
}

export interface LoaderOptions {
  batchSize: number;
  /** Reshuffle each epoch (default true) with `seed` / `rng`. */
  shuffle?: boolean;
  seed?: number;
  rng?: Rng;
  /** Drop the last incomplete batch (default: true when shuffling — SSL wants full batches). */
  dropLast?: boolean;
  /** Batches read ahead while the current one is used (default 2). */
  prefetch?: number;
}

/**
 * Epoch iterator with prefetching. Reading (file I/O, JPEG decoding on libuv's threads via
 * sharp) of the next `prefetch` batches runs while the caller trains on the current one;
 * turning bytes into tensors happens when a batch is handed out, on the main thread, since the
 * tfjs backends compute there. Only the yielded tensors exist: the caller disposes each batch,
 * and breaking out of the loop leaves nothing behind (pending reads hold plain bytes).
 */
export class DataLoader implements AsyncIterable<Batch> {
  readonly dataset: Dataset;
  readonly batchSize: number;
  readonly shuffle: boolean;
  readonly dropLast: boolean;
  readonly prefetch: number;
  private readonly rng: Rng;
  private epochCount = 0;

  constructor(dataset: Dataset, opts: LoaderOptions) {
    if (!Number.isInteger(opts.batchSize) || opts.batchSize < 1) throw new Error(`DataLoader: batchSize must be a positive integer, got ${opts.batchSize}`);
    this.dataset = dataset;
    this.batchSize = opts.batchSize;
    this.shuffle = opts.shuffle ?? true;
    this.dropLast = opts.dropLast ?? this.shuffle;
    this.prefetch = Math.max(0, Math.floor(opts.prefetch ?? 2));
    this.rng = opts.rng ?? new Rng(opts.seed ?? 0);
    if (this.dropLast && dataset.size < this.batchSize) {
      throw new Error(`DataLoader: ${dataset.name} has ${dataset.size} samples, fewer than one batch of ${this.batchSize} (dropLast)`);
    }
  }

  get batchesPerEpoch(): number {
    return this.dropLast ? Math.floor(this.dataset.size / this.batchSize) : Math.ceil(this.dataset.size / this.batchSize);
  }

  /** The sample order of the next epoch (advances the loader's Rng when shuffling). */
  private order(): Int32Array {
    const n = this.dataset.size;
    if (this.shuffle) return this.rng.permutation(n);
    return Int32Array.from({ length: n }, (_, i) => i);
  }

  /** Raw batches of one epoch, read ahead. */
  async *rawEpoch(): AsyncGenerator<RawBatch> {
    const order = this.order();
    this.epochCount++;
    const nb = this.batchesPerEpoch;
    const slice = (b: number): Int32Array => order.subarray(b * this.batchSize, Math.min((b + 1) * this.batchSize, order.length));
    const pending: Promise<RawBatch>[] = [];
    let next = 0;
    const fill = (): void => {
      while (next < nb && pending.length <= this.prefetch) {
        const p = this.dataset.read(slice(next++));
        // Errors surface when this batch is awaited, not as unhandled rejections.
        p.catch(() => undefined);
        pending.push(p);
      }
    };
    fill();
    while (pending.length > 0) {
      const raw = await pending.shift()!;
      fill();
      yield raw;
    }
  }

  /** Tensor batches of one epoch (caller disposes each). */
  async *epoch(): AsyncGenerator<Batch> {
    for await (const raw of this.rawEpoch()) yield rawToBatch(raw);
  }

  [Symbol.asyncIterator](): AsyncIterator<Batch> {
    return this.epoch();
  }

  get epochsStarted(): number {
    return this.epochCount;
  }
}

/** A training batch: both views and the labels (for monitoring). The caller disposes all three. */
export interface TwoViewBatch {
  view1: tf.Tensor4D;
  view2: tf.Tensor4D;
  labels: tf.Tensor1D;
  indices: Int32Array;
}

/** One epoch of augmented two-view batches: loader → tensors → twoViews (source images freed). */
export async function* twoViewEpoch(loader: DataLoader, recipe: Recipe, rng: Rng): AsyncGenerator<TwoViewBatch> {
  for await (const raw of loader.rawEpoch()) {
    const b = rawToBatch(raw);
    let views: { view1: tf.Tensor4D; view2: tf.Tensor4D };
    try {
      views = twoViews(b.images, recipe, rng);
    } catch (e) {
      b.labels.dispose();
      throw e;
    } finally {
      b.images.dispose();
    }
    yield { ...views, labels: b.labels, indices: b.indices };
  }
}
