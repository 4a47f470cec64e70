import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { syntheticDataset } from '../../lib/data';
import { fineTune, knnClassify, knnNeighbours, linearProbe } from '../../lib/eval';
import { exportResNetToTorch, importTorchBackbone, importTorchToCheckpoint, resnetToTorchState } from '../../lib/interop';
import { blockGrid, flipIndex, imageDataUri, mixWithPartner, upsampleGrid } from '../../lib/masks';
import { ResNet, resnet18 } from '../../lib/models';
import { loadBackbone, loadCheckpoint, saveCheckpoint } from '../../lib/train/checkpoint';
import { Rng } from '../../lib/util/rng';
import { relError, useWebgpu } from '../helpers';

/**
 * Evaluation and weights I/O on the webgpu backend (the software adapter will do), against
 * cpu: kNN, the linear probe, fine-tuning, checkpoint writing, export/import and the mask
 * figures' images. Under Node webgpu cannot read synchronously, so each of these must read
 * with `await data()`. tfjs-webgpu runs small element-wise kernels on the CPU when their
 * inputs are there (WEBGPU_CPU_FORWARD), which leaves some results readable synchronously;
 * this file turns that off, so every kernel output lives on the GPU and a synchronous read
 * anywhere in these paths throws. Tiny shapes: a width-4 ResNet-18 on 16×16 images.
 */

let skip: string | null = null;
let dir = '';
let cpuForward = true;

before(async () => {
  skip = await useWebgpu();
  cpuForward = tf.env().getBool('WEBGPU_CPU_FORWARD');
  tf.env().set('WEBGPU_CPU_FORWARD', false);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-webgpu-eval-'));
});

after(() => {
  tf.env().set('WEBGPU_CPU_FORWARD', cpuForward);
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A width-4 ResNet-18 whose every state tensor is the output of a kernel on the active backend. */
function gpuResNet(seed: number): ResNet {
  const net = resnet18({ width: 4, seed });
  tf.tidy(() => {
    for (const [, v] of net.namedState()) {
      v.assign(v.dtype === 'int32' ? tf.add(v, tf.scalar(3, 'int32')) : tf.add(tf.mul(v, 1.25), 0.01));
    }
  });
  return net;
}

async function stateValues(net: ResNet): Promise<Map<string, number[]>> {
  const out = new Map<string, number[]>();
  for (const [name, v] of net.namedState()) out.set(name, Array.from(await v.data()));
  return out;
}

async function features(net: ResNet, x: tf.Tensor4D): Promise<Float32Array> {
  const f = tf.tidy(() => net.apply(x, false));
  try {
    return (await f.data()) as Float32Array;
  } finally {
    f.dispose();
  }
}

/** Runs fn on webgpu and on cpu (in that order); returns both results with webgpu active again. */
async function onBoth<T>(fn: () => Promise<T>): Promise<{ got: T; want: T }> {
  await tf.setBackend('webgpu');
  const got = await fn();
  await tf.setBackend('cpu');
  const want = await fn();
  await tf.setBackend('webgpu');
  return { got, want };
}

test('a synchronous read of any GPU-computed weight throws on webgpu (what the tests below rely on)', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const net = gpuResNet(1);
  try {
    for (const [name, v] of net.namedState()) assert.throws(() => v.dataSync(), /webgpu: a synchronous read/, name);
  } finally {
    net.dispose();
  }
});

test('kNN on webgpu: the same neighbours, similarities (1e-5) and predictions as on cpu', async (t) => {
  if (skip) return t.skip(skip);
  const rng = new Rng(4);
  const bank = rng.fillNormal(new Float32Array(60 * 8));
  const query = rng.fillNormal(new Float32Array(20 * 8));
  const bankLabels = Int32Array.from({ length: 60 }, (_, i) => i % 5);
  const queryLabels = Int32Array.from({ length: 20 }, (_, i) => (i * 3) % 5);
  const { got, want } = await onBoth(async () => {
    const before = tf.memory().numTensors;
    // Features computed on the backend (×2 leaves the cosines unchanged), searched in chunks.
    const [b, q] = tf.tidy(() => [tf.mul(tf.tensor2d(bank, [60, 8]), 2), tf.mul(tf.tensor2d(query, [20, 8]), 2)] as tf.Tensor2D[]);
    try {
      const nb = await knnNeighbours(b, q, { k: 10, queryChunk: 7, bankChunk: 25 });
      const res = await knnClassify(b, bankLabels, q, queryLabels, { k: 10, t: 0.1, queryChunk: 7, bankChunk: 25 });
      return { nb, res };
    } finally {
      tf.dispose([b, q]);
      assert.equal(tf.memory().numTensors, before, `kNN leaked tensors on ${tf.getBackend()}`);
    }
  });
  assert.deepEqual(got.nb.indices, want.nb.indices);
  assert.ok(relError(got.nb.similarities, want.nb.similarities) < 1e-5, `similarities: rel err ${relError(got.nb.similarities, want.nb.similarities)}`);
  assert.deepEqual(got.res, want.res);
});

test('the linear probe on webgpu gives the cpu losses (1e-5) and accuracy', async (t) => {
  if (skip) return t.skip(skip);
  const train = syntheticDataset({ size: 16, numClasses: 4, height: 16, width: 16, seed: 1 });
  const test_ = syntheticDataset({ size: 8, numClasses: 4, height: 16, width: 16, seed: 2 });
  const { got, want } = await onBoth(async () => {
    const before = tf.memory().numTensors;
    const net = resnet18({ width: 4, seed: 3 });
    try {
      return await linearProbe(net, { train, test: test_, epochs: 3, lr: 0.05, batchSize: 8, extractBatchSize: 8 });
    } finally {
      net.dispose();
      assert.equal(tf.memory().numTensors, before, `the linear probe leaked tensors on ${tf.getBackend()}`);
    }
  });
  assert.equal(got.lossHistory.length, 3);
  assert.ok(got.lossHistory[2] < got.lossHistory[0], `the probe learns: losses ${got.lossHistory}`);
  assert.ok(relError(got.lossHistory, want.lossHistory) < 1e-5, `losses ${got.lossHistory} vs ${want.lossHistory}`);
  assert.equal(got.top1, want.top1);
  assert.equal(got.top5, want.top5);
  assert.equal(got.trainTop1, want.trainTop1);
});

test('fine-tuning on webgpu (augmented, backbone and classifier trained) matches cpu', async (t) => {
  if (skip) return t.skip(skip);
  const train = syntheticDataset({ size: 8, numClasses: 4, height: 16, width: 16, seed: 5 });
  const test_ = syntheticDataset({ size: 8, numClasses: 4, height: 16, width: 16, seed: 6 });
  const { got, want } = await onBoth(async () => {
    const before = tf.memory().numTensors;
    const net = resnet18({ width: 4, seed: 7 });
    try {
      const res = await fineTune(net, { train, test: test_, protocol: 'finetune', epochs: 2, batchSize: 4, evalBatchSize: 8 });
      return { res, weights: await stateValues(net) };
    } finally {
      net.dispose();
      assert.equal(tf.memory().numTensors, before, `fine-tuning leaked tensors on ${tf.getBackend()}`);
    }
  });
  assert.equal(got.res.lossHistory.length, 2);
  // Train-mode BatchNorm over 4 samples of width 4 amplifies float32 rounding (webgpu-train.test).
  assert.ok(relError(got.res.lossHistory, want.res.lossHistory) < 1e-4, `losses ${got.res.lossHistory} vs ${want.res.lossHistory}`);
  const flat = (m: Map<string, number[]>) => Float32Array.from([...m.values()].flat());
  assert.ok(relError(flat(got.weights), flat(want.weights)) < 1e-4, `fine-tuned weights: rel err ${relError(flat(got.weights), flat(want.weights))}`);
  assert.equal(got.res.top1, want.res.top1);
  assert.equal(got.res.top5, want.res.top5);
});

test('a checkpoint written on webgpu loads back to the same weights', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const net = gpuResNet(8);
  const file = path.join(dir, 'checkpoint.safetensors');
  try {
    await saveCheckpoint(file, net.namedState().map(([n, v]) => [`backbone.${n}`, v] as [string, tf.Tensor]), { backbone: net.config, epoch: 2, step: 5 });
    const want = await stateValues(net);
    assert.deepEqual(loadCheckpoint(file).meta.step, 5);
    const back = loadBackbone(file);
    try {
      assert.deepEqual(await stateValues(back), want);
    } finally {
      back.dispose();
    }
  } finally {
    net.dispose();
  }
});

test('export to PyTorch and import back on webgpu: the same weights and features', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const before = tf.memory().numTensors;
  const net = gpuResNet(9);
  const exported = path.join(dir, 'exported.safetensors');
  const imported = path.join(dir, 'imported.safetensors');
  const x = tf.tensor4d(new Rng(10).fillUniform(new Float32Array(2 * 16 * 16 * 3)), [2, 16, 16, 3]);
  try {
    const state = await resnetToTorchState(net);
    assert.deepEqual(state.get('conv1.weight')!.shape, [4, 3, 3, 3]);
    assert.equal((await exportResNetToTorch(net, exported)).tensors, state.size);
    const want = await stateValues(net);
    const direct = importTorchBackbone(exported);
    try {
      assert.deepEqual(await stateValues(direct), want);
      assert.deepEqual(await features(direct, x), await features(net, x));
    } finally {
      direct.dispose();
    }
    // npm run import's path: a torchvision file → our checkpoint, written from webgpu tensors.
    const report = await importTorchToCheckpoint(exported, imported, { normalize: 'none' });
    assert.equal(report.imported, want.size);
    const back = loadBackbone(imported);
    try {
      assert.deepEqual(await stateValues(back), want);
    } finally {
      back.dispose();
    }
  } finally {
    net.dispose();
    x.dispose();
  }
  assert.equal(tf.memory().numTensors, before, 'export and import leaked tensors');
});

test('mask figure images of webgpu-computed MixMask views equal the cpu ones', async (t) => {
  if (skip) return t.skip(skip);
  // Pixel values k/255, so ×255 and rounding give the same bytes on both backends.
  const pixels = Float32Array.from(new Rng(12).fillUniform(new Float32Array(2 * 8 * 8 * 3)), (v) => Math.floor(v * 256) / 255);
  const grid = blockGrid(4, 0.5, new Rng(13));
  const { got, want } = await onBoth(async () => {
    const before = tf.memory().numTensors;
    const images = tf.tensor4d(pixels, [2, 8, 8, 3]);
    const mask = upsampleGrid(grid, 8, 8);
    const mixed = mixWithPartner(images, mask, flipIndex(2));
    const [a, b] = tf.unstack(mixed);
    const m = tf.squeeze(mask, [0]);
    try {
      return [await imageDataUri(a), await imageDataUri(b), await imageDataUri(m)];
    } finally {
      tf.dispose([images, mask, mixed, a, b, m]);
      assert.equal(tf.memory().numTensors, before, `imageDataUri leaked tensors on ${tf.getBackend()}`);
    }
  });
  assert.ok(got.every((u) => u.startsWith('data:image/png;base64,')));
  assert.notEqual(got[0], got[1], 'the two mixed images differ');
  assert.deepEqual(got, want);
});
