import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ArrayDataset } from '../../lib/data';
import { labelSubset, randomIndices, SubsetDataset } from '../../lib/eval';
import { Rng } from '../../lib/util/rng';

function labelledSet(n: number, classes: number, seed: number, name = 'train'): ArrayDataset {
  const rng = new Rng(seed);
  const labels = Int32Array.from({ length: n }, () => rng.int(classes));
  const pixels = new Uint8Array(n * 4);
  for (let i = 0; i < n; i++) pixels[i * 4] = i % 256;
  return new ArrayDataset({ name, pixels, labels, height: 2, width: 2, channels: 1, numClasses: classes });
}

test('label subsets are class-balanced, from the training split, and reproducible by seed', () => {
  const train = labelledSet(5000, 10, 1);
  for (const [fraction, per] of [[0.01, 5], [0.1, 50]] as const) {
    const a = labelSubset(train, { fraction, seed: 0 });
    const b = labelSubset(train, { fraction, seed: 0 });
    const c = labelSubset(train, { fraction, seed: 1 });
    assert.equal(a.perClass, per);
    assert.deepEqual(a.indices, b.indices, 'same seed, different subset');
    assert.notDeepEqual(a.indices, c.indices, 'different seeds gave the same subset');
    assert.equal(a.indices.length, 10 * per);
    const counts = new Array(10).fill(0);
    for (const i of a.indices) {
      assert.ok(i >= 0 && i < train.size, 'index outside the training split');
      counts[train.label(i)]++;
    }
    assert.deepEqual(counts, new Array(10).fill(per), 'not class-balanced');
    assert.equal(new Set(a.indices).size, a.indices.length, 'duplicates');
    for (let j = 1; j < a.indices.length; j++) assert.ok(a.indices[j] > a.indices[j - 1], 'not ascending');
  }
  assert.equal(labelSubset(train, { fraction: 1 }).indices.length, 5000);
  assert.throws(() => labelSubset(train, { fraction: 0 }), /option fraction must be > 0, got 0/);
  assert.throws(() => labelSubset(train, { fraction: 1.5 }), /option fraction must be in \(0, 1\], got 1.5/);
  assert.throws(() => labelSubset(train, { fraction: 0.1, seed: -1 }), /option seed/);
});

test('a small class gives all it has; SubsetDataset maps reads and labels', async () => {
  const labels = Int32Array.from([0, 0, 0, 0, 0, 0, 1, 0, 0, 0]);
  const ds = new ArrayDataset({ name: 'tiny', pixels: Uint8Array.from({ length: 10 }, (_, i) => i * 10), labels, height: 1, width: 1, channels: 1, numClasses: 2 });
  const s = labelSubset(ds, { fraction: 0.6 });
  assert.equal(s.perClass, 3);
  assert.deepEqual(s.classCounts, [9, 1]);
  assert.equal(s.indices.length, 4);
  const view = new SubsetDataset(ds, [6, 2, 9]);
  assert.equal(view.size, 3);
  assert.equal(view.label(0), 1);
  const raw = await view.read([2, 0]);
  assert.deepEqual(Array.from(raw.pixels), [90, 60]);
  assert.deepEqual(Array.from(raw.labels), [0, 1]);
  await assert.rejects(view.read([3]), /index 3 out of range \[0, 3\)/);
  const r = randomIndices(100, 10, 4);
  assert.deepEqual(r, randomIndices(100, 10, 4));
  assert.equal(new Set(r).size, 10);
});
