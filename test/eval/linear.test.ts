import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { resolveMilestones, Sgd, stepFactor, trainLinearOnFeatures, type LabelledFeatures } from '../../lib/eval';
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

test('schedules scale Table 2/3 milestones and SGD follows PyTorch semantics with per-group rates', () => {
  assert.deepEqual(resolveMilestones('m', undefined, 100, [60, 80], 100), [60, 80]);
  assert.deepEqual(resolveMilestones('m', undefined, 10, [60, 80], 100), [6, 8]);
  assert.deepEqual(resolveMilestones('m', undefined, 5, [12, 16], 20), [3, 4]);
  assert.deepEqual(resolveMilestones('m', undefined, 1, [12, 16], 20), []);
  assert.equal(stepFactor(0, [6, 8], 0.1), 1);
  assert.ok(Math.abs(stepFactor(7, [6, 8], 0.1) - 0.1) < 1e-12);
  assert.ok(Math.abs(stepFactor(9, [6, 8], 0.1) - 0.01) < 1e-12);

  const a = tf.variable(tf.tensor1d([1, 2]));
  const b = tf.variable(tf.tensor1d([3]));
  const opt = new Sgd([{ params: [a], lr: 0.1 }, { params: [b], lr: 1 }], { momentum: 0.9, weightDecay: 0.5 });
  const before = tf.memory().numTensors;
  const g = { [a.name]: tf.tensor1d([1, 1]), [b.name]: tf.tensor1d([2]) };
  opt.step(g); // v = g + wd·p; p -= lr·v
  opt.step(g); // v = 0.9·v + g + wd·p
  // a0 = 1: v1 = 1 + 0.5 = 1.5 → a1 = 0.85; v2 = 1.35 + 1 + 0.425 = 2.775 → a2 = 0.5725
  // b0 = 3: v1 = 2 + 1.5 = 3.5 → b1 = -0.5; v2 = 3.15 + 2 - 0.25 = 4.9 → b2 = -5.4
  const av = a.dataSync();
  assert.ok(Math.abs(av[0] - 0.5725) < 1e-5, `a = ${av}`);
  assert.ok(Math.abs(b.dataSync()[0] + 5.4) < 1e-5, `b = ${b.dataSync()}`);
  // Momentum slots exist from construction: steps allocate nothing but the caller's gradients.
  assert.equal(tf.memory().numTensors, before + 2);
  opt.dispose();
  tf.dispose([a, b, ...Object.values(g)]);
  assert.throws(() => new Sgd([{ params: [], lr: -1 }]), /option groups\[0\].lr must be ≥ 0, got -1/);
});
