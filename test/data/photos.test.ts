import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import sharpDefault from 'sharp';
import { useBackend } from '../helpers';
import { loadImageBatch, skimagePhoto, SKIMAGE_DATA_DIR } from '../../lib/data';

// sharp's typings are its ESM build; under CommonJS the require() value is the factory.
const sharp = ((sharpDefault as unknown as { default?: typeof sharpDefault }).default ?? sharpDefault) as typeof sharpDefault;

before(async () => {
  await useBackend('cpu');
});

/** A 30×10 PNG: a green 10×10 square in the middle between a red left third and a blue right third. */
async function writeStripes(file: string): Promise<void> {
  const px = Buffer.alloc(30 * 10 * 3);
  for (let y = 0; y < 10; y++) {
    for (let x = 0; x < 30; x++) {
      const o = (y * 30 + x) * 3;
      px[o + (x < 10 ? 0 : x < 20 ? 1 : 2)] = 255;
    }
  }
  await sharp(px, { raw: { width: 30, height: 10, channels: 3 } }).png().toFile(file);
}

test('loadImageBatch: centre-crops each file to a square, resizes it, stacks [n, size, size, 3] in [0, 1]', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-photos-'));
  const stripes = path.join(dir, 'stripes.png');
  await writeStripes(stripes);
  const grey = path.join(dir, 'grey.png');
  await sharp({ create: { width: 8, height: 8, channels: 3, background: { r: 51, g: 102, b: 204 } } }).png().toFile(grey);
  const before = tf.memory().numTensors;
  const batch = await loadImageBatch([stripes, grey], 4);
  assert.deepEqual(batch.shape, [2, 4, 4, 3]);
  const v = await batch.data();
  batch.dispose();
  assert.equal(tf.memory().numTensors, before);
  // Image 0: the crop keeps only the green middle third (the resampling kernel lets a little of
  // the neighbouring red and blue bleed into the border pixels, nothing more).
  for (let p = 0; p < 16; p++) {
    assert.ok(v[p * 3] < 0.15 && v[p * 3 + 2] < 0.15 && v[p * 3 + 1] > 0.85, `pixel ${p}: ${Array.from(v.subarray(p * 3, p * 3 + 3))}`);
  }
  // Image 1: a solid colour, scaled to [0, 1].
  const o = 16 * 3;
  assert.deepEqual(Array.from(v.subarray(o, o + 3)).map((x) => Math.round(x * 255)), [51, 102, 204]);
});

test('loadImageBatch and skimagePhoto: bad input names the value or file', async () => {
  await assert.rejects(loadImageBatch([], 4), /no files/);
  await assert.rejects(loadImageBatch(['x.png'], 0), /size must be a positive integer, got 0/);
  await assert.rejects(loadImageBatch(['/nonexistent/a.png'], 4), /\/nonexistent\/a\.png/);
  assert.throws(() => skimagePhoto('chelsea', '/nonexistent'), /\/nonexistent\/chelsea\.png not found: install the Debian package python3-skimage/);
});

test('skimagePhoto: the photographs notebook 04 shows decode to RGB at 224 px', { skip: fs.existsSync(path.join(SKIMAGE_DATA_DIR, 'chelsea.png')) ? false : 'python3-skimage is not installed' }, async () => {
  const batch = await loadImageBatch([skimagePhoto('chelsea'), skimagePhoto('coffee')], 224);
  assert.deepEqual(batch.shape, [2, 224, 224, 3]);
  const v = await batch.data();
  batch.dispose();
  let [lo, hi] = [Infinity, -Infinity];
  for (const x of v) [lo, hi] = [Math.min(lo, x), Math.max(hi, x)];
  assert.ok(lo >= 0 && hi <= 1 && hi - lo > 0.5, `values in [${lo}, ${hi}]`);
});
