import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as zlib from 'node:zlib';
import * as tf from '@tensorflow/tfjs';
import { useBackend } from '../helpers';
import {
  ArrayDataset,
  CIFAR_SPECS,
  FASHION_MNIST_DEBIAN_DIR,
  encodeCifarBinary,
  loadAll,
  loadCifar,
  loadFashionMnist,
  parseCifarBinary,
  parseIdx,
  syntheticDataset,
} from '../../lib/data';

const tmp = (): string => fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-data-'));

function idxBytes(magic: number, dims: number[], data: Uint8Array): Buffer {
  const head = Buffer.alloc(4 + 4 * dims.length);
  head.writeUInt32BE(magic, 0);
  dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i));
  return Buffer.concat([head, data]);
}

test('Fashion-MNIST from the Debian package: counts from the IDX header, first labels, 1 channel replicated to 3', { skip: !fs.existsSync(FASHION_MNIST_DEBIAN_DIR) && 'dataset-fashion-mnist not installed' }, async () => {
  await useBackend('wasm');
  const train = loadFashionMnist('train');
  const testSet = loadFashionMnist('test');
  assert.equal(train.size, 60000);
  assert.equal(testSet.size, 10000);
  assert.equal(train.height, 28);
  assert.equal(train.channels, 1);
  assert.equal(train.numClasses, 10);
  assert.equal(train.label(0), 9);
  assert.equal(train.classNames[train.label(0)], 'Ankle boot');
  assert.deepEqual(Array.from(train.labels.subarray(0, 10)), [9, 0, 0, 3, 0, 2, 7, 2, 5, 5]);
  assert.deepEqual(Array.from(testSet.labels.subarray(0, 5)), [9, 2, 1, 1, 6]);
  // Roughly balanced: 6000 per class in train.
  const counts = new Array(10).fill(0);
  for (const y of train.labels) counts[y]++;
  assert.deepEqual(counts, new Array(10).fill(6000));
  const b = await loadAll(train, [0, 1]);
  assert.deepEqual(b.images.shape, [2, 28, 28, 3]);
  assert.equal(b.labels.dtype, 'int32');
  const px = await b.images.data();
  let max = 0;
  for (let i = 0; i < px.length; i += 3) {
    assert.equal(px[i], px[i + 1]);
    assert.equal(px[i], px[i + 2]);
    max = Math.max(max, px[i]);
  }
  assert.ok(max <= 1 && max > 0.5, `pixels in [0,1], max ${max}`);
  tf.dispose([b.images, b.labels]);
});

test('IDX: wrong magic, dimension mismatch, truncated data and image/label count mismatch name the file', () => {
  const dir = tmp();
  const imgs = new Uint8Array(3 * 2 * 2).fill(7);
  fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte.gz'), zlib.gzipSync(idxBytes(0x00000803, [3, 2, 2], imgs)));
  fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), idxBytes(0x00000801, [3], Uint8Array.from([1, 2, 3])));
  const ds = loadFashionMnist('train', { dir });
  assert.equal(ds.size, 3);
  assert.deepEqual(Array.from(ds.labels), [1, 2, 3]);

  const bad = path.join(dir, 'bad-magic');
  assert.throws(() => parseIdx(idxBytes(0x00000903, [3, 2, 2], imgs), bad), (e: Error) => e.message.includes(bad) && /magic number 0x00000903/.test(e.message));
  assert.throws(() => parseIdx(idxBytes(0x00000801, [12], imgs), 'f.idx', 3), /f\.idx.*1 dimensions, expected 3/);
  assert.throws(() => parseIdx(idxBytes(0x00000803, [4, 2, 2], imgs), 'short.idx'), /short\.idx.*16 bytes of data, file holds 12: truncated/);

  // Label file with 4 labels for 3 images.
  fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), idxBytes(0x00000801, [4], Uint8Array.from([1, 2, 3, 4])));
  assert.throws(() => loadFashionMnist('train', { dir }), (e: Error) => /count mismatch/.test(e.message) && e.message.includes('3 images') && e.message.includes('4 labels'));
  // Label out of range.
  fs.writeFileSync(path.join(dir, 'train-labels-idx1-ubyte'), idxBytes(0x00000801, [3], Uint8Array.from([1, 12, 3])));
  assert.throws(() => loadFashionMnist('train', { dir }), /label 12 of sample 1 is out of range \[0, 10\)/);
  // Missing file.
  assert.throws(() => loadFashionMnist('test', { dir }), (e: Error) => e.message.includes('t10k-images-idx3-ubyte'));
  // Corrupt gzip.
  fs.writeFileSync(path.join(dir, 'train-images-idx3-ubyte.gz'), zlib.gzipSync(idxBytes(0x00000803, [3, 2, 2], imgs)).subarray(0, 20));
  assert.throws(() => loadFashionMnist('train', { dir }), /gzip data is corrupt or truncated/);
  fs.rmSync(dir, { recursive: true });
});

function randomImages(n: number, seed: number): Uint8Array {
  const px = new Uint8Array(n * 3072);
  let s = seed;
  for (let i = 0; i < px.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    px[i] = s >>> 24;
  }
  return px;
}

test('CIFAR-100 and CIFAR-10 binary files written in the official layout parse back exactly', async () => {
  await useBackend('wasm');
  const dir = tmp();
  const px = randomImages(5, 1);
  const fine = [0, 99, 42, 7, 13];
  const coarse = [0, 19, 3, 4, 5];
  const bytes = encodeCifarBinary('cifar100', px, fine, coarse);
  // The record layout by hand: coarse, fine, then red plane of 1024 bytes.
  assert.equal(bytes.length, 5 * 3074);
  assert.equal(bytes[3074], 19);
  assert.equal(bytes[3075], 99);
  assert.equal(bytes[3074 + 2], px[3072]); // first red byte of image 1
  assert.equal(bytes[3074 + 2 + 1024], px[3072 + 1]); // first green byte
  fs.writeFileSync(path.join(dir, 'train.bin'), bytes);
  fs.writeFileSync(path.join(dir, 'fine_label_names.txt'), Array.from({ length: 100 }, (_, i) => `class${i}`).join('\n') + '\n');
  const ds = loadCifar('cifar100', 'train', { dir, records: 'any' });
  assert.equal(ds.size, 5);
  assert.equal(ds.numClasses, 100);
  assert.deepEqual(Array.from(ds.labels), fine);
  assert.deepEqual(ds.pixels, px);
  assert.equal(ds.classNames[42], 'class42');
  assert.deepEqual(Array.from(parseCifarBinary(bytes, 'cifar100', 'x', 5).coarse!), coarse);
  const b = await loadAll(ds, [1]);
  const v = await b.images.data();
  assert.ok(Math.abs(v[0] - px[3072] / 255) < 1e-6 && Math.abs(v[2] - px[3074] / 255) < 1e-6);
  tf.dispose([b.images, b.labels]);

  const dir10 = tmp();
  for (const f of CIFAR_SPECS.cifar10.files.train) fs.writeFileSync(path.join(dir10, f.name), encodeCifarBinary('cifar10', randomImages(2, f.name.length), [3, 9]));
  const c10 = loadCifar('cifar10', 'train', { dir: dir10, records: 2 });
  assert.equal(c10.size, 10);
  assert.deepEqual(Array.from(c10.labels), [3, 9, 3, 9, 3, 9, 3, 9, 3, 9]);
  fs.rmSync(dir, { recursive: true });
  fs.rmSync(dir10, { recursive: true });
});

test('CIFAR: truncated, oversized, label out of range and missing files give clear errors', () => {
  const dir = tmp();
  const good = encodeCifarBinary('cifar100', randomImages(4, 2), [1, 2, 3, 4]);
  const file = path.join(dir, 'train.bin');
  fs.writeFileSync(file, good.subarray(0, good.length - 100));
  assert.throws(() => loadCifar('cifar100', 'train', { dir, records: 4 }), (e: Error) => e.message.includes(file) && /not a whole number of 3074-byte records.*truncated/.test(e.message));
  fs.writeFileSync(file, good.subarray(0, 3 * 3074));
  assert.throws(() => loadCifar('cifar100', 'train', { dir, records: 4 }), /holds 3 records.*expected 4.*truncated/);
  fs.writeFileSync(file, good);
  // Official count is 50000: a 4-record train.bin is rejected without records: 'any'.
  assert.throws(() => loadCifar('cifar100', 'train', { dir }), /holds 4 records \(12296 bytes\), expected 50000/);
  assert.throws(() => loadCifar('cifar100', 'train', { dir, records: 3 }), /expected 3.*oversized/);
  const badLabel = Uint8Array.from(good);
  badLabel[3074 + 1] = 100;
  fs.writeFileSync(file, badLabel);
  assert.throws(() => loadCifar('cifar100', 'train', { dir, records: 'any' }), (e: Error) => e.message.includes(file) && /record 1 .* label 100, expected 0\.\.99/.test(e.message));
  assert.throws(() => loadCifar('cifar100', 'test', { dir, records: 'any' }), (e: Error) => e.message.includes(path.join(dir, 'test.bin')) && /missing file/.test(e.message));
  assert.throws(() => loadCifar('cifar10', 'train', { dir: path.join(dir, 'nope') }), /does not exist.*npm run data -- cifar10/);
  fs.rmSync(dir, { recursive: true });
});

test('ArrayDataset validates and the synthetic dataset is deterministic', () => {
  assert.throws(
    () => new ArrayDataset({ name: 'x', pixels: new Uint8Array(10), labels: new Int32Array(2), height: 2, width: 2, channels: 1, numClasses: 3 }),
    /image\/label count mismatch: 10 pixel bytes = 2\.5 images of 2×2×1, but 2 labels/,
  );
  assert.throws(
    () => new ArrayDataset({ name: 'x', pixels: new Uint8Array(8), labels: Int32Array.from([0, 3]), height: 2, width: 2, channels: 1, numClasses: 3 }),
    /label 3 of sample 1 is out of range \[0, 3\)/,
  );
  const a = syntheticDataset({ size: 20, seed: 5 });
  const b = syntheticDataset({ size: 20, seed: 5 });
  const c = syntheticDataset({ size: 20, seed: 6 });
  assert.deepEqual(a.pixels, b.pixels);
  assert.notDeepEqual(a.pixels, c.pixels);
  assert.equal(a.numClasses, 10);
  assert.equal(a.label(13), 3);
});
