import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { syntheticDataset } from '../../lib/data';
import { extractFeatures, fineTune, knnMonitor, linearProbe, trainLinearOnFeatures, type FeatureFn, type LabelledFeatures } from '../../lib/eval';
import { resnet18 } from '../../lib/models';
import { InterruptedError } from '../../lib/train/interrupt';
import { useBackend } from '../helpers';

// Kernel → Interrupt aborts the signal (train/interrupt's interruptible); every evaluator stops
// at its next batch or epoch with one InterruptedError line saying where, and frees its tensors.

before(async () => {
  await useBackend('wasm');
  if (!tf.getKernel('Conv2DBackpropFilter', 'wasm')) await useBackend('cpu');
});

const flatten: FeatureFn = (x) => tf.reshape(x, [x.shape[0], -1]) as tf.Tensor2D;
const data = syntheticDataset({ size: 64, numClasses: 4, height: 8, width: 8, seed: 3 });

function features(n: number, seed: number): LabelledFeatures {
  const out = new Float32Array(n * 4);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    labels[i] = i % 4;
    out[i * 4 + labels[i]] = 1 + ((i * 7 + seed) % 5) / 10;
  }
  return { data: out, labels, n, dim: 4 };
}

/** Runs fn with a signal that is aborted once `when` says so; returns the rejection. */
async function interrupted(fn: (signal: AbortSignal, abortWhen: (cond: boolean) => void) => Promise<unknown>): Promise<InterruptedError> {
  const ctl = new AbortController();
  const before0 = tf.memory().numTensors;
  let err: unknown = null;
  try {
    await fn(ctl.signal, (cond) => cond && ctl.abort());
  } catch (e) {
    err = e;
  }
  assert.equal(tf.memory().numTensors, before0, 'tensors left behind by the interrupted evaluation');
  assert.ok(err instanceof InterruptedError, `expected an InterruptedError, got ${String(err)}`);
  assert.equal(err.stack?.split('\n').length, 1, 'the message is not one line');
  return err;
}

test('feature extraction stops at the next batch', async () => {
  const e = await interrupted((signal, abortWhen) => extractFeatures(flatten, data, { batchSize: 16, signal, onProgress: (p) => abortWhen(p.done >= 16) }));
  assert.match(e.message, /^feature extraction interrupted at image 16 of 64 \(features\); nothing of it is kept: re-run the cell/);
});

test('the linear probe stops at the next step, in its features or in training', async () => {
  const e = await interrupted((signal, abortWhen) => trainLinearOnFeatures(features(40, 0), features(8, 1), { epochs: 5, batchSize: 16, signal, onProgress: (p) => abortWhen(p.epoch === 2) }));
  assert.match(e.message, /^linear probe interrupted at epoch 3 of 5 \(step 1 of 3\);/);
  const f = await interrupted((signal, abortWhen) => linearProbe(flatten, { train: data, test: data, epochs: 2, extractBatchSize: 32, signal, onProgress: (p) => abortWhen(p.phase === 'test features') }));
  assert.match(f.message, /^feature extraction interrupted at image 32 of 64 \(test features\)/);
});

test('kNN evaluation stops in its features', async () => {
  const e = await interrupted((signal, abortWhen) => knnMonitor(flatten, { bank: data, query: data, k: 5, batchSize: 32, signal, onProgress: (p) => abortWhen(p.phase === 'bank features') }));
  assert.match(e.message, /^feature extraction interrupted at image 32 of 64 \(bank features\)/);
});

test('fine-tuning stops at the next batch and says the backbone keeps its steps', async () => {
  const net = resnet18({ width: 2, seed: 1 });
  try {
    const e = await interrupted((signal, abortWhen) =>
      fineTune(net, { train: data, test: data, protocol: 'finetune', epochs: 2, batchSize: 16, signal, onProgress: (p) => abortWhen(p.phase === 'train' && p.epoch === 1 && p.done === 2) }));
    assert.match(e.message, /^fine-tuning interrupted at epoch 1 of 2 \(batch 3 of 4\); the backbone keeps the steps done so far/);
  } finally {
    net.dispose();
  }
});

test('an unaborted signal changes nothing', async () => {
  const ctl = new AbortController();
  const a = await trainLinearOnFeatures(features(40, 0), features(8, 1), { epochs: 2, batchSize: 16, signal: ctl.signal });
  const b = await trainLinearOnFeatures(features(40, 0), features(8, 1), { epochs: 2, batchSize: 16 });
  assert.deepEqual(a.lossHistory, b.lossHistory);
});
