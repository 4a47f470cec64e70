import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { relError, useBackend } from '../helpers';
import { Rng } from '../../lib/util/rng';
import {
  NORMALIZATION,
  adjustBrightness,
  adjustContrast,
  adjustHue,
  adjustSaturation,
  cropResizeFlip,
  gaussianBlur,
  loadAll,
  makeRecipe,
  normalize,
  randomGrayscale,
  sampleCrop,
  sampleJitter,
  solarize,
  syntheticDataset,
  testTransform,
  twoViews,
  type RecipeName,
} from '../../lib/data';

before(async () => {
  await useBackend('wasm');
});

const f32 = async (t: tf.Tensor): Promise<Float32Array> => (await t.data()) as Float32Array;

function randomBatch(n: number, h: number, w: number, seed: number): tf.Tensor4D {
  const rng = new Rng(seed);
  return tf.tensor4d(rng.fillUniform(new Float32Array(n * h * w * 3)), [n, h, w, 3]);
}

test('sampleCrop: torchvision bounds — area share within scale, aspect within ratio, inside the image', () => {
  const rng = new Rng(3);
  for (const [h, w] of [[32, 32], [64, 64], [30, 50]]) {
    for (const scale of [[0.2, 1], [0.08, 1]] as [number, number][]) {
      let minShare = 1;
      for (let i = 0; i < 2000; i++) {
        const c = sampleCrop(h, w, { scale, ratio: [3 / 4, 4 / 3] }, rng);
        assert.ok(c.top >= 0 && c.left >= 0 && c.top + c.height <= h && c.left + c.width <= w, JSON.stringify(c));
        const share = (c.height * c.width) / (h * w);
        minShare = Math.min(minShare, share);
        // Rounding of h and w moves the share a little outside the range at small sizes.
        assert.ok(share >= scale[0] * 0.6 && share <= 1, `share ${share}`);
        const aspect = c.width / c.height;
        if (c.height > 4 && c.width > 4 && share < 1) assert.ok(aspect > 0.6 && aspect < 1.7, `aspect ${aspect}`);
      }
      assert.ok(minShare < scale[0] + 0.05, `small crops occur (min share ${minShare})`);
    }
  }
});

test('cropResizeFlip: full box is the identity, flip mirrors, sub-crop equals a slice, upscaling matches PyTorch bilinear (align_corners=False)', async () => {
  const x = randomBatch(2, 8, 8, 1);
  const full = { top: 0, left: 0, height: 8, width: 8 };
  const id = cropResizeFlip(x, [{ ...full, flip: false }, { ...full, flip: false }], 8, 8);
  assert.ok(relError(await f32(id), await f32(x)) < 1e-6);
  const fl = cropResizeFlip(x, [{ ...full, flip: true }, { ...full, flip: false }], 8, 8);
  const ref = tf.concat([tf.reverse(x.slice([0], [1]), 2), x.slice([1], [1])]);
  assert.ok(relError(await f32(fl), await f32(ref)) < 1e-6);
  const sub = cropResizeFlip(x, [{ top: 2, left: 1, height: 4, width: 5, flip: false }, { top: 0, left: 0, height: 4, width: 5, flip: false }], 4, 5);
  const subRef = tf.concat([x.slice([0, 2, 1, 0], [1, 4, 5, 3]), x.slice([1, 0, 0, 0], [1, 4, 5, 3])]);
  assert.ok(relError(await f32(sub), await f32(subRef)) < 1e-6);

  // Reference: PyTorch's bilinear interpolate (align_corners=False) of the cropped image, whose
  // source coordinates are clamped at the crop's edges.
  const xs = (await x.data()) as Float32Array;
  const pix = (r: number, c: number, ch: number): number => xs[(r * 8 + c) * 3 + ch];
  const src = (o: number, inSize: number, outSize: number): [number, number, number, boolean] => {
    const raw = (o + 0.5) * (inSize / outSize) - 0.5;
    const s = Math.max(0, raw);
    const i0 = Math.floor(s);
    return [i0, Math.min(i0 + 1, inSize - 1), s - i0, raw >= 0 && raw <= inSize - 1];
  };
  const torchResize = (top: number, left: number, ch0: number, cw0: number, oh: number, ow: number, onlyInterior: boolean): [number[], number[]] => {
    const got: number[] = [];
    const want: number[] = [];
    for (let r = 0; r < oh; r++) {
      const [r0, r1, fr, rin] = src(r, ch0, oh);
      for (let c = 0; c < ow; c++) {
        const [c0, c1, fc, cin] = src(c, cw0, ow);
        for (let ch = 0; ch < 3; ch++) {
          if (onlyInterior && !(rin && cin)) continue;
          const v =
            (1 - fr) * ((1 - fc) * pix(top + r0, left + c0, ch) + fc * pix(top + r0, left + c1, ch)) +
            fr * ((1 - fc) * pix(top + r1, left + c0, ch) + fc * pix(top + r1, left + c1, ch));
          want.push(v);
          got.push((r * ow + c) * 3 + ch);
        }
      }
    }
    return [got, want];
  };
  // Whole image upscaled 8 → 13×11: exact, including the clamped border samples.
  const upFull = (await cropResizeFlip(x.slice([0], [1]), [{ ...full, flip: false }], 13, 11).data()) as Float32Array;
  const [gi, want] = torchResize(0, 0, 8, 8, 13, 11, false);
  assert.ok(relError(gi.map((i) => upFull[i]), want) < 1e-5, `full upscale rel ${relError(gi.map((i) => upFull[i]), want)}`);
  // A sub-crop upscaled: interior samples exact; the outermost half output pixel blends with the
  // pixel just outside the crop instead of clamping (documented in cropResizeFlip).
  const up = (await cropResizeFlip(x.slice([0], [1]), [{ top: 1, left: 2, height: 4, width: 3, flip: false }], 7, 5).data()) as Float32Array;
  const [gi2, want2] = torchResize(1, 2, 4, 3, 7, 5, true);
  assert.ok(gi2.length > 0 && relError(gi2.map((i) => up[i]), want2) < 1e-5);
  tf.dispose([x, id, fl, ref, sub, subRef]);
});

/** torchvision's float RGB→HSV→RGB hue adjustment, per pixel, as a reference. */
function hueRef(r: number, g: number, b: number, shift: number): [number, number, number] {
  const maxc = Math.max(r, g, b);
  const minc = Math.min(r, g, b);
  const eq = maxc === minc;
  const cr = maxc - minc;
  const s = cr / (eq ? 1 : maxc);
  const d = eq ? 1 : cr;
  const rc = (maxc - r) / d;
  const gc = (maxc - g) / d;
  const bc = (maxc - b) / d;
  const hr = maxc === r ? bc - gc : 0;
  const hg = maxc === g && maxc !== r ? 2 + rc - bc : 0;
  const hb = maxc !== g && maxc !== r ? 4 + gc - rc : 0;
  let h = ((hr + hg + hb) / 6 + 1) % 1;
  h = (((h + shift) % 1) + 1) % 1;
  const v = maxc;
  const i = Math.floor(h * 6) % 6;
  const f = h * 6 - Math.floor(h * 6);
  const clamp = (t: number): number => Math.min(1, Math.max(0, t));
  const p = clamp(v * (1 - s));
  const q = clamp(v * (1 - s * f));
  const t = clamp(v * (1 - s * (1 - f)));
  return [
    [v, q, p, p, t, v][i],
    [t, v, v, q, p, p][i],
    [p, p, t, v, v, q][i],
  ];
}

test('adjustHue matches torchvision HSV round trip; shift 0 is the identity', async () => {
  const n = 6;
  const x = randomBatch(n, 5, 4, 7);
  // Include gray pixels and ties between maximal channels.
  const xs = Float32Array.from(await x.data());
  xs.set([0.5, 0.5, 0.5, 1, 1, 0, 0.2, 0.7, 0.7, 0, 0, 0], 0);
  const xt = tf.tensor4d(xs, x.shape);
  const shifts = [0.1, -0.1, 0.5, -0.5, 0.37, 0];
  const y = (await adjustHue(xt, shifts).data()) as Float32Array;
  const ref: number[] = [];
  const per = 5 * 4;
  for (let k = 0; k < n * per; k++) ref.push(...hueRef(xs[3 * k], xs[3 * k + 1], xs[3 * k + 2], shifts[Math.floor(k / per)]));
  assert.ok(relError(y, ref) < 1e-5, `rel ${relError(y, ref)}`);
  const zero = adjustHue(xt, new Array(n).fill(0));
  assert.ok(relError(await f32(zero), xs) < 1e-5);
  tf.dispose([x, xt, zero]);
});

test('brightness, contrast, saturation follow torchvision formulas; grayscale has equal channels', async () => {
  const x = randomBatch(3, 4, 4, 9);
  const xs = (await x.data()) as Float32Array;
  const f = [0.5, 1, 1.6];
  const clamp = (t: number): number => Math.min(1, Math.max(0, t));
  const gray = (k: number): number => 0.2989 * xs[3 * k] + 0.587 * xs[3 * k + 1] + 0.114 * xs[3 * k + 2];
  const br = (await adjustBrightness(x, f).data()) as Float32Array;
  const sa = (await adjustSaturation(x, f).data()) as Float32Array;
  const co = (await adjustContrast(x, f).data()) as Float32Array;
  const means = [0, 1, 2].map((i) => {
    let s = 0;
    for (let k = i * 16; k < (i + 1) * 16; k++) s += gray(k);
    return s / 16;
  });
  const brRef: number[] = [];
  const saRef: number[] = [];
  const coRef: number[] = [];
  for (let k = 0; k < 48; k++) {
    const i = Math.floor(k / 16);
    for (let c = 0; c < 3; c++) {
      const v = xs[3 * k + c];
      brRef.push(clamp(v * f[i]));
      saRef.push(clamp(f[i] * v + (1 - f[i]) * gray(k)));
      coRef.push(clamp(f[i] * v + (1 - f[i]) * means[i]));
    }
  }
  assert.ok(relError(br, brRef) < 1e-6);
  assert.ok(relError(sa, saRef) < 1e-5);
  assert.ok(relError(co, coRef) < 1e-5);
  const g = (await randomGrayscale(x, [1, 0, 1]).data()) as Float32Array;
  for (let k = 0; k < 48; k++) {
    const i = Math.floor(k / 16);
    if (i === 1) {
      assert.equal(g[3 * k], xs[3 * k]);
      continue;
    }
    assert.ok(Math.abs(g[3 * k] - g[3 * k + 1]) < 1e-6 && Math.abs(g[3 * k] - g[3 * k + 2]) < 1e-6);
    assert.ok(Math.abs(g[3 * k] - gray(k)) < 1e-5);
  }
  x.dispose();
});

test('solarize inverts pixels ≥ 0.5 of selected images; normalize gives (x − mean)/std', async () => {
  const x = randomBatch(2, 3, 3, 4);
  const xs = (await x.data()) as Float32Array;
  const s = (await solarize(x, [1, 0]).data()) as Float32Array;
  for (let k = 0; k < xs.length; k++) {
    const expected = k < 27 && xs[k] >= 0.5 ? 1 - xs[k] : xs[k];
    assert.ok(Math.abs(s[k] - expected) < 1e-6);
  }
  const { mean, std } = NORMALIZATION.cifar100;
  const nz = (await normalize(x, NORMALIZATION.cifar100).data()) as Float32Array;
  for (let k = 0; k < xs.length; k++) assert.ok(Math.abs(nz[k] - (xs[k] - mean[k % 3]) / std[k % 3]) < 1e-5);
  // On real data normalised with its own statistics: mean ≈ 0, std ≈ 1 per channel.
  const ds = syntheticDataset({ size: 64, seed: 2 });
  const b = await loadAll(ds);
  const m = tf.mean(b.images, [0, 1, 2]);
  const sd = tf.sqrt(tf.mean(tf.square(tf.sub(b.images, m)), [0, 1, 2]));
  const stats = { mean: Array.from(await m.data()) as [number, number, number], std: Array.from(await sd.data()) as [number, number, number] };
  const out = normalize(b.images, stats);
  const mo = await tf.mean(out, [0, 1, 2]).data();
  const so = await tf.sqrt(tf.mean(tf.square(out), [0, 1, 2])).data();
  for (let c = 0; c < 3; c++) {
    assert.ok(Math.abs(mo[c]) < 1e-4, `mean ${mo[c]}`);
    assert.ok(Math.abs(so[c] - 1) < 1e-3, `std ${so[c]}`);
  }
  tf.dispose([x, b.images, b.labels, m, sd, out]);
});

test('gaussianBlur: σ = 0 is the identity, constants stay constant, an impulse spreads symmetrically and keeps its mass', async () => {
  const x = randomBatch(2, 9, 9, 5);
  const id = gaussianBlur(x, [0, 0], 5);
  assert.ok(relError(await f32(id), await f32(x)) < 1e-6);
  const c = tf.fill([2, 9, 9, 3], 0.3) as tf.Tensor4D;
  const bc = await gaussianBlur(c, [1.5, 0.7], 5).data();
  for (const v of bc) assert.ok(Math.abs(v - 0.3) < 1e-6);
  const imp = new Float32Array(2 * 81 * 3);
  imp[(4 * 9 + 4) * 3 + 1] = 1; // image 0, centre, green
  const bi = (await gaussianBlur(tf.tensor4d(imp, [2, 9, 9, 3]), [1.0, 1.0], 5).data()) as Float32Array;
  let mass = 0;
  for (let k = 0; k < 81; k++) mass += bi[3 * k + 1];
  assert.ok(Math.abs(mass - 1) < 1e-5);
  const at = (r: number, q: number): number => bi[(r * 9 + q) * 3 + 1];
  assert.ok(Math.abs(at(4, 3) - at(4, 5)) < 1e-7 && Math.abs(at(3, 4) - at(4, 3)) < 1e-7 && at(4, 4) > at(4, 3));
  // 1D Gaussian taps with σ = 1: centre weight = 1 / Σ exp(−t²/2), t = −2..2, squared for 2D.
  const w0 = 1 / [0, 1, 2].reduce((s, t) => s + (t === 0 ? 1 : 2) * Math.exp(-(t * t) / 2), 0);
  assert.ok(Math.abs(at(4, 4) - w0 * w0) < 1e-6);
  for (let k = 0; k < 81; k++) assert.equal(bi[243 + 3 * k + 1], 0); // image 1 untouched
  tf.dispose([x, id, c]);
});

test('sampleJitter honours the probability and torchvision ranges', () => {
  const p = sampleJitter(4000, { brightness: 0.4, contrast: 0.4, saturation: 0.2, hue: 0.1, prob: 0.8 }, new Rng(1), 'batch');
  let applied = 0;
  for (let i = 0; i < 4000; i++) {
    if (p.brightness[i] !== 1) applied++;
    assert.ok(p.brightness[i] >= 0.6 && p.brightness[i] <= 1.4);
    assert.ok(p.saturation[i] >= 0.8 && p.saturation[i] <= 1.2);
    assert.ok(Math.abs(p.hue[i]) <= 0.1);
  }
  assert.ok(Math.abs(applied / 4000 - 0.8) < 0.03, `applied share ${applied / 4000}`);
  assert.deepEqual([...p.order].sort(), ['brightness', 'contrast', 'hue', 'saturation']);
});

test('twoViews: every recipe at 32 and 64 px gives [0,1] views of the right shape, reproducible from the seed, no leaks', async () => {
  for (const size of [32, 64]) {
    const ds = syntheticDataset({ size: 16, height: size, width: size, seed: size });
    const b = await loadAll(ds);
    for (const name of ['mocov1', 'mocov2', 'simclr', 'byol', 'simsiam'] as RecipeName[]) {
      const recipe = makeRecipe(name, { size });
      const before = tf.memory().numTensors;
      const a = twoViews(b.images, recipe, new Rng(11));
      assert.equal(tf.memory().numTensors, before + 2, `${name}: only the two views remain`);
      const again = twoViews(b, recipe, new Rng(11));
      const other = twoViews(b.images, recipe, new Rng(12));
      assert.deepEqual(a.view1.shape, [16, size, size, 3]);
      const v1 = (await a.view1.data()) as Float32Array;
      const v2 = (await a.view2.data()) as Float32Array;
      for (const v of [v1, v2]) {
        let lo = Infinity;
        let hi = -Infinity;
        for (const t of v) {
          lo = Math.min(lo, t);
          hi = Math.max(hi, t);
        }
        assert.ok(lo >= 0 && hi <= 1 + 1e-6, `${name}@${size}: range [${lo}, ${hi}]`);
      }
      assert.deepEqual(await again.view1.data(), v1, `${name}: same seed, same view1`);
      assert.deepEqual(await again.view2.data(), v2, `${name}: same seed, same view2`);
      assert.ok(relError(await f32(other.view1), v1) > 1e-2, `${name}: another seed differs`);
      assert.ok(relError(v2, v1) > 1e-2, `${name}: the two views differ`);
      tf.dispose([a.view1, a.view2, again.view1, again.view2, other.view1, other.view2]);
      assert.equal(tf.memory().numTensors, before);
    }
    tf.dispose([b.images, b.labels]);
  }
});

test('recipes: the documented scaling (blur off at 32 px, BYOL asymmetry, crop scales) and normalised output', async () => {
  const byol32 = makeRecipe('byol', { size: 32 });
  assert.equal(byol32.views[0].blur, null);
  assert.equal(byol32.views[1].solarizeProb, 0.2);
  assert.equal(byol32.views[0].solarizeProb, 0);
  const byol64 = makeRecipe('byol', { size: 64 });
  assert.equal(byol64.views[0].blur?.prob, 1);
  assert.equal(byol64.views[1].blur?.prob, 0.1);
  assert.equal(byol64.views[0].blur?.kernelSize, 7);
  assert.equal(makeRecipe('mocov2', { size: 224 }).views[0].blur?.kernelSize, 23);
  assert.deepEqual(makeRecipe('mocov2', { size: 32 }).views[0].crop?.scale, [0.2, 1]);
  assert.deepEqual(makeRecipe('simclr', { size: 32 }).views[0].crop?.scale, [0.08, 1]);
  assert.equal(makeRecipe('mocov1', { size: 32 }).views[0].grayscaleBeforeJitter, true);
  assert.throws(() => makeRecipe('nope' as RecipeName, { size: 32 }), /unknown recipe "nope"/);
  // minCropScale raises the lower bound of every view's crop, and never lowers it.
  for (const v of makeRecipe('byol', { size: 32, minCropScale: 0.5 }).views) assert.deepEqual(v.crop?.scale, [0.5, 1]);
  assert.deepEqual(makeRecipe('mocov2', { size: 32, minCropScale: 0.1 }).views[0].crop?.scale, [0.2, 1]);
  assert.throws(() => makeRecipe('mocov2', { size: 32, minCropScale: 1.5 }), /minCropScale must be in \[0, 1\], got 1.5/);

  // BYOL view 2 solarizes ~20 % of images: with all-bright inputs and no jitter or gray, view 2
  // has pixels < 0.5 only where solarized.
  const x = tf.fill([200, 8, 8, 3], 0.9) as tf.Tensor4D;
  const r = makeRecipe('byol', { size: 8 });
  r.views = r.views.map((v) => ({ ...v, jitter: null, grayscaleProb: 0 })) as typeof r.views;
  const { view1, view2 } = twoViews(x, r, new Rng(4));
  const m1 = await tf.min(view1, [1, 2, 3]).data();
  const m2 = await tf.min(view2, [1, 2, 3]).data();
  assert.equal(Array.from(m1).filter((v) => v < 0.5).length, 0);
  const sol = Array.from(m2).filter((v) => v < 0.5).length / 200;
  assert.ok(sol > 0.1 && sol < 0.3, `solarized share ${sol}`);

  // Test transform: normalised, resized with centre crop when the size differs.
  const t = testTransform(x, { size: 8, normalize: NORMALIZATION.imagenet });
  const tv = await t.data();
  assert.ok(Math.abs(tv[0] - (0.9 - 0.485) / 0.229) < 1e-5);
  const t2 = testTransform(randomBatch(2, 10, 12, 1), { size: 8, normalize: null });
  assert.deepEqual(t2.shape, [2, 8, 8, 3]);
  tf.dispose([x, view1, view2, t, t2]);
});
