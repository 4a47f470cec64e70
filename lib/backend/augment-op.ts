import * as tf from '@tensorflow/tfjs';

/**
 * One augmented view of a batch as ONE kernel call: the per-pixel part of an SSL augmentation
 * (bilinear crop-resize-flip, grayscale, colour jitter, solarize, normalisation) with every
 * random decision already drawn (lib/data/recipes.ts draws them on the CPU, in a fixed order).
 * The composite tfjs ops below take ~75 dispatches per view on webgpu; a backend may register
 * a fused kernel under `AUGMENT_VIEW_KERNEL` (webgpu: lib/backend/webgpu/augment.ts, 1 or 2
 * dispatches). `augmentViewOp` runs it where the active backend has it and the composite
 * (`augmentViewComposite`, also the reference in tests) everywhere else, so the cpu and wasm
 * backends compute exactly what they computed before the kernel existed.
 *
 * Contract of the kernel (n images, padded image H×W, output size S ≤ 4096):
 *   inputs  { image:   [n, H, W, 3] float32, the batch with its 1-pixel edge pad (lib/data/augment.ts),
 *             grid:    [n, 8] where image i's output pixels sample it: `samplingGrid` of
 *                      tf.image.cropAndResize boxes (below),
 *             factors: [n, 4] brightness, contrast, saturation factors, hue shift (turns),
 *             masks:   [n, 2] grayscale, solarize (1: applies to the image, 0: not) }
 *   attrs   { size: S, steps: AugmentStep[] (applied in order, each at most once),
 *             mean: number[3] and std: number[3] for (x − mean)/std, or [] and [] for none }
 *   output  [n, S, S, 3] float32
 * Per output pixel: cropAndResize's bilinear sample (extrapolation value 0), then each step
 * exactly as the composite op of the same name below, with the image's own factor or mask
 * (contrast blends with the mean gray level of the image as it is when the contrast step runs,
 * a per-image reduction), then the normalisation as `normalize`. A step listed applies to every
 * image; an image whose factor is the identity (1, or hue 0, or mask 0) is left as the formula
 * leaves it (e.g. brightness 1 still clips to [0, 1]); `augmentSteps` lists only the steps some
 * image needs, as the composite always did. Gaussian blur (a neighbourhood op, used above 32 px)
 * is not part of it: lib/data/recipes.ts runs it, and solarize and normalisation, after the
 * kernel as composite ops.
 *
 * Why a grid and not the boxes: cropAndResize places sample i of an axis at
 * y1·(H − 1) + i·(y2 − y1)·(H − 1)/(S − 1) source pixels, which the cpu backend computes in
 * doubles; in float32 that coordinate is off by up to half an ulp of ~H (1.9e-6 at 32–64 px) and
 * its interpolation weight with it, which normalisation then scales by 1/std ≈ 4. The grid
 * carries, per image and axis, the first coordinate and the step computed in doubles: the start
 * as its integer part and its fraction, the step as head + tail with ≤ 12 significant bits in
 * the head, so that i·head is exact in float32 for i < 4096 and so is its split into an integer
 * and a fraction. A float32 kernel then adds only fractions (< 2) and integers, and gets the
 * weight to ~1e-7, with no error-free-transformation trick a shader compiler may reassociate away.
 */
export const AUGMENT_VIEW_KERNEL = 'MixMaskAugmentView';

export type JitterOp = 'brightness' | 'contrast' | 'saturation' | 'hue';
export type AugmentStep = 'grayscale' | JitterOp | 'solarize';
/** Every step, in the index order the kernels' step codes use. */
export const AUGMENT_STEPS: readonly AugmentStep[] = ['grayscale', 'brightness', 'contrast', 'saturation', 'hue', 'solarize'];

export interface NormalizeSpec {
  mean: [number, number, number];
  std: [number, number, number];
}

/** One factor per image for each jitter op (identity: 1, hue 0), applied in `order`. */
export interface JitterFactors {
  order: readonly JitterOp[];
  brightness: ArrayLike<number>;
  contrast: ArrayLike<number>;
  saturation: ArrayLike<number>;
  hue: ArrayLike<number>;
}

/** One view's per-image parameters, drawn by the caller. */
export interface AugmentViewParams {
  /** Output side in pixels. */
  size: number;
  /** 4 per image: tf.image.cropAndResize's (y1, x1, y2, x2) on the padded batch. */
  boxes: Float32Array;
  jitter?: JitterFactors | null;
  /** Per image, 1 = replace by its gray level on all three channels. */
  grayscale?: ArrayLike<number> | null;
  /** MoCo v1 applies the grayscale before the jitter. */
  grayscaleBeforeJitter?: boolean;
  /** Per image, 1 = invert the pixels ≥ 0.5. */
  solarize?: ArrayLike<number> | null;
  normalize?: NormalizeSpec | null;
}

export interface AugmentViewAttrs {
  size: number;
  steps: AugmentStep[];
  mean: number[];
  std: number[];
}

const some = (v: ArrayLike<number> | null | undefined): boolean => v != null && Array.prototype.some.call(v, (x: number) => x > 0);
const every = (v: ArrayLike<number>, value: number): boolean => Array.prototype.every.call(v, (x: number) => x === value);

/** The jitter ops some image needs (an op whose factors are all the identity is skipped), in order. */
export function jitterSteps(j: JitterFactors): JitterOp[] {
  return j.order.filter((op) => !(op === 'hue' ? every(j.hue, 0) : every(j[op], 1)));
}

/** The steps a view needs, in torchvision's order (grayscale after the jitter unless MoCo v1's before). */
export function augmentSteps(p: Omit<AugmentViewParams, 'size' | 'boxes' | 'normalize'>): AugmentStep[] {
  const steps: AugmentStep[] = [];
  const gray = some(p.grayscale);
  if (gray && p.grayscaleBeforeJitter) steps.push('grayscale');
  if (p.jitter) steps.push(...jitterSteps(p.jitter));
  if (gray && !p.grayscaleBeforeJitter) steps.push('grayscale');
  if (some(p.solarize)) steps.push('solarize');
  return steps;
}

/** The kernel's input and attribute shapes, checked (every kernel of the contract calls it). */
export function checkAugmentView(
  who: string,
  shapes: { image: number[]; grid: number[]; factors: number[]; masks: number[] },
  attrs: AugmentViewAttrs,
): { n: number; contrastAt: number } {
  const { image, grid, factors, masks } = shapes;
  if (image.length !== 4 || image[3] !== 3) throw new Error(`${who}: image must be [n, h, w, 3], got [${image.join(', ')}]`);
  const n = image[0];
  if (image[1] < 1 || image[2] < 1) throw new Error(`${who}: image [${image.join(', ')}] has no pixels`);
  for (const [name, shape, k] of [['grid', grid, 8], ['factors', factors, 4], ['masks', masks, 2]] as const) {
    if (shape.length !== 2 || shape[0] !== n || shape[1] !== k) throw new Error(`${who}: ${name} must be [${n}, ${k}] for ${n} images, got [${shape.join(', ')}]`);
  }
  if (!Number.isInteger(attrs.size) || attrs.size < 1 || attrs.size > MAX_SIZE) throw new Error(`${who}: size must be an integer in [1, ${MAX_SIZE}], got ${attrs.size}`);
  const seen = new Set<string>();
  for (const s of attrs.steps) {
    if (!AUGMENT_STEPS.includes(s)) throw new Error(`${who}: unknown step '${s}'; expected one of ${AUGMENT_STEPS.join(', ')}`);
    if (seen.has(s)) throw new Error(`${who}: step '${s}' listed twice in [${attrs.steps.join(', ')}]; each applies at most once`);
    seen.add(s);
  }
  const norm = attrs.mean.length + attrs.std.length;
  if (norm !== 0 && (attrs.mean.length !== 3 || attrs.std.length !== 3)) throw new Error(`${who}: mean and std must hold 3 values each (or none), got ${attrs.mean.length} and ${attrs.std.length}`);
  if (attrs.std.some((s) => !(s > 0) || !Number.isFinite(s))) throw new Error(`${who}: std must be positive, got [${attrs.std.join(', ')}]`);
  return { n, contrastAt: attrs.steps.indexOf('contrast') };
}

function checkParams(who: string, n: number, p: AugmentViewParams): void {
  if (p.boxes.length !== 4 * n) throw new Error(`${who}: ${p.boxes.length} box values for ${n} images; expected 4 per image (${4 * n})`);
  const perImage: Array<[string, ArrayLike<number> | null | undefined]> = [
    ['grayscale', p.grayscale],
    ['solarize', p.solarize],
    ...(p.jitter ? (['brightness', 'contrast', 'saturation', 'hue'] as const).map((k): [string, ArrayLike<number>] => [`jitter.${k}`, p.jitter![k]]) : []),
  ];
  for (const [name, v] of perImage) {
    if (v != null && v.length !== n) throw new Error(`${who}: ${name} has ${v.length} values for ${n} images`);
  }
}

/** Largest output side of the kernel: i·head stays exact in float32 for i < 2^(24 − 12). */
export const MAX_SIZE = 4096;
const HEAD_BITS = 12;

/** v as head + tail: head with ≤ HEAD_BITS significant bits, tail the rest rounded to float32. */
function splitHead(v: number): [number, number] {
  if (v === 0 || !Number.isFinite(v)) return [v, 0];
  let scale = 2 ** (HEAD_BITS - 1 - Math.floor(Math.log2(Math.abs(v))));
  // |v|·scale in [2^(bits−1), 2^bits), whatever log2's last bit did at a power of two.
  if (Math.abs(v * scale) >= 2 ** HEAD_BITS) scale /= 2;
  else if (Math.abs(v * scale) < 2 ** (HEAD_BITS - 1)) scale *= 2;
  const head = Math.round(v * scale) / scale;
  return [head, Math.fround(v - head)];
}

/**
 * The kernel's `grid` [n, 8] for tf.image.cropAndResize boxes (y1, x1, y2, x2 per image) on an
 * H×W image and an S×S output: per image, for y then x, (⌊start⌋, start − ⌊start⌋, step head,
 * step tail) with sample i at start + i·step source pixels, start and step as cropAndResize
 * computes them in doubles (S = 1: the box centre, step 0).
 */
export function samplingGrid(boxes: Float32Array, H: number, W: number, S: number): Float32Array {
  const n = boxes.length / 4;
  const grid = new Float32Array(8 * n);
  for (let i = 0; i < n; i++) {
    for (const [axis, size] of [[0, H], [1, W]] as const) {
      const a = boxes[4 * i + axis];
      const b = boxes[4 * i + axis + 2];
      const start = S > 1 ? a * (size - 1) : 0.5 * (a + b) * (size - 1);
      const step = S > 1 ? ((b - a) * (size - 1)) / (S - 1) : 0;
      const whole = Math.floor(start);
      const [head, tail] = splitHead(step);
      grid.set([whole, start - whole, head, tail], 8 * i + 4 * axis);
    }
  }
  return grid;
}

/** Whether the active backend has the fused kernel. */
export function hasAugmentViewKernel(): boolean {
  return tf.getKernel(AUGMENT_VIEW_KERNEL, tf.getBackend()) !== undefined;
}

/**
 * One view of `padded` (the batch with a 1-pixel edge pad, float32 [n, h+2, w+2, 3]) with the
 * given parameters: the fused kernel where the active backend has it, else the composite.
 */
export function augmentViewOp(padded: tf.Tensor4D, p: AugmentViewParams): tf.Tensor4D {
  if (padded.rank !== 4 || padded.shape[3] !== 3) throw new Error(`augmentViewOp: padded must be [n, h, w, 3], got [${padded.shape.join(', ')}]`);
  if (padded.dtype !== 'float32') throw new Error(`augmentViewOp: padded must be float32, got ${padded.dtype}`);
  const n = padded.shape[0];
  checkParams('augmentViewOp', n, p);
  const steps = augmentSteps(p);
  if (!hasAugmentViewKernel()) return augmentViewComposite(padded, p, steps);
  const factors = new Float32Array(4 * n);
  const masks = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) {
    factors[4 * i] = p.jitter ? p.jitter.brightness[i] : 1;
    factors[4 * i + 1] = p.jitter ? p.jitter.contrast[i] : 1;
    factors[4 * i + 2] = p.jitter ? p.jitter.saturation[i] : 1;
    factors[4 * i + 3] = p.jitter ? p.jitter.hue[i] : 0;
    masks[2 * i] = p.grayscale ? p.grayscale[i] : 0;
    masks[2 * i + 1] = p.solarize ? p.solarize[i] : 0;
  }
  const attrs: AugmentViewAttrs = { size: p.size, steps, mean: p.normalize ? [...p.normalize.mean] : [], std: p.normalize ? [...p.normalize.std] : [] };
  const grid = samplingGrid(p.boxes, padded.shape[1], padded.shape[2], p.size);
  return tf.tidy(() => {
    const inputs = {
      image: padded,
      grid: tf.tensor2d(grid, [n, 8]),
      factors: tf.tensor2d(factors, [n, 4]),
      masks: tf.tensor2d(masks, [n, 2]),
    };
    return tf.engine().runKernel(AUGMENT_VIEW_KERNEL, inputs as unknown as tf.NamedTensorMap, attrs as unknown as tf.NamedAttrMap) as tf.Tensor4D;
  });
}

/**
 * The view from stock tfjs ops: tf.image.cropAndResize, then the steps, then the normalisation
 * (the reference for the kernels and the path of every backend without one).
 */
export function augmentViewComposite(padded: tf.Tensor4D, p: AugmentViewParams, steps: readonly AugmentStep[] = augmentSteps(p)): tf.Tensor4D {
  const n = padded.shape[0];
  checkParams('augmentViewComposite', n, p);
  return tf.tidy(() => {
    const b = tf.tensor2d(p.boxes, [n, 4]);
    const ind = tf.range(0, n, 1, 'int32') as tf.Tensor1D;
    const x = tf.image.cropAndResize(padded, b, ind, [p.size, p.size], 'bilinear');
    const y = applyStepsComposite(x, steps, p);
    return p.normalize ? normalize(y, p.normalize) : y;
  });
}

/** `steps` in order with the composite ops (a new tensor even when there are none). */
export function applyStepsComposite(x: tf.Tensor4D, steps: readonly AugmentStep[], p: Pick<AugmentViewParams, 'jitter' | 'grayscale' | 'solarize'>): tf.Tensor4D {
  const need = <T>(v: T | null | undefined, step: AugmentStep): T => {
    if (v == null) throw new Error(`applyStepsComposite: step '${step}' without its per-image values`);
    return v;
  };
  return tf.tidy(() => {
    let y = x;
    for (const s of steps) {
      if (s === 'grayscale') y = randomGrayscale(y, need(p.grayscale, s));
      else if (s === 'solarize') y = solarize(y, need(p.solarize, s));
      else if (s === 'brightness') y = adjustBrightness(y, need(p.jitter, s).brightness);
      else if (s === 'contrast') y = adjustContrast(y, need(p.jitter, s).contrast);
      else if (s === 'saturation') y = adjustSaturation(y, need(p.jitter, s).saturation);
      else if (s === 'hue') y = adjustHue(y, need(p.jitter, s).hue);
      else throw new Error(`applyStepsComposite: unknown step '${s as string}'`);
    }
    return y === x ? tf.clone(x) : y;
  });
}

// ---------- the composite ops ----------
// Shapes are chosen for the wasm backend: there, slicing or broadcasting along the channel axis
// is 5–30× slower than a [P,3]×[3,k] matMul (XNNPACK) or a per-sample [n,1,1,1] broadcast, so
// channel mixing goes through small matMuls and per-channel work through a planar [3,P] layout.
// Inputs are float32 [n,h,w,3] in [0,1]; one factor or mask value per image.

/** ITU-R 601 luma weights, as torchvision's rgb_to_grayscale (the kernels use the same). */
export const LUMA = [0.2989, 0.587, 0.114];

/** ITU-R 601 luma, as torchvision's rgb_to_grayscale. Returns [n,h,w,1]. */
export function grayscale(x: tf.Tensor4D): tf.Tensor4D {
  const [n, h, w] = x.shape;
  return tf.tidy(() => tf.reshape(tf.matMul(tf.reshape(x, [-1, 3]), tf.tensor2d(LUMA, [3, 1])), [n, h, w, 1]));
}

/** Luma replicated on three channels, [n,h,w,3], in one matMul. */
function gray3(x: tf.Tensor4D): tf.Tensor4D {
  const m = tf.tensor2d(LUMA.flatMap((v) => [v, v, v]), [3, 3]);
  return tf.reshape(tf.matMul(tf.reshape(x, [-1, 3]), m), x.shape);
}

function perSample(v: ArrayLike<number>): tf.Tensor4D {
  return tf.tensor4d(Float32Array.from(v), [v.length, 1, 1, 1]);
}

const clip01 = (t: tf.Tensor): tf.Tensor => tf.clipByValue(t, 0, 1);
/** f·x + (1−f)·other = other + f·(x − other), clipped; f per sample. */
const blend = (x: tf.Tensor, other: tf.Tensor, f: tf.Tensor): tf.Tensor => clip01(tf.add(other, tf.mul(tf.sub(x, other), f)));

/** x·b, clipped (torchvision adjust_brightness). One factor per sample. */
export function adjustBrightness(x: tf.Tensor4D, factors: ArrayLike<number>): tf.Tensor4D {
  return tf.tidy(() => clip01(tf.mul(x, perSample(factors))) as tf.Tensor4D);
}

/** Blend with the image's mean gray level (torchvision adjust_contrast). */
export function adjustContrast(x: tf.Tensor4D, factors: ArrayLike<number>): tf.Tensor4D {
  const n = x.shape[0];
  return tf.tidy(() => {
    const meanGray = tf.reshape(tf.matMul(tf.mean(x, [1, 2]), tf.tensor2d(LUMA, [3, 1])), [n, 1, 1, 1]);
    return blend(x, meanGray, perSample(factors)) as tf.Tensor4D;
  });
}

/** Blend with the pixel's gray level (torchvision adjust_saturation). */
export function adjustSaturation(x: tf.Tensor4D, factors: ArrayLike<number>): tf.Tensor4D {
  return tf.tidy(() => blend(x, gray3(x), perSample(factors)) as tf.Tensor4D);
}

/**
 * Rotates the hue by `shifts` (fractions of a turn, torchvision's hue_factor ∈ [−0.5, 0.5]).
 * Hue as torchvision's RGB→HSV; back with the closed form f(n) = v − c·clip(min(k, 4−k), 0, 1),
 * k = (n + 6h) mod 6, n = 5, 3, 1 for R, G, B (value v and chroma c are unchanged by a hue
 * rotation). Ties between maximal channels give the same hue on either branch.
 */
export function adjustHue(x: tf.Tensor4D, shifts: ArrayLike<number>): tf.Tensor4D {
  const [n, h, w] = x.shape;
  const hw = h * w;
  return tf.tidy(() => {
    const [r, g, b] = tf.unstack(tf.transpose(tf.reshape(x, [n * hw, 3]))) as tf.Tensor1D[];
    const maxc = tf.maximum(tf.maximum(r, g), b);
    const minc = tf.minimum(tf.minimum(r, g), b);
    const c = tf.sub(maxc, minc);
    // c = 0 ⇒ all numerators are 0, so any positive divisor gives hue 0 as torchvision.
    const inv = tf.div(1, tf.maximum(c, 1e-12));
    const h6 = tf.where(
      tf.equal(maxc, r),
      tf.mul(tf.sub(g, b), inv),
      tf.where(tf.equal(maxc, g), tf.add(tf.mul(tf.sub(b, r), inv), 2), tf.add(tf.mul(tf.sub(r, g), inv), 4)),
    );
    const shift6 = tf.tensor2d(Float32Array.from(shifts, (v) => 6 * v), [n, 1]);
    const hs = tf.reshape(tf.add(tf.reshape(h6, [n, hw]), shift6), [n * hw]);
    const channel = (offset: number): tf.Tensor1D => {
      const k0 = tf.add(hs, offset);
      const k = tf.sub(k0, tf.mul(tf.floor(tf.mul(k0, 1 / 6)), 6));
      return tf.sub(maxc, tf.mul(c, tf.clipByValue(tf.minimum(k, tf.sub(4, k)), 0, 1)));
    };
    return tf.reshape(tf.transpose(tf.stack([channel(5), channel(3), channel(1)])), [n, h, w, 3]) as tf.Tensor4D;
  });
}

/** Replaces the images where mask[i] = 1 by their gray level on all three channels. */
export function randomGrayscale(x: tf.Tensor4D, mask: ArrayLike<number>): tf.Tensor4D {
  return tf.tidy(() => tf.add(x, tf.mul(tf.sub(gray3(x), x), perSample(mask))) as tf.Tensor4D);
}

/**
 * Inverts pixels ≥ 0.5 in the images where mask[i] = 1 (torchvision RandomSolarize with
 * threshold 128/255 ≈ 0.5 on floats): for x in [0,1] that is min(x, 1 − x).
 */
export function solarize(x: tf.Tensor4D, mask: ArrayLike<number>): tf.Tensor4D {
  return tf.tidy(() => {
    const sol = tf.minimum(x, tf.sub(1, x));
    return tf.add(x, tf.mul(tf.sub(sol, x), perSample(mask))) as tf.Tensor4D;
  });
}

/** The per-channel scale 1/std and bias −mean/std that `normalize` applies (float32 as the kernels get them). */
export function normalizeCoefficients(spec: NormalizeSpec): { scale: number[]; bias: number[] } {
  return {
    scale: [0, 1, 2].map((c) => Math.fround(1 / spec.std[c])),
    bias: [0, 1, 2].map((c) => Math.fround(-spec.mean[c] / spec.std[c])),
  };
}

/** (x − mean) / std per channel, as one fused matMul with a diagonal matrix and a bias. */
export function normalize(x: tf.Tensor4D, spec: NormalizeSpec): tf.Tensor4D {
  return tf.tidy(() => {
    const d = [0, 0, 0, 0, 0, 0, 0, 0, 0];
    for (let c = 0; c < 3; c++) d[4 * c] = 1 / spec.std[c];
    const y = tf.fused.matMul({
      a: tf.reshape(x, [-1, 3]),
      b: tf.tensor2d(d, [3, 3]),
      bias: tf.tensor1d([0, 1, 2].map((c) => -spec.mean[c] / spec.std[c])),
    });
    return tf.reshape(y, x.shape) as tf.Tensor4D;
  });
}
