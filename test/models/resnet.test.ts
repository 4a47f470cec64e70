import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { MlpHead, resnet18, resnet50, ResNet } from '../../lib/models';
import { relError, useBackend } from '../helpers';

before(() => useBackend('wasm'));

test('ResNet-18 with the CIFAR stem: 11.17 M parameters, 512-d features, stride-1 stem', () => {
  const net = resnet18();
  assert.equal(net.parameterCount(), 11_168_832); // torchvision resnet18 without fc, 3×3 stem
  assert.equal(net.featureDim, 512);
  const names = net.namedState().map(([n]) => n);
  for (const key of ['conv1.weight', 'bn1.running_var', 'layer2.0.downsample.0.weight', 'layer4.1.bn2.bias']) {
    assert.ok(names.includes(key), `missing ${key}`);
  }
  const f = tf.tidy(() => net.apply(tf.randomUniform([2, 32, 32, 3]) as tf.Tensor4D, false));
  assert.deepEqual(f.shape, [2, 512]);
  assert.ok(Array.from(f.dataSync()).every(Number.isFinite));
  f.dispose();
  net.dispose();
});

test('ResNet-50 with the ImageNet stem: 23.5 M parameters, 2048-d features', () => {
  const net = resnet50();
  assert.equal(net.parameterCount(), 23_508_032); // torchvision resnet50 without fc
  assert.equal(net.featureDim, 2048);
  const f = tf.tidy(() => net.apply(tf.randomUniform([1, 64, 64, 3]) as tf.Tensor4D, false));
  assert.deepEqual(f.shape, [1, 2048]);
  f.dispose();
  net.dispose();
});

test('width scales the network; narrow variants keep the structure', () => {
  const narrow = resnet18({ width: 16 });
  assert.equal(narrow.featureDim, 128);
  assert.ok(narrow.parameterCount() < 11_168_832 / 10);
  const r50 = resnet50({ width: 16 });
  assert.equal(r50.featureDim, 512);
  const f = tf.tidy(() => r50.apply(tf.zeros([1, 33, 45, 3]) as tf.Tensor4D, true)); // odd sizes work
  assert.deepEqual(f.shape, [1, 512]);
  f.dispose();
  narrow.dispose();
  r50.dispose();
  assert.throws(() => resnet18({ width: 0 }), /width must be a positive integer, got 0/);
  assert.throws(() => new ResNet({ depth: 19 as 18, stem: 'cifar' }), /depth must be one of 18, 34, 50, got 19/);
  assert.throws(() => tf.tidy(() => resnet18({ width: 4 }).apply(tf.zeros([1, 8, 8, 1]) as tf.Tensor4D, false)), /expected input \[N, H, W, 3\]/);
});

test('the same seed gives the same weights', () => {
  const a = resnet18({ width: 8, seed: 5 });
  const b = resnet18({ width: 8, seed: 5 });
  const c = resnet18({ width: 8, seed: 6 });
  const first = (n: ResNet) => Array.from(n.namedParameters()[0][1].dataSync().slice(0, 20));
  assert.deepEqual(first(a), first(b));
  assert.notDeepEqual(first(a), first(c));
  [a, b, c].forEach((n) => n.dispose());
});

test('MLP heads: hidden BN+ReLU, optional output BN, parameter count', () => {
  const head = new MlpHead(512, [2048], 128); // Linear(no bias)+BN+ReLU, Linear(bias)
  assert.equal(head.parameterCount(), 512 * 2048 + 2 * 2048 + 2048 * 128 + 128);
  const simsiam = new MlpHead(64, [64, 64], 32, { outputBn: 'no-affine' });
  const z = tf.tidy(() => simsiam.apply(tf.randomNormal([16, 64]) as tf.Tensor2D, true));
  assert.deepEqual(z.shape, [16, 32]);
  // A non-affine output BN in training mode standardises every output dimension.
  const { mean, variance } = tf.moments(z, 0);
  assert.ok(Math.max(...Array.from(mean.dataSync()).map(Math.abs)) < 1e-4);
  assert.ok(Array.from(variance.dataSync()).every((v) => Math.abs(v - 1) < 1e-2));
  const noBn = new MlpHead(8, [8], 4, { bn: false });
  assert.equal(noBn.parameterCount(), 8 * 8 + 8 + 8 * 4 + 4);
  assert.throws(() => new MlpHead(8, [0], 4), /hiddenDims\[0\] must be a positive integer, got 0/);
  [z, mean, variance].forEach((t) => t.dispose());
  [head, simsiam, noBn].forEach((m) => m.dispose());
});

/**
 * Every buffer (running mean, running variance, num_batches_tracked) of two modules, as arrays by
 * name, and the largest relative difference over the float ones.
 */
function bufferDiff(a: { namedBuffers(): Array<[string, tf.Variable]> }, b: { namedBuffers(): Array<[string, tf.Variable]> }): { worst: number; tracked: number[] } {
  const theirs = new Map(b.namedBuffers());
  let worst = 0;
  const tracked: number[] = [];
  for (const [name, v] of a.namedBuffers()) {
    const w = theirs.get(name)!;
    if (v.dtype === 'int32') {
      assert.equal(v.dataSync()[0], w.dataSync()[0], `${name}`);
      tracked.push(v.dataSync()[0]);
    } else {
      worst = Math.max(worst, relError(v.dataSync() as Float32Array, w.dataSync() as Float32Array));
    }
  }
  return { worst, tracked };
}

for (const [label, make, size] of [
  ['ResNet-18 (basic blocks)', () => resnet18({ width: 4, seed: 2 }), 8],
  ['ResNet-50 (bottlenecks, ImageNet stem)', () => resnet50({ width: 4, seed: 2 }), 16],
] as const) {
  test(`${label} with bnGroups: one pass equals one pass per part (features, running statistics, num_batches_tracked)`, () => {
    for (const [n, groups] of [
      [8, 4],
      [12, 2],
    ]) {
      const grouped = make();
      const chunked = make();
      const x = tf.tidy(() => tf.randomNormal([n, size, size, 3], 0, 1, 'float32', n) as tf.Tensor4D);
      const before = tf.memory().numTensors;
      const a = tf.tidy(() => grouped.apply(x, true, groups));
      const b = tf.tidy(() => tf.concat(tf.split(x, groups, 0).map((p) => chunked.apply(p as tf.Tensor4D, true)), 0));
      assert.equal(tf.memory().numTensors, before + 2, 'only the two outputs are left');
      const e = relError(a.dataSync() as Float32Array, b.dataSync() as Float32Array);
      assert.ok(e < 1e-5, `n ${n}, groups ${groups}: features rel err ${e}`);
      const { worst, tracked } = bufferDiff(grouped, chunked);
      assert.ok(worst < 1e-5, `n ${n}, groups ${groups}: running statistics rel err ${worst}`);
      assert.ok(tracked.length > 0 && tracked.every((t) => t === groups), `num_batches_tracked ${tracked}`);
      tf.dispose([a, b, x]);
      grouped.dispose();
      chunked.dispose();
    }
  });
}

test('MLP head with bnGroups (hidden and output BatchNorm): one pass equals one pass per part', () => {
  const make = () => new MlpHead(12, [10], 6, { outputBn: 'affine', seed: 4 });
  const grouped = make();
  const chunked = make();
  const x = tf.tidy(() => tf.randomNormal([12, 12], 0, 1, 'float32', 5) as tf.Tensor2D);
  const a = tf.tidy(() => grouped.apply(x, true, 3));
  const b = tf.tidy(() => tf.concat(tf.split(x, 3, 0).map((p) => chunked.apply(p as tf.Tensor2D, true)), 0));
  assert.ok(relError(a.dataSync() as Float32Array, b.dataSync() as Float32Array) < 1e-5);
  const { worst, tracked } = bufferDiff(grouped, chunked);
  assert.ok(worst < 1e-5, `running statistics rel err ${worst}`);
  assert.deepEqual(tracked, [3, 3]);
  assert.throws(() => tf.tidy(() => grouped.apply(x, true, 5)), /groups = 5 must divide the batch/);
  tf.dispose([a, b, x]);
  grouped.dispose();
  chunked.dispose();
});
