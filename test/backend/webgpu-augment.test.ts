import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  AUGMENT_VIEW_KERNEL,
  MAX_SIZE,
  type AugmentViewParams,
  type JitterOp,
  augmentViewComposite,
  augmentViewOp,
  hasAugmentViewKernel,
  samplingGrid,
} from '../../lib/backend/augment-op';
import { countDispatches } from '../../lib/backend/webgpu/dispatches';
import { NORMALIZATION, makeRecipe, sampleCrops, twoViews, type RecipeName } from '../../lib/data';
import { cropBoxes } from '../../lib/data/augment';
import { Rng } from '../../lib/util/rng';
import { useWebgpu } from '../helpers';

/**
 * The fused augmentation kernel of lib/backend/webgpu (lib/backend/augment-op.ts's contract)
 * against the composite tfjs ops on the cpu backend, |Δ| ≤ 1e-5·(1 + |ref|) per value:
 * twoViews for every recipe (MoCo v1 with grayscale before the jitter, MoCo v2, SimCLR, BYOL with
 * solarize) at 28→32, 32→32 and 37→24 px, batch 1 and 17, with and without normalisation; the
 * blur path (kernel, then the composite blur, solarize, normalisation); the kernel alone with
 * every step in every jitter order, gray pixels, hue ties, mirrored, out-of-image and one-pixel
 * crops; the dispatches of twoViews (the composite's against the kernel's), tensors flat, and the
 * contract's checks. The sampling grid's arithmetic is checked without a GPU.
 */

const TOL = 1e-5;
let skip: string | null = null;

before(async () => {
  skip = await useWebgpu();
});

/** Largest |a − b| / (1 + |b|), and where. */
function worst(a: Float32Array, b: Float32Array): { err: number; at: number } {
  assert.equal(a.length, b.length, 'lengths');
  let err = 0;
  let at = -1;
  for (let i = 0; i < a.length; i++) {
    const e = Math.abs(a[i] - b[i]) / (1 + Math.abs(b[i]));
    if (!(e <= err)) {
      err = e;
      at = i;
    }
  }
  return { err, at };
}

function agree(got: Float32Array, want: Float32Array, what: string): void {
  const { err, at } = worst(got, want);
  assert.ok(err <= TOL, `${what}: |Δ|/(1+|ref|) = ${err} at ${at} (${got[at]} vs ${want[at]})`);
}

/** twoViews of `data` on `backend`, seeded; tensors checked flat. */
async function viewsOn(backend: 'cpu' | 'webgpu', data: Float32Array, shape: [number, number, number, number], recipe: ReturnType<typeof makeRecipe>, seed: number): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  assert.equal(hasAugmentViewKernel(), backend === 'webgpu', `${AUGMENT_VIEW_KERNEL} on ${backend}`);
  const before = tf.memory().numTensors;
  const x = tf.tensor4d(data, shape);
  const { view1, view2 } = twoViews(x, recipe, new Rng(seed));
  const out = [(await view1.data()) as Float32Array, (await view2.data()) as Float32Array];
  tf.dispose([x, view1, view2]);
  assert.equal(tf.memory().numTensors, before, `${backend}: tensors leaked`);
  return out;
}

for (const name of ['mocov1', 'mocov2', 'simclr', 'byol'] as RecipeName[]) {
  test(`twoViews ${name} on webgpu (fused kernel) matches the cpu composite: 28→32, 32→32, 37→24 px, batch 1 and 17, with and without normalisation`, async (t) => {
    if (skip) return t.skip(skip);
    for (const [h, size] of [[28, 32], [32, 32], [37, 24]]) {
      for (const n of [1, 17]) {
        const data = new Rng(h * 100 + n).fillUniform(new Float32Array(n * h * h * 3));
        for (const normalize of [null, NORMALIZATION.cifar10]) {
          const recipe = makeRecipe(name, { size, normalize });
          const got = await viewsOn('webgpu', data, [n, h, h, 3], recipe, 9);
          const want = await viewsOn('cpu', data, [n, h, h, 3], recipe, 9);
          const what = `${name} ${h}→${size} batch ${n}${normalize ? ' normalised' : ''}`;
          agree(got[0], want[0], `${what} view 1`);
          agree(got[1], want[1], `${what} view 2`);
        }
      }
    }
  });
}

test('twoViews with the blur on webgpu matches the cpu composite (kernel, then blur, solarize and normalisation as composite ops)', async (t) => {
  if (skip) return t.skip(skip);
  const [n, h, size] = [17, 37, 24];
  const data = new Rng(4).fillUniform(new Float32Array(n * h * h * 3));
  for (const name of ['byol', 'mocov2'] as RecipeName[]) {
    const recipe = makeRecipe(name, { size, blur: true, normalize: NORMALIZATION.imagenet });
    const got = await viewsOn('webgpu', data, [n, h, h, 3], recipe, 3);
    const want = await viewsOn('cpu', data, [n, h, h, 3], recipe, 3);
    agree(got[0], want[0], `${name} + blur view 1`);
    agree(got[1], want[1], `${name} + blur view 2`);
  }
});

/** Every permutation of the four jitter ops. */
function permutations(ops: JitterOp[]): JitterOp[][] {
  if (ops.length <= 1) return [ops];
  return ops.flatMap((op, i) => permutations([...ops.slice(0, i), ...ops.slice(i + 1)]).map((rest) => [op, ...rest]));
}

/**
 * Source images with the hue's special cases: image 0 gray (chroma 0), image 1 with red = green
 * (ties between maximal channels), the rest random.
 */
function specialImages(n: number, h: number, w: number, seed: number): Float32Array {
  const data = new Rng(seed).fillUniform(new Float32Array(n * h * w * 3));
  for (let p = 0; p < h * w; p++) {
    data[3 * p + 1] = data[3 * p + 2] = data[3 * p];
    const q = (h * w + p) * 3;
    data[q + 1] = data[q];
    data[q + 2] = 0.5 * data[q];
  }
  return data;
}

async function viewOn(backend: 'cpu' | 'webgpu', data: Float32Array, shape: [number, number, number, number], p: AugmentViewParams): Promise<Float32Array> {
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  const x = tf.tensor4d(data, shape);
  const padded = tf.mirrorPad(x, [[0, 0], [1, 1], [1, 1], [0, 0]], 'symmetric');
  const y = backend === 'webgpu' ? augmentViewOp(padded, p) : augmentViewComposite(padded, p);
  const out = (await y.data()) as Float32Array;
  tf.dispose([x, padded, y]);
  assert.equal(tf.memory().numTensors, before, `${backend}: tensors leaked`);
  return out;
}

test('the kernel alone: every step in every jitter order, grayscale before and after, solarize, gray pixels, hue ties, mirrored, out-of-image and one-pixel outputs', async (t) => {
  if (skip) return t.skip(skip);
  const [n, h, w, size] = [5, 9, 7, 6];
  const data = specialImages(n, h, w, 8);
  const rng = new Rng(12);
  const crops = sampleCrops(n, h, w, { scale: [0.08, 1], ratio: [3 / 4, 4 / 3] }, 0.5, rng);
  crops[2].flip = true;
  const boxes = cropBoxes(crops, h, w, size, size);
  // Image 3's box reaches outside the padded image on both axes: cropAndResize's zeros there.
  boxes.set([-0.3, 1.2, 0.6, -0.1], 12);
  const factor = (lo: number, hi: number) => Float32Array.from({ length: n }, () => rng.uniform(lo, hi));
  const jitter = { brightness: factor(0.2, 1.8), contrast: factor(0.2, 1.8), saturation: factor(0.2, 1.8), hue: factor(-0.5, 0.5) };
  const grayscale = Float32Array.from([0, 1, 0, 1, 0]);
  const solarize = Float32Array.from([1, 0, 1, 1, 0]);
  let cases = 0;
  for (const order of permutations(['brightness', 'contrast', 'saturation', 'hue'])) {
    for (const grayscaleBeforeJitter of [false, true]) {
      const p: AugmentViewParams = { size, boxes, jitter: { order, ...jitter }, grayscale, grayscaleBeforeJitter, solarize, normalize: cases % 3 === 0 ? NORMALIZATION.cifar100 : null };
      agree(await viewOn('webgpu', data, [n, h, w, 3], p), await viewOn('cpu', data, [n, h, w, 3], p), `order ${order.join(',')}, grayscale ${grayscaleBeforeJitter ? 'before' : 'after'}`);
      cases++;
    }
  }
  // Contrast alone (the mean pass sees the crop only) and no step at all (crop + normalise).
  for (const order of [['contrast'], []] as JitterOp[][]) {
    const p: AugmentViewParams = { size, boxes, jitter: { order, ...jitter }, normalize: NORMALIZATION.cifar10 };
    agree(await viewOn('webgpu', data, [n, h, w, 3], p), await viewOn('cpu', data, [n, h, w, 3], p), `jitter [${order.join(',')}] only`);
  }
  // Output side 1: cropAndResize samples the box centre.
  const one: AugmentViewParams = { size: 1, boxes: cropBoxes(crops, h, w, 1, 1), jitter: { order: ['hue', 'contrast'], ...jitter }, grayscale };
  agree(await viewOn('webgpu', data, [n, h, w, 3], one), await viewOn('cpu', data, [n, h, w, 3], one), 'size 1');
  const zeros = (await viewOn('webgpu', data, [n, h, w, 3], { size, boxes })).subarray(3 * size * size * 3, 4 * size * size * 3);
  assert.ok(zeros.some((v) => v === 0) && zeros.some((v) => v !== 0), 'image 3 samples inside and outside the image');
});

test('twoViews on webgpu: a handful of dispatches where the composite takes ~150, tensors flat', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  // The bench's step (bench/sections/12-webgpu-step.ts): MoCo v2 at 32 px, batch 8.
  const recipe = makeRecipe('mocov2', { size: 32 });
  const images = tf.tidy(() => tf.randomUniform([8, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D);
  const fused = await countDispatches(() => twoViews(images, recipe, new Rng(5)));
  tf.dispose([fused.result.view1, fused.result.view2]);
  // One edge pad shared by both views; per view the pixel pass and, with a contrast step, the mean pass.
  const by = Object.fromEntries(fused.count.byProgram);
  assert.deepEqual(Object.keys(by).sort(), ['AugmentViewProgram', 'MeanGrayProgram', 'MirrorPadProgram'], JSON.stringify(by));
  assert.equal(by.MirrorPadProgram, 1);
  assert.equal(by.AugmentViewProgram, 2);
  assert.ok(fused.count.total <= 5, `${fused.count.total} dispatches`);
  // The same two views from the composite ops (what twoViews ran before the kernel).
  const composite = await countDispatches(() =>
    tf.tidy(() => {
      const padded = tf.mirrorPad(images, [[0, 0], [1, 1], [1, 1], [0, 0]], 'symmetric');
      const rng = new Rng(5);
      return [0, 1].map(() => {
        const crops = sampleCrops(8, 32, 32, recipe.views[0].crop, 0.5, rng);
        const jitter = { order: ['brightness', 'contrast', 'saturation', 'hue'] as JitterOp[], brightness: new Float32Array(8).fill(1.2), contrast: new Float32Array(8).fill(0.8), saturation: new Float32Array(8).fill(1.1), hue: new Float32Array(8).fill(0.05) };
        return augmentViewComposite(padded, { size: 32, boxes: cropBoxes(crops, 32, 32, 32, 32), jitter, grayscale: Float32Array.from([1, 0, 0, 0, 0, 0, 0, 0]) });
      });
    }),
  );
  tf.dispose(composite.result);
  assert.ok(composite.count.total > 100, `composite: ${composite.count.total} dispatches`);
  t.diagnostic(`twoViews dispatches: fused ${fused.count.total} (${JSON.stringify(by)}), composite ${composite.count.total}`);

  const counts: number[] = [];
  for (let step = 0; step < 3; step++) {
    const { view1, view2 } = twoViews(images, recipe, new Rng(step));
    await view2.data();
    tf.dispose([view1, view2]);
    counts.push(tf.memory().numTensors);
  }
  assert.deepEqual(counts, [counts[0], counts[0], counts[0]], `tensor counts ${counts}`);
  images.dispose();
});

test('the kernel names what is wrong with its inputs', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const image = tf.zeros([2, 6, 6, 3]);
  const grid = tf.zeros([2, 8]);
  const factors = tf.zeros([2, 4]);
  const masks = tf.zeros([2, 2]);
  const run = (inputs: Record<string, tf.Tensor>, attrs: Record<string, unknown>) => () =>
    tf.engine().runKernel(AUGMENT_VIEW_KERNEL, { image, grid, factors, masks, ...inputs } as unknown as tf.NamedTensorMap, { size: 4, steps: [], mean: [], std: [], ...attrs } as unknown as tf.NamedAttrMap);
  const bad = tf.zeros([2, 4]);
  assert.throws(run({ grid: bad }, {}), /grid must be \[2, 8\] for 2 images, got \[2, 4\]/);
  assert.throws(run({}, { steps: ['contrast', 'contrast'] }), /step 'contrast' listed twice/);
  assert.throws(run({}, { steps: ['sharpen'] }), /unknown step 'sharpen'/);
  assert.throws(run({}, { size: MAX_SIZE + 1 }), /size must be an integer in \[1, 4096\], got 4097/);
  assert.throws(run({}, { mean: [0.5], std: [0.2] }), /mean and std must hold 3 values each/);
  const gray = tf.zeros([2, 6, 6, 1]);
  assert.throws(run({ image: gray }, {}), /image must be \[n, h, w, 3\], got \[2, 6, 6, 1\]/);
  const padded = tf.zeros([2, 6, 6, 3]) as tf.Tensor4D;
  assert.throws(() => augmentViewOp(padded, { size: 4, boxes: new Float32Array(4) }), /augmentViewOp: 4 box values for 2 images; expected 4 per image \(8\)/);
  tf.dispose([image, grid, factors, masks, bad, gray, padded]);
});

test('samplingGrid: start + i·step as cropAndResize computes it in doubles, within 3e-7 (a few float32 roundings below 2) when summed the way the kernel does', () => {
  const f = Math.fround;
  const rng = new Rng(2);
  for (const [H, S] of [[34, 32], [39, 24], [226, 224], [30, 1], [4097, 4096]]) {
    const n = 16;
    const boxes = Float32Array.from({ length: 4 * n }, () => rng.uniform(-0.1, 1.1));
    const grid = samplingGrid(boxes, H, H, S);
    for (let b = 0; b < n; b++) {
      for (const axis of [0, 1]) {
        const [y1, y2] = [boxes[4 * b + axis], boxes[4 * b + axis + 2]];
        const [whole, fraction, head, tail] = grid.subarray(8 * b + 4 * axis, 8 * b + 4 * axis + 4);
        for (let i = 0; i < S; i += Math.max(1, Math.floor(S / 37))) {
          const exact = S > 1 ? y1 * (H - 1) + i * (((y2 - y1) * (H - 1)) / (S - 1)) : 0.5 * (y1 + y2) * (H - 1);
          // The kernel's arithmetic in float32: i·head must be exact.
          const v = i * head;
          assert.equal(f(v), v, `i·head exact (H ${H}, S ${S}, i ${i})`);
          const w0 = f(f(fraction + (v - Math.floor(v))) + f(i * tail));
          const got = whole + Math.floor(v) + w0;
          assert.ok(Math.abs(got - exact) < 3e-7, `H ${H}, S ${S}, image ${b}, axis ${axis}, sample ${i}: ${got} vs ${exact}`);
        }
      }
    }
  }
});
