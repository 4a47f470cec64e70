import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng';
import { type JitterOp, type NormalizeSpec, applyStepsComposite, jitterSteps } from '../backend/augment-op';

/**
 * Batched SSL augmentations on the active tfjs backend. Every random decision is drawn in JS
 * from the caller's Rng (a handful of numbers per image, drawn in a fixed order, so one seed
 * reproduces a batch); the pixels are only touched by tensor ops (a view's per-pixel chain as
 * one kernel call, lib/backend/augment-op.ts, see recipes.ts). Samples that skip an
 * augmentation get its identity parameters (factor 1, hue 0, delta kernel), which keeps each
 * op one call on the whole batch. Inputs are float32 [n,h,w,3] in [0,1].
 */

// ---------- random resized crop + horizontal flip ----------

export interface CropSpec {
  /** Area share of the crop, torchvision's `scale` (e.g. [0.2, 1] or [0.08, 1]). */
  scale: [number, number];
  /** Aspect ratio w/h range (torchvision default [3/4, 4/3]). */
  ratio: [number, number];
}

/** A crop in source pixels: rows [top, top+height), cols [left, left+width), mirrored if `flip`. */
export interface CropBox {
  top: number;
  left: number;
  height: number;
  width: number;
  flip: boolean;
}

/** torchvision's RandomResizedCrop.get_params: 10 tries, then a ratio-clamped centre crop. */
export function sampleCrop(h: number, w: number, spec: CropSpec, rng: Rng): Omit<CropBox, 'flip'> {
  const area = h * w;
  const logR0 = Math.log(spec.ratio[0]);
  const logR1 = Math.log(spec.ratio[1]);
  for (let t = 0; t < 10; t++) {
    const target = area * rng.uniform(spec.scale[0], spec.scale[1]);
    const aspect = Math.exp(rng.uniform(logR0, logR1));
    const cw = Math.round(Math.sqrt(target * aspect));
    const ch = Math.round(Math.sqrt(target / aspect));
    if (cw > 0 && cw <= w && ch > 0 && ch <= h) {
      return { top: rng.int(h - ch + 1), left: rng.int(w - cw + 1), height: ch, width: cw };
    }
  }
  const inRatio = w / h;
  let cw = w;
  let ch = h;
  if (inRatio < spec.ratio[0]) ch = Math.round(w / spec.ratio[0]);
  else if (inRatio > spec.ratio[1]) cw = Math.round(h * spec.ratio[1]);
  return { top: Math.floor((h - ch) / 2), left: Math.floor((w - cw) / 2), height: ch, width: cw };
}

/** Draws one crop (or the whole image when spec is null) and a flip per sample. */
export function sampleCrops(n: number, h: number, w: number, spec: CropSpec | null, flipProb: number, rng: Rng): CropBox[] {
  const out: CropBox[] = [];
  for (let i = 0; i < n; i++) {
    const c = spec ? sampleCrop(h, w, spec, rng) : { top: 0, left: 0, height: h, width: w };
    out.push({ ...c, flip: flipProb > 0 && rng.next() < flipProb });
  }
  return out;
}

/**
 * Crops and resizes with bilinear sampling at pixel centres (PyTorch's align_corners=False),
 * flipping by swapping the box's x ends. tf.image.cropAndResize samples corner-aligned and
 * writes 0 outside the image, so the source gets a 1-pixel edge-replicating pad and the boxes
 * are placed so that its samples fall where PyTorch's fall (align_corners=False; at the image
 * border the pad reproduces PyTorch's clamping). One difference: when a crop inside the image is
 * upscaled, samples within half an output pixel of the crop edge blend with the pixel just
 * outside the crop (as TF's crop_and_resize does) instead of clamping to the crop.
 * No antialiasing when downscaling (as torchvision on tensors with antialias=False).
 */
export function cropResizeFlip(images: tf.Tensor4D, crops: readonly CropBox[], outH: number, outW: number): tf.Tensor4D {
  const [n, h, w] = images.shape;
  if (crops.length !== n) throw new Error(`cropResizeFlip: ${crops.length} crops for a batch of ${n}`);
  return tf.tidy(() => {
    const padded = tf.mirrorPad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], 'symmetric');
    return cropResizeFlipPadded(padded, crops, h, w, outH, outW);
  });
}

/**
 * tf.image.cropAndResize's boxes (y1, x1, y2, x2, normalised to the padded source) that place
 * cropResizeFlip's samples: 4 per crop.
 */
export function cropBoxes(crops: readonly CropBox[], h: number, w: number, outH: number, outW: number): Float32Array {
  const n = crops.length;
  const boxes = new Float32Array(4 * n);
  for (let i = 0; i < n; i++) {
    const c = crops[i];
    // First and last sample centres of the crop in source pixels, +1 for the pad.
    const y1 = c.top + (0.5 * c.height) / outH - 0.5 + 1;
    const y2 = c.top + c.height - (0.5 * c.height) / outH - 0.5 + 1;
    const x1 = c.left + (0.5 * c.width) / outW - 0.5 + 1;
    const x2 = c.left + c.width - (0.5 * c.width) / outW - 0.5 + 1;
    boxes[4 * i] = y1 / (h + 1);
    boxes[4 * i + 2] = y2 / (h + 1);
    boxes[4 * i + 1] = (c.flip ? x2 : x1) / (w + 1);
    boxes[4 * i + 3] = (c.flip ? x1 : x2) / (w + 1);
  }
  return boxes;
}

/** As cropResizeFlip, on a source already padded by one pixel (shared by two views). */
export function cropResizeFlipPadded(padded: tf.Tensor4D, crops: readonly CropBox[], h: number, w: number, outH: number, outW: number): tf.Tensor4D {
  const n = crops.length;
  const boxes = cropBoxes(crops, h, w, outH, outW);
  return tf.tidy(() => {
    const b = tf.tensor2d(boxes, [n, 4]);
    const ind = tf.range(0, n, 1, 'int32') as tf.Tensor1D;
    return tf.image.cropAndResize(padded, b, ind, [outH, outW], 'bilinear');
  });
}

// ---------- colour ----------
// The per-pixel ops live with the augmentation kernel's contract (lib/backend/augment-op.ts),
// whose composite path and reference they are; re-exported here as part of the data API.

export { adjustBrightness, adjustContrast, adjustHue, adjustSaturation, grayscale, normalize, randomGrayscale, solarize } from '../backend/augment-op';
export type { JitterOp, NormalizeSpec } from '../backend/augment-op';

export interface JitterSpec {
  brightness: number;
  contrast: number;
  saturation: number;
  hue: number;
  /** Probability the whole jitter applies to an image (RandomApply p). */
  prob: number;
}

const JITTER_OPS: JitterOp[] = ['brightness', 'contrast', 'saturation', 'hue'];

export interface JitterParams {
  order: JitterOp[];
  brightness: Float32Array;
  contrast: Float32Array;
  saturation: Float32Array;
  hue: Float32Array;
}

/**
 * torchvision ColorJitter factors: brightness/contrast/saturation ~ U[max(0, 1−s), 1+s],
 * hue ~ U[−h, h]; images that skip the jitter get identity factors. torchvision permutes the four
 * ops per image; batched, we permute them once per batch ('batch'), or keep the listed order.
 */
export function sampleJitter(n: number, spec: JitterSpec, rng: Rng, order: 'batch' | 'fixed'): JitterParams {
  const p: JitterParams = {
    order: order === 'batch' ? Array.from(rng.permutation(4), (i) => JITTER_OPS[i]) : [...JITTER_OPS],
    brightness: new Float32Array(n).fill(1),
    contrast: new Float32Array(n).fill(1),
    saturation: new Float32Array(n).fill(1),
    hue: new Float32Array(n),
  };
  for (let i = 0; i < n; i++) {
    if (!(rng.next() < spec.prob)) continue;
    p.brightness[i] = rng.uniform(Math.max(0, 1 - spec.brightness), 1 + spec.brightness);
    p.contrast[i] = rng.uniform(Math.max(0, 1 - spec.contrast), 1 + spec.contrast);
    p.saturation[i] = rng.uniform(Math.max(0, 1 - spec.saturation), 1 + spec.saturation);
    p.hue[i] = rng.uniform(-spec.hue, spec.hue);
  }
  return p;
}

/** The jitter ops in `p.order`, skipping those whose factors are all the identity. */
export function colorJitter(x: tf.Tensor4D, p: JitterParams): tf.Tensor4D {
  return applyStepsComposite(x, jitterSteps(p), { jitter: p });
}

// ---------- blur ----------

export interface BlurSpec {
  prob: number;
  /** σ range in pixels (torchvision/MoCo v2: [0.1, 2.0]). */
  sigma: [number, number];
  /** Odd kernel size (torchvision convention: ~10 % of the image side). */
  kernelSize: number;
}

/**
 * Separable Gaussian blur with one σ per image (0 = leave unchanged), reflect padding as
 * torchvision. The batch is folded into the channel axis so a depthwise conv applies a
 * different kernel to each image in one call.
 */
export function gaussianBlur(x: tf.Tensor4D, sigmas: ArrayLike<number>, kernelSize: number): tf.Tensor4D {
  if (kernelSize % 2 !== 1 || kernelSize < 1) throw new Error(`gaussianBlur: kernelSize must be odd and positive, got ${kernelSize}`);
  const [n, h, w, c] = x.shape;
  const r = (kernelSize - 1) / 2;
  if (r === 0) return tf.clone(x);
  if (r >= h || r >= w) throw new Error(`gaussianBlur: kernel ${kernelSize} too large for ${h}×${w} images (reflect padding needs < ${Math.min(h, w) * 2 + 1})`);
  const k = new Float32Array(kernelSize * n * c);
  for (let i = 0; i < n; i++) {
    const s = sigmas[i];
    const taps = new Float32Array(kernelSize);
    if (s > 0) {
      let sum = 0;
      for (let t = 0; t < kernelSize; t++) sum += taps[t] = Math.exp(-((t - r) ** 2) / (2 * s * s));
      for (let t = 0; t < kernelSize; t++) taps[t] /= sum;
    } else {
      taps[r] = 1;
    }
    for (let t = 0; t < kernelSize; t++) for (let ch = 0; ch < c; ch++) k[t * n * c + i * c + ch] = taps[t];
  }
  return tf.tidy(() => {
    const folded = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * c]);
    const padded = tf.mirrorPad(folded as tf.Tensor4D, [[0, 0], [r, r], [r, r], [0, 0]], 'reflect');
    const kv = tf.tensor4d(k, [kernelSize, 1, n * c, 1]);
    const kh = tf.tensor4d(k, [1, kernelSize, n * c, 1]);
    const y = tf.depthwiseConv2d(tf.depthwiseConv2d(padded, kv, 1, 'valid'), kh, 1, 'valid');
    return tf.transpose(tf.reshape(y, [h, w, n, c]), [2, 0, 1, 3]) as tf.Tensor4D;
  });
}

// ---------- normalisation ----------

/** Per-channel statistics often used (computed on the train splits). */
export const NORMALIZATION = {
  cifar10: { mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.2435, 0.2616] },
  cifar100: { mean: [0.5071, 0.4865, 0.4409], std: [0.2673, 0.2564, 0.2762] },
  tinyImagenet: { mean: [0.4802, 0.4481, 0.3975], std: [0.277, 0.2691, 0.2821] },
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  fashionMnist: { mean: [0.286, 0.286, 0.286], std: [0.353, 0.353, 0.353] },
} satisfies Record<string, NormalizeSpec>;
