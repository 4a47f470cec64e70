import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { ArrayDataset, type Dataset, syntheticDataset } from '../../lib/data';
import { SubsetDataset } from '../../lib/data/subset';
import { defaultRunDir, runDatasets } from '../../lib/experiments';
import { pretrainConfig, VALIDATION_SEED } from '../../lib/presets';
import { Trainer } from '../../lib/train/trainer';
import { useBackend } from '../helpers';

test.before(() => useBackend('cpu'));

/** The indices of the base split a (possibly nested) subset view reads. */
function baseIndices(ds: Dataset): { base: Dataset; indices: number[] } {
  if (!(ds instanceof SubsetDataset)) return { base: ds, indices: Array.from({ length: ds.size }, (_, i) => i) };
  const inner = baseIndices(ds.base);
  return { base: inner.base, indices: [...ds.indices].map((i) => inner.indices[i]) };
}

/** A test split whose every read and label lookup fails the test. */
function untouchable(like: Dataset): Dataset {
  const fail = (): never => assert.fail('the test split was read');
  return { name: 'test', size: like.size, numClasses: like.numClasses, classNames: like.classNames, height: like.height, width: like.width, channels: like.channels, label: fail, read: fail };
}

test('with a validation split the monitor queries validation images only, and pretraining and bank never see them', () => {
  const train = syntheticDataset({ size: 512, seed: 0 });
  const c = pretrainConfig('simclr', 'synthetic', 'smoke', { seed: 3 });
  assert.deepEqual(c.validation, { images: 80, seed: VALIDATION_SEED });
  const test = untouchable(syntheticDataset({ size: 128, seed: 0, sampleSeed: 1 }));
  const d = runDatasets(c, { train, test });
  const q = baseIndices(d.query);
  const bank = baseIndices(d.bank);
  const pre = baseIndices(d.train);
  assert.equal(q.base, train, 'queries must come from the training split (validation), not from test');
  assert.equal(bank.base, train);
  assert.equal(q.indices.length, c.knn.querySubset);
  assert.equal(bank.indices.length, c.knn.bankSubset);
  assert.equal(pre.indices.length, 512 - 80);
  const preSet = new Set(pre.indices);
  assert.ok(q.indices.every((i) => !preSet.has(i)), 'a monitor query is a pretraining image');
  assert.ok(bank.indices.every((i) => preSet.has(i)), 'a bank image is outside the pretraining pool');
  // The trainer draws config.trainSubset images from that pool.
  const trainer = new Trainer({ config: c, runDir: '/nonexistent', train: d.train });
  try {
    const used = baseIndices((trainer as unknown as { trainSet: Dataset }).trainSet);
    assert.ok(used.indices.every((i) => preSet.has(i)), 'the trainer drew a validation image');
  } finally {
    trainer.dispose();
  }
  // The held-out images are the same whatever the run's seed.
  const held = (seed: number) => {
    const cs = pretrainConfig('byol', 'synthetic', 'smoke', { seed });
    const all = new Set(baseIndices(runDatasets(cs, { train, test }).train).indices);
    return Array.from({ length: 512 }, (_, i) => i).filter((i) => !all.has(i));
  };
  assert.deepEqual(held(0), held(5));
});

test('without a validation split (old runs, the paper profile) the monitor queries the test split, as before', () => {
  const train = syntheticDataset({ size: 512, seed: 0 });
  const test = syntheticDataset({ size: 128, seed: 0, sampleSeed: 1 });
  const c = pretrainConfig('simclr', 'synthetic', 'smoke', { validation: null });
  const d = runDatasets(c, { train, test });
  assert.equal(d.train, train);
  assert.equal(baseIndices(d.query).base, test);
  assert.equal(pretrainConfig('simclr', 'cifar100', 'paper').validation, null);
  assert.deepEqual(pretrainConfig('simclr', 'fashion-mnist', 'cpu').validation, { images: 10_000, seed: VALIDATION_SEED });
  // The run folders differ, so that an old run is never resumed under the new protocol.
  assert.match(defaultRunDir(pretrainConfig('simclr', 'fashion-mnist', 'cpu', { method: 'none' })), /simclr-none-val-s0$/);
  assert.match(defaultRunDir(c), /simclr-mixmask-block8-s0$/);
});

test('validation split of Fashion-MNIST-sized labels: 1,000 of each class out of 60,000', () => {
  const labels = Int32Array.from({ length: 60_000 }, (_, i) => (i * 7) % 10);
  const train = new ArrayDataset({ name: 'fm', pixels: new Uint8Array(60_000), labels, height: 1, width: 1, channels: 1, numClasses: 10 });
  const d = runDatasets(pretrainConfig('moco-v2', 'fashion-mnist', 'cpu'), { train, test: untouchable(train) });
  assert.equal(d.train.size, 50_000);
  assert.equal(d.query.size, 1_000);
});
