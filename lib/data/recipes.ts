import * as tf from '@tensorflow/tfjs';
import type { Rng } from '../util/rng';
import { augmentViewOp } from '../backend/augment-op';
import {
  type BlurSpec,
  type CropSpec,
  type JitterSpec,
  type NormalizeSpec,
  cropBoxes,
  gaussianBlur,
  sampleCrops,
  sampleJitter,
  solarize,
  normalize,
} from './augment';

/** How one view is augmented (in torchvision's order: crop+flip, jitter, grayscale, blur, solarize, normalise). */
export interface AugmentSpec {
  /** null: the whole image, resized to the recipe size. */
  crop: CropSpec | null;
  flipProb: number;
  jitter: JitterSpec | null;
  grayscaleProb: number;
  /** MoCo v1 applies RandomGrayscale before ColorJitter. */
  grayscaleBeforeJitter?: boolean;
  blur: BlurSpec | null;
  solarizeProb: number;
}

export type RecipeName = 'mocov1' | 'mocov2' | 'simclr' | 'byol' | 'simsiam';

export interface Recipe {
  name: string;
  /** Output side in pixels. */
  size: number;
  views: [AugmentSpec, AugmentSpec];
  /** null: leave in [0,1]. */
  normalize: NormalizeSpec | null;
  /** ColorJitter's op order: one random permutation per batch, or brightness→contrast→saturation→hue. */
  jitterOrder: 'batch' | 'fixed';
}

export interface RecipeOptions {
  /** Output side (32 for CIFAR, 64 for Tiny-ImageNet, 224 for ImageNet). */
  size: number;
  normalize?: NormalizeSpec | null;
  /** Force the Gaussian blur on or off (default: on above 32 px, see below). */
  blur?: boolean;
  jitterOrder?: 'batch' | 'fixed';
  /**
   * Raise the lower bound of every view's crop scale to this share of the image (default: the
   * recipe's own). Small centred objects (Fashion-MNIST) lose their class in a 20 % crop.
   */
  minCropScale?: number;
}

const RATIO: [number, number] = [3 / 4, 4 / 3];

/**
 * The SSL recipes, scaled to small images the way the CIFAR codebases do:
 * - crop scale (0.2, 1) for MoCo and SimSiam (MoCo's CIFAR demo, SimSiam's CIFAR setting),
 *   (0.08, 1) for SimCLR and BYOL (solo-learn's CIFAR configs);
 * - Gaussian blur dropped at ≤ 32 px (solo-learn CIFAR configs set its probability to 0; SimCLR's
 *   CIFAR-10 appendix omits it), kept from 64 px with torchvision's kernel of ~10 % of the side
 *   made odd (64 → 7, 224 → 23) and σ ∈ [0.1, 2];
 * - SimCLR's colour strength s = 0.5 up to 64 px (its CIFAR-10 setting), s = 1 for ImageNet;
 * - BYOL keeps its asymmetric views: blur p 1.0 / 0.1, solarize p 0 / 0.2 (solarize stays at 32 px).
 */
export function makeRecipe(name: RecipeName, opts: RecipeOptions): Recipe {
  const { size } = opts;
  if (!Number.isInteger(size) || size < 2) throw new Error(`makeRecipe: size must be an integer ≥ 2, got ${size}`);
  const blurOn = opts.blur ?? size > 32;
  const kernelSize = Math.max(3, Math.floor(0.1 * size) | 1);
  const blur = (prob: number): BlurSpec | null => (blurOn && prob > 0 ? { prob, sigma: [0.1, 2.0], kernelSize } : null);
  const minScale = opts.minCropScale ?? 0;
  if (!(minScale >= 0 && minScale <= 1)) throw new Error(`makeRecipe: minCropScale must be in [0, 1], got ${opts.minCropScale}`);
  const crop = (lo: number): CropSpec => ({ scale: [Math.max(lo, minScale), 1], ratio: RATIO });
  const jitter = (b: number, c: number, s: number, h: number, prob: number): JitterSpec => ({ brightness: b, contrast: c, saturation: s, hue: h, prob });
  let views: [AugmentSpec, AugmentSpec];
  switch (name) {
    case 'mocov1': {
      const v: AugmentSpec = { crop: crop(0.2), flipProb: 0.5, jitter: jitter(0.4, 0.4, 0.4, 0.4, 1), grayscaleProb: 0.2, grayscaleBeforeJitter: true, blur: null, solarizeProb: 0 };
      views = [v, v];
      break;
    }
    case 'mocov2':
    case 'simsiam': {
      const v: AugmentSpec = { crop: crop(0.2), flipProb: 0.5, jitter: jitter(0.4, 0.4, 0.4, 0.1, 0.8), grayscaleProb: 0.2, blur: blur(0.5), solarizeProb: 0 };
      views = [v, v];
      break;
    }
    case 'simclr': {
      const s = size <= 64 ? 0.5 : 1;
      const v: AugmentSpec = { crop: crop(0.08), flipProb: 0.5, jitter: jitter(0.8 * s, 0.8 * s, 0.8 * s, 0.2 * s, 0.8), grayscaleProb: 0.2, blur: blur(0.5), solarizeProb: 0 };
      views = [v, v];
      break;
    }
    case 'byol': {
      const base = { crop: crop(0.08), flipProb: 0.5, jitter: jitter(0.4, 0.4, 0.2, 0.1, 0.8), grayscaleProb: 0.2 };
      views = [
        { ...base, blur: blur(1.0), solarizeProb: 0 },
        { ...base, blur: blur(0.1), solarizeProb: 0.2 },
      ];
      break;
    }
    default:
      throw new Error(`makeRecipe: unknown recipe "${name as string}"; expected mocov1, mocov2, simclr, byol or simsiam`);
  }
  return { name, size, views, normalize: opts.normalize ?? null, jitterOrder: opts.jitterOrder ?? 'batch' };
}

/**
 * The pixel normalisation a run trained with, from its config's recipe and image size: what its
 * evaluation (kNN monitor, linear probe, export) must apply too. null: pixels stay in [0, 1].
 */
export function runNormalization(config: { recipe: RecipeName; imageSize: number }): NormalizeSpec | null {
  return makeRecipe(config.recipe, { size: config.imageSize }).normalize;
}

function checkImages(images: tf.Tensor, who: string): asserts images is tf.Tensor4D {
  if (images.rank !== 4 || images.shape[3] !== 3) throw new Error(`${who}: images must be [n,h,w,3], got [${images.shape.join(',')}]`);
  if (images.dtype !== 'float32') throw new Error(`${who}: images must be float32 in [0,1], got ${images.dtype}`);
}

/** One augmented view of a batch. `padded` is the batch with a 1-pixel edge pad (see cropResizeFlip). */
function viewFromPadded(padded: tf.Tensor4D, h: number, w: number, spec: AugmentSpec, recipe: Recipe, rng: Rng): tf.Tensor4D {
  const n = padded.shape[0];
  // Draw every random decision first, in a fixed order (reproducible from the seed).
  const crops = sampleCrops(n, h, w, spec.crop, spec.flipProb, rng);
  const jit = spec.jitter ? sampleJitter(n, spec.jitter, rng, recipe.jitterOrder) : null;
  const gray = new Float32Array(n);
  for (let i = 0; i < n; i++) gray[i] = rng.next() < spec.grayscaleProb ? 1 : 0;
  const sig = new Float32Array(n);
  if (spec.blur) for (let i = 0; i < n; i++) if (rng.next() < spec.blur.prob) sig[i] = rng.uniform(spec.blur.sigma[0], spec.blur.sigma[1]);
  const sol = new Float32Array(n);
  for (let i = 0; i < n; i++) sol[i] = rng.next() < spec.solarizeProb ? 1 : 0;

  // The per-pixel chain is one kernel call (lib/backend/augment-op.ts: fused where the backend
  // has the kernel, the composite tfjs ops elsewhere). The blur, a neighbourhood op, is not in
  // it: with a blur, solarize and normalisation run after the blur as composite ops.
  const blur = spec.blur && sig.some((v) => v > 0) ? spec.blur : null;
  const boxes = cropBoxes(crops, h, w, recipe.size, recipe.size);
  return tf.tidy(() => {
    let x = augmentViewOp(padded, {
      size: recipe.size,
      boxes,
      jitter: jit,
      grayscale: gray,
      grayscaleBeforeJitter: spec.grayscaleBeforeJitter,
      solarize: blur ? null : sol,
      normalize: blur ? null : recipe.normalize,
    });
    if (!blur) return x;
    x = gaussianBlur(x, sig, blur.kernelSize);
    if (sol.some((v) => v > 0)) x = solarize(x, sol);
    if (recipe.normalize) x = normalize(x, recipe.normalize);
    return x;
  });
}

/** One view with the given spec (images float32 [n,h,w,3] in [0,1]). */
export function augmentView(images: tf.Tensor4D, spec: AugmentSpec, recipe: Recipe, rng: Rng): tf.Tensor4D {
  checkImages(images, 'augmentView');
  const [, h, w] = images.shape;
  return tf.tidy(() => viewFromPadded(tf.mirrorPad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], 'symmetric'), h, w, spec, recipe, rng));
}

/**
 * The two views of a batch for a recipe: view1 from recipe.views[0], view2 from views[1], both
 * float32 [n,size,size,3] (normalised if the recipe says so). The caller disposes both.
 */
export function twoViews(batch: tf.Tensor4D | { images: tf.Tensor4D }, recipe: Recipe, rng: Rng): { view1: tf.Tensor4D; view2: tf.Tensor4D } {
  const images = 'images' in batch ? batch.images : batch;
  checkImages(images, 'twoViews');
  const [, h, w] = images.shape;
  const padded = tf.mirrorPad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], 'symmetric');
  try {
    const view1 = viewFromPadded(padded, h, w, recipe.views[0], recipe, rng);
    const view2 = viewFromPadded(padded, h, w, recipe.views[1], recipe, rng);
    return { view1, view2 };
  } finally {
    padded.dispose();
  }
}

/**
 * The evaluation transform (kNN bank, linear probe): resize to the recipe size when the images
 * differ (shorter side then centre crop, like Resize+CenterCrop) and normalise.
 */
export function testTransform(images: tf.Tensor4D, recipe: Pick<Recipe, 'size' | 'normalize'>): tf.Tensor4D {
  checkImages(images, 'testTransform');
  const [, h, w] = images.shape;
  return tf.tidy(() => {
    let x: tf.Tensor4D = images;
    if (h !== recipe.size || w !== recipe.size) {
      const s = recipe.size / Math.min(h, w);
      const rh = Math.max(recipe.size, Math.round(h * s));
      const rw = Math.max(recipe.size, Math.round(w * s));
      x = tf.image.resizeBilinear(x, [rh, rw], false, true);
      const top = Math.floor((rh - recipe.size) / 2);
      const left = Math.floor((rw - recipe.size) / 2);
      x = tf.slice(x, [0, top, left, 0], [-1, recipe.size, recipe.size, 3]);
    }
    if (recipe.normalize) return normalize(x, recipe.normalize);
    return x === images ? tf.clone(x) : x;
  });
}
