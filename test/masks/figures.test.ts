import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as zlib from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { blockGrid, encodePng, gridHeatmapFigure, imageDataUri, imageGridFigure, maskDrawStats } from '../../lib/masks';
import { Rng } from '../../lib/util/rng';
import { useBackend } from '../helpers';

before(() => useBackend('wasm'));

test('encodePng writes a valid PNG whose IDAT inflates back to the pixels', () => {
  const w = 5;
  const h = 3;
  const px = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37) % 256);
  const png = encodePng(px, w, h, 3);
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.equal(png.toString('ascii', 12, 16), 'IHDR');
  assert.equal(png.readUInt32BE(16), w);
  assert.equal(png.readUInt32BE(20), h);
  const idatLen = png.readUInt32BE(33);
  assert.equal(png.toString('ascii', 37, 41), 'IDAT');
  const raw = zlib.inflateSync(png.subarray(41, 41 + idatLen));
  for (let y = 0; y < h; y++) {
    assert.equal(raw[y * (w * 3 + 1)], 0);
    assert.deepEqual([...raw.subarray(y * (w * 3 + 1) + 1, (y + 1) * (w * 3 + 1))], [...px.subarray(y * w * 3, (y + 1) * w * 3)]);
  }
  assert.throws(() => encodePng(px, 4, 4, 3), /expected 4×4×3 = 48 bytes, got 45/);
});

test('image and heatmap figures have one trace per panel and no tensor leaks', async () => {
  const before = tf.memory().numTensors;
  const img = tf.randomUniform([8, 8, 3]);
  const uri = await imageDataUri(img);
  img.dispose();
  assert.match(uri, /^data:image\/png;base64,/);
  assert.equal(tf.memory().numTensors, before);
  const fig = imageGridFigure([{ title: 'a', src: uri }, { title: 'blank' }, { title: 'b', src: uri }], 2, { size: 8 });
  assert.equal(fig.data.length, 2);
  assert.equal((fig.layout.annotations as unknown[]).length, 3);
  const heat = gridHeatmapFigure([{ title: 'g', grid: blockGrid(8, 0.5, new Rng(1)) }], 1);
  assert.equal((heat.data[0].z as number[][]).length, 8);
});

test('maskDrawStats records realised λ, filled cells and components per draw', () => {
  const s = maskDrawStats('block', 8, 0.5, 100, new Rng(2), { height: 32 });
  assert.equal(s.lambdas.length, 100);
  s.lambdas.forEach((l, i) => assert.equal(l, 1 - s.filled[i] / 64));
  s.components.forEach((c, i) => assert.ok(c <= s.filled[i] && (c >= 1) === (s.filled[i] > 0)));
});
