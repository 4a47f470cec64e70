import type * as tf from '@tensorflow/tfjs';

/**
 * A batch as read from storage: uint8 pixels NHWC (1 or 3 channels as stored) plus int32
 * labels. Plain JS memory, so it can be prepared ahead (prefetch) without holding tensors.
 */
export interface RawBatch {
  /** n·h·w·channels bytes, NHWC. */
  pixels: Uint8Array;
  labels: Int32Array;
  /** Dataset indices of the samples, in batch order. */
  indices: Int32Array;
  n: number;
  height: number;
  width: number;
  /** Channels stored in `pixels` (1 for grayscale sources, 3 for colour). */
  channels: 1 | 3;
}

/** A batch as tensors: images float32 [n,h,w,3] in [0,1], labels int32 [n]. The caller disposes both. */
export interface Batch {
  images: tf.Tensor4D;
  labels: tf.Tensor1D;
  indices: Int32Array;
}

/**
 * One interface for every dataset (CIFAR, Fashion-MNIST, Tiny-ImageNet, image folders,
 * synthetic). All images of one dataset share one size; grayscale sources report
 * channels 1 and are replicated to 3 channels when they become tensors.
 */
export interface Dataset {
  readonly name: string;
  readonly size: number;
  readonly numClasses: number;
  readonly classNames: readonly string[];
  readonly height: number;
  readonly width: number;
  /** Channels as stored (1 or 3); tensors always have 3. */
  readonly channels: 1 | 3;
  /** Label of sample i (cheap; used for class-balanced subsets and kNN banks). */
  label(i: number): number;
  /** Reads the samples at `indices` (in that order). May decode files; never creates tensors. */
  read(indices: ArrayLike<number>): Promise<RawBatch>;
}
