import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../lib/backend';
import { ntXent } from '../../lib/losses';
import { MlpHead, resnet18, resnet50 } from '../../lib/models';
import { Rng } from '../../lib/util/rng';
import { tensorCounts, useBackend } from '../helpers';
import { compareSteps, lossAndGrads } from './train-step';

/**
 * Whole training steps on the wasm backend (threaded binary, own gradient kernels, fused
 * BatchNorm) against the cpu backend (stock kernels, composite BatchNorm): same loss, same
 * gradients, and no tensor growth across steps.
 */

before(async () => {
  await useBackend('wasm');
});

test('ResNet-18 (CIFAR stem, width 16) + projection head + NT-Xent: one step on wasm matches cpu', async () => {
  const shape: [number, number, number, number] = [8, 16, 16, 3];
  const x = new Rng(3).fillNormal(new Float32Array(8 * 16 * 16 * 3), 0, 1);
  const build = () => {
    const backbone = resnet18({ width: 16, seed: 5 });
    return { backbone, head: new MlpHead(backbone.featureDim, [64], 32, { seed: 6 }) };
  };
  const got = await lossAndGrads('wasm', build, x, shape);
  const want = await lossAndGrads('cpu', build, x, shape);
  await tf.setBackend('wasm');
  compareSteps(got, want, 1e-4);
});

test('ResNet-50 (ImageNet stem: 7×7/2 conv, 3×3/2 max-pool; width 8) one step on wasm matches cpu', async () => {
  // 64×64 inputs so that layer4's BatchNorms still see 2×2×8 values per channel: with fewer,
  // train-mode BN amplifies float32 rounding differences between any two backends (even the
  // composite BN on wasm vs cpu differs by ~4e-2 at 32×32), which tests nothing.
  const shape: [number, number, number, number] = [8, 64, 64, 3];
  const x = new Rng(4).fillNormal(new Float32Array(8 * 64 * 64 * 3), 0, 1);
  const build = () => {
    const backbone = resnet50({ width: 8, seed: 7 });
    return { backbone, head: new MlpHead(backbone.featureDim, [32], 16, { seed: 8 }) };
  };
  const got = await lossAndGrads('wasm', build, x, shape);
  const want = await lossAndGrads('cpu', build, x, shape);
  await tf.setBackend('wasm');
  // 53 train-mode BatchNorms in a row: measured worst 2e-4 (the forward alone, eval mode: 2e-6).
  compareSteps(got, want, 1e-3);
});

test('SGD-momentum training steps on wasm keep tf.memory().numTensors flat', async () => {
  await tf.setBackend('wasm');
  const backbone = resnet18({ width: 8, seed: 1 });
  const head = new MlpHead(backbone.featureDim, [32], 16, { seed: 2 });
  const vars = [...backbone.trainableVariables(), ...head.trainableVariables()];
  const opt = tf.train.momentum(0.05, 0.9);
  const x = tf.randomNormal([6, 12, 12, 3]) as tf.Tensor4D;
  const losses: number[] = [];
  const counts = await tensorCounts(4, () => {
    const cost = opt.minimize(() => {
      const z = head.apply(backbone.apply(x, true), true);
      const [a, b] = tf.split(z, [3, 3], 0) as [tf.Tensor2D, tf.Tensor2D];
      return tf.mean(ntXent(a, b, 0.5)) as tf.Scalar;
    }, true, vars);
    losses.push(cost!.dataSync()[0]);
    cost!.dispose();
  });
  // The first step creates the optimizer's momentum slots; from then on nothing may grow.
  assert.deepEqual(counts.slice(1), [counts[1], counts[1], counts[1]], `tensor counts ${counts}`);
  assert.ok(losses.every(Number.isFinite), `losses ${losses}`);
  opt.dispose();
  x.dispose();
  backbone.dispose();
  head.dispose();
});

test('initBackend("wasm") twice keeps a working backend and the same thread pool', async () => {
  const a = await initBackend({ force: 'wasm', env: {} });
  const b = await initBackend({ force: 'wasm', env: {}, threads: a.threads + 1 });
  assert.equal(b.tfBackend, 'wasm');
  assert.equal(b.threads, a.threads);
  assert.match(b.detail, /SIMD, \d+ threads?.*; kernels: Conv2DBackpropFilter, Conv2DBackpropInput/);
  const y = tf.tidy(() => tf.sum(tf.conv2d(tf.ones([1, 4, 4, 2]) as tf.Tensor4D, tf.ones([3, 3, 2, 1]) as tf.Tensor4D, 1, 1)).dataSync()[0]);
  // 3×3 box sums of ones over a zero-padded 4×4 map: 4 corners (4), 8 edges (6), 4 inside (9); 2 channels.
  assert.equal(y, 2 * (4 * 4 + 8 * 6 + 4 * 9));
});
