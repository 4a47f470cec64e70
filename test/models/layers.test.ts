import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { BatchNorm, Conv2d, convBn } from '../../lib/models';
import { batchNormRunningStats } from '../../lib/backend/batchnorm-op';
import { Rng } from '../../lib/util/rng';
import { relError, useBackend } from '../helpers';
import { compareGroupedLayerWithCpu } from '../backend/bn-grouped';

before(() => useBackend('cpu'));

test('stride-2 convolutions pad symmetrically like PyTorch, not like tfjs "same"', () => {
  const conv = new Conv2d(1, 1, 3, 2, 1, new Rng(0));
  conv.weight.assign(tf.ones([3, 3, 1, 1]));
  const y = tf.tidy(() => conv.apply(tf.ones([1, 4, 4, 1]) as tf.Tensor4D));
  // Output pixel (0,0) sees rows/cols −1..1: 2×2 real pixels with PyTorch's (1,1) padding
  // (tfjs 'same' would pad (0,1) and see 3×3 = 9).
  assert.deepEqual(Array.from(y.dataSync()), [4, 6, 6, 9]);
  assert.deepEqual(y.shape, [1, 2, 2, 1]);
  y.dispose();
  conv.dispose();
});

test('BatchNorm trains on batch statistics and updates running statistics as PyTorch does', () => {
  const bn = new BatchNorm(2, { momentum: 0.1, eps: 1e-5 });
  const values = [1, 10, 2, 20, 3, 30, 6, 40]; // 4 samples × 2 channels
  const x = tf.tensor2d(values, [4, 2]);
  const y = tf.tidy(() => bn.apply(x, true));
  const ch = (c: number) => values.filter((_, i) => i % 2 === c);
  const expected: number[] = [];
  const stats = [0, 1].map((c) => {
    const v = ch(c);
    const mean = v.reduce((s, a) => s + a, 0) / v.length;
    const varBiased = v.reduce((s, a) => s + (a - mean) ** 2, 0) / v.length;
    return { mean, varBiased, varUnbiased: (varBiased * v.length) / (v.length - 1) };
  });
  for (let i = 0; i < values.length; i++) {
    const s = stats[i % 2];
    expected.push((values[i] - s.mean) / Math.sqrt(s.varBiased + 1e-5));
  }
  assert.ok(relError(y.dataSync() as Float32Array, expected) < 1e-5);
  assert.ok(relError(bn.runningMean.dataSync() as Float32Array, stats.map((s) => 0.1 * s.mean)) < 1e-6);
  assert.ok(relError(bn.runningVar.dataSync() as Float32Array, stats.map((s) => 0.9 + 0.1 * s.varUnbiased)) < 1e-6);
  assert.equal(bn.numBatchesTracked.dataSync()[0], 1);

  // Evaluation uses the running statistics.
  const yEval = tf.tidy(() => bn.apply(x, false));
  const rm = bn.runningMean.dataSync();
  const rv = bn.runningVar.dataSync();
  const expectedEval = values.map((v, i) => (v - rm[i % 2]) / Math.sqrt(rv[i % 2] + 1e-5));
  assert.ok(relError(yEval.dataSync() as Float32Array, expectedEval) < 1e-5);
  [x, y, yEval].forEach((t) => t.dispose());
  bn.dispose();
});

test('BatchNorm running statistics over consecutive batches of rank 2 and 4, n = 1 included, as PyTorch (float64 reference); num_batches_tracked int32', () => {
  const C = 3;
  const bn = new BatchNorm(C, { momentum: 0.2 });
  const rng = new Rng(9);
  let rm = [0, 0, 0];
  let rv = [1, 1, 1];
  const counts: number[] = [];
  const shapes = [[5, C], [2, 2, 3, C], [1, C], [1, 1, 1, C], [4, C]];
  shapes.forEach((shape, k) => {
    const values = rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), k, 1 + k);
    const x = tf.tensor(values, shape);
    tf.tidy(() => {
      bn.apply(x, true, k % 2 === 0);
    });
    x.dispose();
    const n = values.length / C;
    const mean = [0, 1, 2].map((c) => values.filter((_, i) => i % C === c).reduce((s, v) => s + v, 0) / n);
    const biased = [0, 1, 2].map((c) => values.filter((_, i) => i % C === c).reduce((s, v) => s + (v - mean[c]) ** 2, 0) / n);
    // PyTorch: the unbiased variance n/(n − 1) where n > 1 (with n = 1 the biased one, 0).
    rm = rm.map((r, c) => 0.8 * r + 0.2 * mean[c]);
    rv = rv.map((r, c) => 0.8 * r + 0.2 * biased[c] * (n > 1 ? n / (n - 1) : 1));
    assert.ok(relError(bn.runningMean.dataSync() as Float32Array, rm) < 1e-5, `call ${k + 1}: running mean`);
    assert.ok(relError(bn.runningVar.dataSync() as Float32Array, rv) < 1e-5, `call ${k + 1}: running variance`);
    assert.equal(bn.numBatchesTracked.dtype, 'int32');
    assert.equal(bn.numBatchesTracked.dataSync()[0], k + 1);
    counts.push(tf.memory().numTensors);
  });
  assert.deepEqual(counts, counts.map(() => counts[0]), `tensors per call: ${counts}`);
  bn.dispose();
});

test('batchNormRunningStats: a bad operand or attribute is an error naming it', () => {
  const r = tf.zeros([4]);
  const r3 = tf.zeros([3]);
  const i32 = tf.scalar(0, 'int32');
  const f32 = tf.scalar(0);
  const inputs = { runningMean: r, runningVar: r, numBatchesTracked: i32, mean: r, variance: r };
  assert.throws(() => batchNormRunningStats({ ...inputs, numBatchesTracked: f32 }, { momentum: 0.1, count: 4 }), /numBatchesTracked must be an int32 scalar, got float32 of shape \[\]/);
  assert.throws(() => batchNormRunningStats({ ...inputs, mean: r3 }, { momentum: 0.1, count: 4 }), /mean has shape \[3\], expected \[4\]/);
  assert.throws(() => batchNormRunningStats(inputs, { momentum: 1.5, count: 4 }), /momentum must be a number in \[0, 1\], got 1.5/);
  assert.throws(() => batchNormRunningStats(inputs, { momentum: 0.1, count: 0 }), /count \(elements per channel in the batch\) must be an integer ≥ 1, got 0/);
  tf.dispose([r, r3, i32, f32]);
});

test('convBn in evaluation folds BatchNorm into the convolution and computes conv → BN (→ ReLU) exactly', () => {
  const rng = new Rng(3);
  for (const [k, stride, pad, inC, outC, affine] of [[3, 1, 1, 3, 5, true], [3, 2, 1, 4, 6, true], [1, 2, 0, 5, 3, false], [7, 2, 3, 3, 4, true]] as const) {
    const conv = new Conv2d(inC, outC, k, stride, pad, rng);
    const bn = new BatchNorm(outC, { affine });
    // Non-trivial running statistics and affine parameters, so that every folded term matters.
    bn.runningMean.assign(tf.tensor1d(rng.fillNormal(new Float32Array(outC), 0, 1)));
    bn.runningVar.assign(tf.tensor1d(rng.fillUniform(new Float32Array(outC), 0.2, 3)));
    bn.weight?.assign(tf.tensor1d(rng.fillNormal(new Float32Array(outC), 1, 0.5)));
    bn.bias?.assign(tf.tensor1d(rng.fillNormal(new Float32Array(outC), 0, 0.5)));
    const x = tf.tensor4d(rng.fillNormal(new Float32Array(2 * 9 * 11 * inC), 0, 1), [2, 9, 11, inC]);
    for (const relu of [false, true]) {
      const folded = tf.tidy(() => convBn(conv, bn, x, false, relu));
      const reference = tf.tidy(() => bn.apply(conv.apply(x), false, relu));
      assert.deepEqual(folded.shape, reference.shape);
      assert.ok(relError(folded.dataSync() as Float32Array, reference.dataSync() as Float32Array) < 1e-5, `k=${k} stride=${stride} relu=${relu}`);
      folded.dispose();
      reference.dispose();
    }
    // In training it is the two layers as they are (batch statistics, running statistics updated).
    const before = bn.numBatchesTracked.dataSync()[0];
    tf.tidy(() => convBn(conv, bn, x, true, true));
    assert.equal(bn.numBatchesTracked.dataSync()[0], before + 1);
    [x].forEach((t) => t.dispose());
    conv.dispose();
    bn.dispose();
  }
});

test('BatchNorm with groups: each equal part of the batch normalised and counted as its own batch, as one call per part', async () => {
  await compareGroupedLayerWithCpu('cpu', [8, 2, 2, 3], 4, 5);
  await compareGroupedLayerWithCpu('cpu', [6, 5], 3, 6);
  const bn = new BatchNorm(3);
  const x = tf.zeros([6, 3]);
  assert.throws(() => tf.tidy(() => bn.apply(x, true, false, 4)), /batchNormTrain: groups = 4 must divide the batch/);
  assert.throws(() => tf.tidy(() => bn.apply(x, true, false, 0)), /batchNormTrain: groups must be a positive integer, got 0/);
  // Evaluation normalises every sample on its own (running statistics): groups change nothing.
  const y1 = tf.tidy(() => bn.apply(x, false, false, 3));
  const y0 = tf.tidy(() => bn.apply(x, false));
  assert.deepEqual(Array.from(y1.dataSync()), Array.from(y0.dataSync()));
  tf.dispose([x, y0, y1]);
  bn.dispose();
});

test('batchNormRunningStats with [G, C] statistics: G updates in order (float64 reference), num_batches_tracked + G; mismatched shapes are errors', () => {
  const C = 3;
  const rm0 = [0.5, -1, 2];
  const rv0 = [1, 2, 0.5];
  const means = [[1, 2, 3], [-1, 0, 4]];
  const vars = [[0.5, 1, 2], [3, 0.25, 1]];
  const n = 6;
  const inputs = { runningMean: tf.tensor1d(rm0), runningVar: tf.tensor1d(rv0), numBatchesTracked: tf.scalar(5, 'int32'), mean: tf.tensor2d(means), variance: tf.tensor2d(vars) };
  const [rm, rv, tracked] = batchNormRunningStats(inputs, { momentum: 0.1, count: n });
  let em = rm0;
  let ev = rv0;
  for (let g = 0; g < 2; g++) {
    em = em.map((r, c) => 0.9 * r + 0.1 * means[g][c]);
    ev = ev.map((r, c) => 0.9 * r + 0.1 * (n / (n - 1)) * vars[g][c]);
  }
  assert.ok(relError(rm.dataSync() as Float32Array, em) < 1e-6);
  assert.ok(relError(rv.dataSync() as Float32Array, ev) < 1e-6);
  assert.equal(tracked.dataSync()[0], 7);
  assert.equal(tracked.dtype, 'int32');
  const r = tf.zeros([C]);
  const i32 = tf.scalar(0, 'int32');
  const g2 = tf.zeros([2, C]);
  const g3 = tf.zeros([3, C]);
  const wide = tf.zeros([2, 4]);
  const attrs = { momentum: 0.1, count: 4 };
  assert.throws(() => batchNormRunningStats({ runningMean: r, runningVar: r, numBatchesTracked: i32, mean: g2, variance: g3 }, attrs), /variance has shape \[3,3\], expected \[3\] or \[groups, 3\] \(runningMean's channels; mean's groups: 2\)/);
  assert.throws(() => batchNormRunningStats({ runningMean: r, runningVar: r, numBatchesTracked: i32, mean: g2, variance: r }, attrs), /variance has shape \[3\], expected \[3\] or \[groups, 3\]/);
  assert.throws(() => batchNormRunningStats({ runningMean: r, runningVar: r, numBatchesTracked: i32, mean: wide, variance: wide }, attrs), /mean has shape \[2,4\], expected \[3\] or \[groups, 3\]/);
  tf.dispose([rm, rv, tracked, r, i32, g2, g3, wide, ...Object.values(inputs)]);
});

test('convBn and BatchNorm.apply with a residual: act(conv → BN + residual) in training and in evaluation, as the Add and Relu after the layer', () => {
  const rng = new Rng(9);
  const conv = new Conv2d(3, 5, 3, 1, 1, rng);
  const bn = new BatchNorm(5);
  const plain = new BatchNorm(5);
  bn.runningMean.assign(tf.tensor1d(rng.fillNormal(new Float32Array(5), 0, 1)));
  plain.runningMean.assign(bn.runningMean);
  const x = tf.tensor4d(rng.fillNormal(new Float32Array(4 * 6 * 6 * 3), 0, 1), [4, 6, 6, 3]);
  const residual = tf.tensor4d(rng.fillNormal(new Float32Array(4 * 6 * 6 * 5), 0, 1), [4, 6, 6, 5]);
  const before = tf.memory().numTensors;
  for (const training of [true, false]) {
    for (const relu of [true, false]) {
      const got = tf.tidy(() => convBn(conv, bn, x, training, relu, 1, residual));
      const want = tf.tidy(() => {
        const y = tf.add(convBn(conv, plain, x, training, false), residual);
        return relu ? tf.relu(y) : y;
      });
      const e = relError(got.dataSync() as Float32Array, want.dataSync() as Float32Array);
      assert.ok(e < 1e-6, `training ${training}, relu ${relu}: rel err ${e}`);
      if (relu) assert.ok(got.dataSync().every((v) => v >= 0));
      tf.dispose([got, want]);
    }
  }
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  // Training updated both layers' running statistics alike.
  assert.ok(relError(bn.runningVar.dataSync() as Float32Array, plain.runningVar.dataSync() as Float32Array) < 1e-6);
  assert.throws(() => bn.apply(x, true, true, 1, residual), /residual has shape \[4,6,6,5\], expected x's \[4,6,6,3\]/);
  tf.dispose([x, residual]);
  conv.dispose();
  bn.dispose();
  plain.dispose();
});
