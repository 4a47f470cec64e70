import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { syntheticDataset } from '../../lib/data';
import { fineTune, FINETUNE_PRESETS, SubsetDataset } from '../../lib/eval';
import { resnet18 } from '../../lib/models';
import { useBackend } from '../helpers';

// Fine-tuning needs convolution weight gradients: the wasm backend gets them from lib/backend
// when present; otherwise the exact but slow cpu backend with a narrow net on tiny images.
before(async () => {
  await useBackend('wasm');
  if (!tf.getKernel('Conv2DBackpropFilter', 'wasm')) await useBackend('cpu');
});

test('fine-tuning a tiny network on a synthetic task improves accuracy, without leaks', async () => {
  // One generator for both splits: its seed also draws the class patterns.
  const all = syntheticDataset({ size: 144, numClasses: 4, height: 8, width: 8, seed: 11, noise: 0.3 });
  const train = new SubsetDataset(all, Array.from({ length: 96 }, (_, i) => i));
  const test8 = new SubsetDataset(all, Array.from({ length: 48 }, (_, i) => 96 + i));
  const common = { train, test: test8, protocol: 'finetune' as const, backboneLr: 0.02, classifierLr: 0.1, batchSize: 32, augment: false as const, seed: 1 };
  const before0 = resnet18({ width: 4, seed: 7 });
  const base = await fineTune(before0, { ...common, epochs: 0 });
  before0.dispose();

  const net = resnet18({ width: 4, seed: 7 });
  const count = tf.memory().numTensors;
  const losses: number[] = [];
  const res = await fineTune(net, { ...common, epochs: 6, onProgress: (p) => p.phase === 'train' && p.done === p.total && losses.push(p.loss!) });
  assert.equal(tf.memory().numTensors, count, 'fine-tuning leaked tensors');
  assert.equal(res.labelledSamples, 96);
  assert.deepEqual(res.milestones, [4, 5]);
  assert.equal(losses.length, 6);
  assert.ok(res.lossHistory[5] < res.lossHistory[0], `loss ${res.lossHistory}`);
  assert.ok(res.top1 >= base.top1 + 25 && res.top1 >= 60, `top-1 ${base.top1} → ${res.top1}`);
  net.dispose();
});

test('semi-supervised presets take a class-balanced subset with Table 3 rates; bad options are named', async () => {
  assert.deepEqual(FINETUNE_PRESETS.semi1, { fraction: 0.01, backboneLr: 0.002, classifierLr: 0.5 });
  assert.deepEqual(FINETUNE_PRESETS.semi10, { fraction: 0.1, backboneLr: 0.002, classifierLr: 0.5 });
  assert.deepEqual(FINETUNE_PRESETS.finetune, { fraction: 1, backboneLr: 0.001, classifierLr: 0.05 });
  const train = syntheticDataset({ size: 400, numClasses: 4, height: 8, width: 8, seed: 1 });
  const test8 = syntheticDataset({ size: 16, numClasses: 4, height: 8, width: 8, seed: 2 });
  const net = resnet18({ width: 2, seed: 1 });
  const res = await fineTune(net, { train, test: test8, protocol: 'semi10', epochs: 1, batchSize: 16 });
  assert.equal(res.labelledSamples, 40);
  assert.equal(res.perClass, 10);
  assert.equal(res.backboneLr, 0.002);
  assert.equal(res.classifierLr, 0.5);
  assert.equal(res.n, 16);
  await assert.rejects(fineTune(net, { train, test: test8, protocol: 'semi5' as 'semi1' }), /option protocol must be one of semi1, semi10, finetune, got 'semi5'/);
  await assert.rejects(fineTune(net, { train, test: test8, protocol: 'semi1', batchSize: 1 }), /option batchSize must be an integer ≥ 2, got 1/);
  await assert.rejects(fineTune(net, { train, test: test8, protocol: 'semi1', augment: { cropScale: [0.5, 0.2] } }), /option augment.cropScale/);
  net.dispose();
});
