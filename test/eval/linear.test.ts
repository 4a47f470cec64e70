import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { resolveMilestones, trainLinearOnFeatures, type LabelledFeatures } from '../../lib/eval';
import { Rng } from '../../lib/util/rng';
import { useBackend } from '../helpers';

before(() => useBackend('wasm'));

/** Labels = argmax(W·x): linearly separable by construction. */
function separable(n: number, dim: number, classes: number, w: Float32Array, rng: Rng): LabelledFeatures {
  const data = rng.fillNormal(new Float32Array(n * dim));
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    let best = -Infinity;
    for (let c = 0; c < classes; c++) {
      let s = 0;
      for (let d = 0; d < dim; d++) s += w[c * dim + d] * data[i * dim + d];
      if (s > best) {
        best = s;
        labels[i] = c;
      }
    }
  }
  return { data, dim, n, labels };
}

test('the linear probe (Table 2 lr 30, momentum 0.9, scaled steps) solves a linearly separable task without leaks', async () => {
  const rng = new Rng(1);
  const dim = 16;
  const classes = 5;
  const w = rng.fillNormal(new Float32Array(classes * dim));
  const train = separable(2000, dim, classes, w, rng);
  const test10 = separable(500, dim, classes, w, rng);
  const before = tf.memory().numTensors;
  const epochsSeen: number[] = [];
  const res = await trainLinearOnFeatures(train, test10, { epochs: 20, onProgress: (p) => epochsSeen.push(p.epoch!) });
  assert.equal(tf.memory().numTensors, before, 'linear probe leaked tensors');
  assert.deepEqual(res.milestones, [12, 16]);
  assert.equal(res.lr, 30);
  assert.deepEqual(epochsSeen, Array.from({ length: 20 }, (_, i) => i + 1));
  assert.ok(res.top1 >= 95, `test top-1 ${res.top1}`);
  assert.ok(res.trainTop1 >= 95, `train top-1 ${res.trainTop1}`);
  assert.equal(res.top5, 100);
  assert.ok(res.lossHistory[19] < res.lossHistory[0], `loss ${res.lossHistory}`);
  await assert.rejects(trainLinearOnFeatures(train, test10, { epochs: 0 }), /option epochs must be an integer ≥ 1, got 0/);
  await assert.rejects(trainLinearOnFeatures(train, test10, { lr: -1 }), /option lr must be > 0, got -1/);
  await assert.rejects(trainLinearOnFeatures(train, test10, { milestones: [5, 3] }), /option milestones must be increasing/);
});

test('Table 2/3 milestones scale with the number of epochs', () => {
  assert.deepEqual(resolveMilestones('m', undefined, 100, [60, 80], 100), [60, 80]);
  assert.deepEqual(resolveMilestones('m', undefined, 10, [60, 80], 100), [6, 8]);
  assert.deepEqual(resolveMilestones('m', undefined, 5, [12, 16], 20), [3, 4]);
  assert.deepEqual(resolveMilestones('m', undefined, 1, [12, 16], 20), []);
});
