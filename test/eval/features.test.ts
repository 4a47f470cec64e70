import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { NORMALIZATION, loadAll, syntheticDataset, testTransform } from '../../lib/data';
import { extractFeatures, knnMonitor, linearProbe, SubsetDataset } from '../../lib/eval';
import { resnet18 } from '../../lib/models';
import { relError, useBackend } from '../helpers';

before(() => useBackend('wasm'));

test('extractFeatures equals one eval-mode forward of the test-transformed set, in any batch size, without leaks', async () => {
  const net = resnet18({ width: 4, seed: 3 });
  const ds = syntheticDataset({ size: 37, numClasses: 5, height: 12, width: 12, seed: 2 });
  const transform = { size: 12, normalize: NORMALIZATION.cifar10 };
  const all = await loadAll(ds);
  const ref = tf.tidy(() => net.apply(testTransform(all.images, transform), false));
  const refData = ref.dataSync() as Float32Array;
  tf.dispose([ref, all.images, all.labels]);
  const stateBefore = net.namedState().map(([, v]) => Array.from(v.dataSync()));
  const count = tf.memory().numTensors;
  const done: number[] = [];
  for (const batchSize of [1, 8, 37, 100]) {
    const f = await extractFeatures(net, ds, { batchSize, transform, onProgress: (p) => done.push(p.done) });
    assert.equal(f.n, 37);
    assert.equal(f.dim, net.featureDim);
    assert.ok(relError(f.data, refData) < 1e-5, `batch ${batchSize}: rel error ${relError(f.data, refData)}`);
    assert.deepEqual(Array.from(f.labels), Array.from({ length: 37 }, (_, i) => ds.label(i)));
  }
  assert.equal(done[done.length - 1], 37);
  assert.equal(tf.memory().numTensors, count, 'feature extraction leaked tensors');
  // Eval mode: BatchNorm running statistics are untouched.
  assert.deepEqual(net.namedState().map(([, v]) => Array.from(v.dataSync())), stateBefore);
  const sub = await extractFeatures(net, ds, { indices: [5, 1], transform });
  assert.ok(relError(sub.data.subarray(0, net.featureDim), refData.subarray(5 * net.featureDim, 6 * net.featureDim)) < 1e-5);
  await assert.rejects(extractFeatures(net, ds, { batchSize: 0 }), /option batchSize must be an integer ≥ 1, got 0/);
  await assert.rejects(extractFeatures(net, ds, { indices: [99] }), /index 99 out of range/);
  net.dispose();
});

test('knnMonitor and linearProbe compose features with the classifiers and leave no tensors behind', async () => {
  const net = resnet18({ width: 4, seed: 1 });
  // One generator for both splits: its seed also draws the class patterns.
  const all = syntheticDataset({ size: 160, numClasses: 4, height: 8, width: 8, seed: 5, noise: 0.05 });
  const bank = new SubsetDataset(all, Array.from({ length: 120 }, (_, i) => i));
  const query = new SubsetDataset(all, Array.from({ length: 40 }, (_, i) => 120 + i));
  const count = tf.memory().numTensors;
  const phases = new Set<string>();
  const res = await knnMonitor(net, { bank, query, k: 20, t: 0.1, batchSize: 32, onProgress: (p) => phases.add(p.phase) });
  assert.deepEqual([...phases], ['bank features', 'query features', 'neighbours']);
  assert.equal(res.n, 40);
  assert.ok(res.top1 >= 0 && res.top1 <= 100 && res.top5 >= res.top1);
  // Any feature function composes: flattened pixels separate these classes.
  const pixels = await knnMonitor((x) => tf.reshape(x, [x.shape[0], -1]) as tf.Tensor2D, { bank, query, k: 20 });
  assert.ok(pixels.top1 >= 90, `pixel kNN top-1 ${pixels.top1}`);
  const lin = await linearProbe(net, { train: bank, test: query, epochs: 5, lr: 1, batchSize: 32 });
  assert.ok(lin.top1 >= 0 && lin.top1 <= 100);
  assert.equal(tf.memory().numTensors, count, 'monitor / probe leaked tensors');
  await assert.rejects(knnMonitor(net, { bank, query: syntheticDataset({ numClasses: 3, size: 9, height: 8, width: 8 }) }), /has 4 classes/);
  net.dispose();
});
