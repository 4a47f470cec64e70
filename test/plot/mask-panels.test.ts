import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import sharpDefault from 'sharp';
import { maskDrawStats, type Grid, type MaskDrawStats } from '../../lib/masks';
import { MASK_TYPE_COLORS, drawStatsHistogram, drawStatsSummary, maskPatternsFigure, maskSliderFigure, mixedImages, photoDataUri } from '../../lib/plot';
import { encodePng } from '../../lib/masks';
import { Rng } from '../../lib/util/rng';
import { useBackend } from '../helpers';

// sharp's typings are its ESM build; under CommonJS the require() value is the factory.
const sharp = ((sharpDefault as unknown as { default?: typeof sharpDefault }).default ?? sharpDefault) as typeof sharpDefault;

before(() => useBackend('cpu'));

/** The pixels of a PNG data URI, one channel (all channels of these test images are equal). */
async function firstChannel(uri: string): Promise<number[]> {
  const { data, info } = await sharp(Buffer.from(uri.replace(/^data:image\/png;base64,/, ''), 'base64')).raw().toBuffer({ resolveWithObject: true });
  return Array.from({ length: info.width * info.height }, (_, i) => data[i * info.channels]);
}

/** A white image A and a black image B, 4×4 pixels. */
const whiteBlack = (): tf.Tensor4D => tf.concat([tf.ones([1, 4, 4, 3]), tf.zeros([1, 4, 4, 3])]) as tf.Tensor4D;

/** A 2×2 grid whose top-right cell is filled from the partner. */
const topRight: Grid = { size: 2, keep: Uint8Array.from([1, 0, 1, 1]), filled: 1, target: 1, type: 'block' };

test('mixedImages: the mask and each image mixed with its flip partner, with realised λ and blocks; no tensor left behind', async () => {
  const images = whiteBlack();
  const before = tf.memory().numTensors;
  const m = await mixedImages(images, topRight);
  assert.equal(tf.memory().numTensors, before);
  images.dispose();
  assert.equal(m.lambda, 0.75);
  assert.equal(m.components, 1);
  // Top-right 2×2 pixels come from the partner: black in A, white in B; the mask is black there.
  const tr = (i: number) => Math.floor(i / 4) < 2 && i % 4 >= 2;
  assert.deepEqual(await firstChannel(m.mask), Array.from({ length: 16 }, (_, i) => (tr(i) ? 0 : 255)));
  assert.deepEqual(await firstChannel(m.mixed[0]), Array.from({ length: 16 }, (_, i) => (tr(i) ? 0 : 255)));
  assert.deepEqual(await firstChannel(m.mixed[1]), Array.from({ length: 16 }, (_, i) => (tr(i) ? 255 : 0)));
});

test('maskPatternsFigure: the inputs, then per grid its mask (titled with name, λ, blocks) and the two mixed images, lettered', async () => {
  const images = whiteBlack();
  const other: Grid = { size: 2, keep: Uint8Array.from([0, 1, 1, 0]), filled: 2, target: 2, type: 'discrete' };
  const fig = await maskPatternsFigure(images, [{ name: 'discrete', grid: other }, { name: 'block', grid: topRight }], { title: 'Figure 2' });
  const titles = (fig.layout!.annotations as Array<{ text: string }>).map((a) => a.text);
  assert.deepEqual(titles, [
    '(a) input A', '(b) input B', '',
    '(c) discrete mask · λ = 0.500 · 2 blocks', '(d) A with B in the masked cells', '(e) B with A in the masked cells',
    '(f) block mask · λ = 0.750 · 1 blocks', '(g) A with B in the masked cells', '(h) B with A in the masked cells',
  ]);
  // The blank third panel has no image: 8 image traces.
  assert.equal(fig.data.length, 8);
  assert.ok(fig.data.every((d) => d.type === 'image'));
  assert.deepEqual(await firstChannel(fig.data[0].source as string), new Array(16).fill(255));
  assert.deepEqual(await firstChannel(fig.data[1].source as string), new Array(16).fill(0));
  await assert.rejects(maskPatternsFigure(tf.concat([images, images]) as tf.Tensor4D, []), /expected a batch of two images \(A and B\), got 4/);
  images.dispose();
});

test('maskSliderFigure: one block and one discrete image per setting, only the active pair visible, each step shows its own pair and titles', async () => {
  const images = whiteBlack();
  const settings = [{ label: '0.25', gridSize: 2, ratio: 0.25 }, { label: '0.5', gridSize: 2, ratio: 0.5 }, { label: '0.75', gridSize: 4, ratio: 0.75 }];
  const before = tf.memory().numTensors;
  const fig = await maskSliderFigure(images, settings, { active: 1, rng: new Rng(3), title: 'ratio', prefix: 'r = ' });
  assert.equal(tf.memory().numTensors, before);
  assert.equal(fig.data.length, 6);
  assert.deepEqual(fig.data.map((d) => d.visible), [false, false, true, true, false, false]);
  assert.deepEqual(fig.data.map((d) => d.xaxis), ['x', 'x2', 'x', 'x2', 'x', 'x2']);
  const slider = (fig.layout!.sliders as Array<{ active: number; steps: Array<{ label: string; args: [{ visible: boolean[] }, { annotations: Array<{ text: string }> }] }> }>)[0];
  assert.equal(slider.active, 1);
  assert.deepEqual(slider.steps.map((s) => s.label), ['0.25', '0.5', '0.75']);
  slider.steps.forEach((s, k) => {
    assert.deepEqual(s.args[0].visible, [0, 1, 2, 3, 4, 5].map((i) => Math.floor(i / 2) === k));
    const [left, right] = s.args[1].annotations.map((a) => a.text);
    assert.match(left, new RegExp(`^block: g = ${settings[k].gridSize}, r = ${settings[k].ratio} → \\d+/${settings[k].gridSize ** 2} cells, λ = `));
    assert.match(right, new RegExp(`^discrete: g = ${settings[k].gridSize}, r = ${settings[k].ratio} → `));
  });
  // The shown image is image A (white) with black partner cells: its share of white is the λ in the title.
  const shown = await firstChannel(fig.data[2].source as string);
  const lambda = Number(/λ = ([\d.]+)/.exec(slider.steps[1].args[1].annotations[0].text)![1]);
  assert.equal(shown.filter((v) => v === 255).length / 16, lambda);
  await assert.rejects(maskSliderFigure(images, settings, { active: 3, rng: new Rng(3) }), /active must index one of the 3 settings, got 3/);
  images.dispose();
});

test('drawStatsHistogram: one overlaid histogram per mask type over its draws, λ binned per cell', () => {
  const rng = new Rng(4);
  const stats = (['block', 'discrete'] as const).map((t) => maskDrawStats(t, 8, 0.5, 50, rng));
  const lam = drawStatsHistogram(stats, 'lambdas', { title: 'λ', xRange: [0.2, 0.8] });
  assert.equal(lam.data.length, 2);
  assert.deepEqual(lam.data.map((d) => d.name), ['block', 'discrete']);
  assert.deepEqual(lam.data[1].x, stats[1].lambdas);
  assert.deepEqual(lam.data.map((d) => (d.marker as { color: string }).color), [MASK_TYPE_COLORS.block, MASK_TYPE_COLORS.discrete]);
  assert.equal((lam.data[0].xbins as { size: number }).size, 1 / 64);
  assert.equal(lam.layout!.barmode, 'overlay');
  assert.deepEqual((lam.layout!.xaxis as { range: number[] }).range, [0.2, 0.8]);
  const comp = drawStatsHistogram(stats, 'components');
  assert.deepEqual(comp.data[0].x, stats[0].components);
  assert.deepEqual(comp.data[0].xbins, { start: -0.5, end: Math.max(...stats[0].components) + 0.5, size: 1 });
});

test('drawStatsSummary: means, the target floor(r·g²) and the share of draws that reached it', () => {
  const s: MaskDrawStats = { type: 'block', gridSize: 3, ratio: 0.5, lambdas: [0.5, 1, 0.75, 0.75], filled: [4, 0, 4, 3], components: [1, 0, 2, 1] };
  assert.deepEqual(drawStatsSummary(s), { meanLambda: 0.75, meanComponents: 1, targetCells: 4, reachedTarget: 0.5 });
  assert.throws(() => drawStatsSummary({ ...s, lambdas: [], filled: [], components: [] }), /no draws \(block, g = 3\)/);
  // A real generator: a block mask at g = 8, r = 0.5 reaches its 32 cells in most draws.
  const real = drawStatsSummary(maskDrawStats('block', 8, 0.5, 200, new Rng(5)));
  assert.equal(real.targetCells, 32);
  assert.ok(real.reachedTarget > 0.5, `reached ${real.reachedTarget}`);
});

test('photoDataUri: photographs as JPEG a fraction of their PNG size and close to the pixels; small images stay exact PNG', async () => {
  // A smooth 128×128 "photo" with some texture.
  const img = tf.tidy(() => {
    const y = tf.linspace(0, 1, 128).reshape([128, 1, 1]);
    const x = tf.linspace(0, 1, 128).reshape([1, 128, 1]);
    return tf.concat([tf.add(tf.mul(y, 0.5), tf.mul(tf.sin(tf.mul(x, 20)), 0.2)).add(0.25), tf.mul(x, y), tf.sub(1, x).mul(0.8)].map((t) => t.broadcastTo([128, 128, 1])), 2);
  });
  const before = tf.memory().numTensors;
  const uri = await photoDataUri(img);
  assert.equal(tf.memory().numTensors, before);
  assert.match(uri, /^data:image\/jpeg;base64,/);
  const px = Uint8Array.from(await tf.tidy(() => tf.round(tf.mul(img, 255))).data());
  const png = encodePng(px, 128, 128, 3);
  const jpeg = Buffer.from(uri.slice(uri.indexOf(',') + 1), 'base64');
  assert.ok(jpeg.length * 3 < png.length, `JPEG ${jpeg.length} B vs PNG ${png.length} B`);
  const { data } = await sharp(jpeg).raw().toBuffer({ resolveWithObject: true });
  let err = 0;
  for (let i = 0; i < px.length; i++) err += Math.abs(data[i] - px[i]);
  assert.ok(err / px.length < 4, `mean absolute error ${err / px.length} of 255`);
  img.dispose();
  const small = tf.ones([4, 4, 3]);
  assert.match(await photoDataUri(small), /^data:image\/png;base64,/);
  small.dispose();
});
