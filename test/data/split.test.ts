import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ArrayDataset, validationSplit } from '../../lib/data';
import { Rng } from '../../lib/util/rng';

function labelledSet(n: number, classes: number, seed: number): ArrayDataset {
  const rng = new Rng(seed);
  const labels = Int32Array.from({ length: n }, () => rng.int(classes));
  return new ArrayDataset({ name: 'train', pixels: new Uint8Array(n), labels, height: 1, width: 1, channels: 1, numClasses: classes });
}

test('the validation split is class-balanced, disjoint from the rest, the rest is everything else, and a seed fixes it', () => {
  const train = labelledSet(3000, 10, 4);
  const a = validationSplit(train, { images: 500, seed: 7 });
  const b = validationSplit(train, { images: 500, seed: 7 });
  const other = validationSplit(train, { images: 500, seed: 8 });
  assert.equal(a.validation.size, 500);
  assert.equal(a.rest.size, 2500);
  const counts = new Array(10).fill(0);
  for (let i = 0; i < a.validation.size; i++) counts[a.validation.label(i)]++;
  assert.deepEqual(counts, new Array(10).fill(50));
  const held = new Set(a.validation.indices);
  assert.ok([...a.rest.indices].every((i) => !held.has(i)), 'an image is in both');
  assert.equal(new Set([...a.validation.indices, ...a.rest.indices]).size, 3000, 'an image is in neither');
  assert.deepEqual(a.validation.indices, b.validation.indices);
  assert.notDeepEqual(a.validation.indices, other.validation.indices);
  assert.ok(a.rest.indices.every((v, k) => k === 0 || v > a.rest.indices[k - 1]), 'the rest keeps the original order');
});

test('validation split: clear errors for sizes that cannot be balanced', () => {
  const train = labelledSet(300, 10, 1);
  assert.throws(() => validationSplit(train, { images: 55, seed: 0 }), /validation\.images must be a positive multiple of 10 \(the classes of train\), got 55/);
  assert.throws(() => validationSplit(train, { images: 300, seed: 0 }), /validation\.images \(300\) must be fewer than the 300 images of train/);
  assert.throws(() => validationSplit(train, { images: 10, seed: -1 }), /validation\.seed must be an integer ≥ 0, got -1/);
  const skewed = new ArrayDataset({ name: 'skewed', pixels: new Uint8Array(20), labels: Int32Array.from({ length: 20 }, (_, i) => (i < 2 ? 1 : 0)), height: 1, width: 1, channels: 1, numClasses: 2 });
  assert.throws(() => validationSplit(skewed, { images: 6, seed: 0 }), /needs 3 images of every class; class 1 of skewed has 2/);
});
