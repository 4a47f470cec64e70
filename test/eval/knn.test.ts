import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { knnClassify, knnNeighbours, knnVote } from '../../lib/eval';
import { Rng } from '../../lib/util/rng';
import { useBackend } from '../helpers';

before(() => useBackend('wasm'));

function randomFeatures(n: number, dim: number, seed: number): { data: Float32Array; dim: number } {
  return { data: new Rng(seed).fillNormal(new Float32Array(n * dim)), dim };
}

function randomLabels(n: number, classes: number, seed: number): Int32Array {
  const rng = new Rng(seed);
  return Int32Array.from({ length: n }, () => rng.int(classes));
}

/** Independent reference: float64 cosine against every bank row, full sort, weighted vote, full class ranking. */
function bruteForce(bank: Float32Array, bankLabels: Int32Array, query: Float32Array, queryLabels: Int32Array, dim: number, k: number, t: number, classes: number) {
  const nb = bankLabels.length;
  const nq = queryLabels.length;
  const norm = (a: Float32Array, i: number) => Math.sqrt(Array.from(a.subarray(i * dim, (i + 1) * dim)).reduce((s, v) => s + v * v, 0));
  const bankNorms = Array.from({ length: nb }, (_, i) => norm(bank, i));
  const preds: number[] = [];
  let top1 = 0;
  let top5 = 0;
  for (let q = 0; q < nq; q++) {
    const qn = norm(query, q);
    const sims = Array.from({ length: nb }, (_, i) => {
      let dot = 0;
      for (let d = 0; d < dim; d++) dot += bank[i * dim + d] * query[q * dim + d];
      return { i, s: dot / (bankNorms[i] * qn) };
    });
    sims.sort((a, b) => b.s - a.s || a.i - b.i);
    const score = new Array<number>(classes).fill(0);
    for (const { i, s } of sims.slice(0, k)) score[bankLabels[i]] += Math.exp(s / t);
    const ranked = Array.from({ length: classes }, (_, c) => c).sort((a, b) => score[b] - score[a] || a - b);
    preds.push(ranked[0]);
    if (ranked[0] === queryLabels[q]) top1++;
    if (ranked.slice(0, 5).includes(queryLabels[q])) top5++;
  }
  return { preds, top1: (100 * top1) / nq, top5: (100 * top5) / nq };
}

test('kNN equals an independent brute-force reference on random features', async () => {
  const dim = 24;
  const classes = 12;
  const bank = randomFeatures(400, dim, 1);
  const query = randomFeatures(60, dim, 2);
  const bankLabels = randomLabels(400, classes, 3);
  const queryLabels = randomLabels(60, classes, 4);
  for (const [k, t] of [[20, 0.07], [200, 0.1], [1, 0.5]] as const) {
    const ref = bruteForce(bank.data, bankLabels, query.data, queryLabels, dim, k, t, classes);
    const got = await knnClassify(bank, bankLabels, query, queryLabels, { k, t, numClasses: classes });
    assert.deepEqual(Array.from(got.predictions), ref.preds, `predictions differ at k=${k}, T=${t}`);
    assert.equal(got.top1, ref.top1);
    assert.equal(got.top5, ref.top5);
  }
});

test('chunked kNN equals unchunked (neighbours, similarities and accuracy), for arrays and tensors', async () => {
  const dim = 16;
  const bank = randomFeatures(1000, dim, 5);
  const query = randomFeatures(150, dim, 6);
  const bankLabels = randomLabels(1000, 10, 7);
  const queryLabels = randomLabels(150, 10, 8);
  const whole = await knnNeighbours(bank, query, { k: 50, queryChunk: 150, bankChunk: 1000 });
  const before = tf.memory().numTensors;
  for (const [qc, bc] of [[7, 37], [150, 33], [64, 999], [1, 1000], [150, 50]]) {
    const part = await knnNeighbours(bank, query, { k: 50, queryChunk: qc, bankChunk: bc });
    assert.deepEqual(part.indices, whole.indices, `indices differ with queryChunk ${qc}, bankChunk ${bc}`);
    assert.deepEqual(part.similarities, whole.similarities, `similarities differ with queryChunk ${qc}, bankChunk ${bc}`);
  }
  const bt = tf.tensor2d(bank.data, [1000, dim]);
  const qt = tf.tensor2d(query.data, [150, dim]);
  const fromTensors = await knnNeighbours(bt, qt, { k: 50, queryChunk: 40, bankChunk: 300 });
  assert.deepEqual(fromTensors.indices, whole.indices);
  bt.dispose();
  qt.dispose();
  assert.equal(tf.memory().numTensors, before, 'kNN leaked tensors');
  // Similarities are sorted descending per row and are cosines.
  for (let r = 0; r < 150; r++) {
    for (let j = 1; j < 50; j++) assert.ok(whole.similarities[r * 50 + j - 1] >= whole.similarities[r * 50 + j]);
    assert.ok(Math.abs(whole.similarities[r * 50]) <= 1 + 1e-5);
  }
  const a = knnVote(whole, bankLabels, queryLabels, { k: 50, t: 0.1 });
  const b = await knnClassify(bank, bankLabels, query, queryLabels, { k: 50, t: 0.1, queryChunk: 9, bankChunk: 77 });
  assert.deepEqual(a, b);
});

test('planted clusters are classified ~100% and the vote uses only the first k neighbours', async () => {
  const dim = 32;
  const classes = 10;
  const rng = new Rng(9);
  const centres = Array.from({ length: classes }, () => rng.fillNormal(new Float32Array(dim)));
  const make = (n: number) => {
    const data = new Float32Array(n * dim);
    const labels = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      labels[i] = i % classes;
      for (let d = 0; d < dim; d++) data[i * dim + d] = centres[labels[i]][d] + 0.2 * rng.normal();
    }
    return { f: { data, dim }, labels };
  };
  const bank = make(2000);
  const query = make(500);
  const res = await knnClassify(bank.f, bank.labels, query.f, query.labels, { k: 200, t: 0.1 });
  assert.ok(res.top1 >= 99.8, `top-1 ${res.top1}`);
  assert.equal(res.top5, 100);
  // k larger than the bank is clamped, not an error.
  const small = await knnClassify({ data: bank.f.data.subarray(0, 50 * dim), dim }, bank.labels.subarray(0, 50), query.f, query.labels, { k: 200 });
  assert.equal(small.k, 50);
});

test('bad input gives clear errors naming the option', async () => {
  const f = randomFeatures(10, 4, 1);
  const y = new Int32Array(10);
  await assert.rejects(() => knnClassify(f, y, f, y, { k: 0 }), /option k must be an integer ≥ 1, got 0/);
  await assert.rejects(() => knnClassify(f, y, f, y, { t: -1 }), /option t must be > 0, got -1/);
  await assert.rejects(() => knnClassify(f, y, f, y, { queryChunk: 1.5 }), /option queryChunk/);
  await assert.rejects(() => knnClassify(f, y, randomFeatures(10, 5, 1), y), /dim 4, query features 5/);
  await assert.rejects(() => knnClassify(f, y.subarray(0, 9), f, y), /9 bank labels for 10 bank rows/);
  await assert.rejects(() => knnClassify(f, y, f, y, { weighting: 'max' as 'exp' }), /option weighting/);
  const nb = await knnNeighbours(randomFeatures(100, 4, 2), f, { k: 20 });
  assert.throws(() => knnVote(nb, new Int32Array(100), y, { k: 200 }), /computed with k = 20/);
});
