import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { byolLoss, crossViewNce, infoNce, mixedTerms, ntXent, simsiamLoss } from '../../lib/losses';
import { relError, useBackend } from '../helpers';

before(() => useBackend('cpu'));

// Independent references in plain JavaScript on small hand-made inputs.
type M = number[][];
const norm = (v: number[]) => {
  const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return v.map((x) => x / n);
};
const dot = (a: number[], b: number[]) => a.reduce((s, x, i) => s + x * b[i], 0);
const ce = (logits: number[], label: number) => {
  const m = Math.max(...logits);
  const lse = m + Math.log(logits.reduce((s, l) => s + Math.exp(l - m), 0));
  return lse - logits[label];
};
const t2 = (m: M) => tf.tensor2d(m);
const vals = (t: tf.Tensor) => Array.from(t.dataSync());

const A: M = [[1, 0, 2], [0.5, -1, 0], [2, 2, -1]];
const B: M = [[0.9, 0.2, 1.5], [-0.5, -1, 0.3], [1, 2, -2]];
const Q: M = [[1, 1, 1], [-1, 0, 1], [0, -2, 1], [3, 0, 0]];

test('InfoNCE: the key is class 0 among [key, queue], at temperature t', () => {
  const t = 0.2;
  const expected = A.map((q, i) => {
    const qn = norm(q);
    return ce([dot(qn, norm(B[i])) / t, ...Q.map((k) => dot(qn, norm(k)) / t)], 0);
  });
  assert.ok(relError(vals(infoNce(t2(A), t2(B), t2(Q), t)), expected) < 1e-5);
});

test('NT-Xent: 2N rows, positive is the other view of the same image, self excluded', () => {
  const t = 0.5;
  const z = [...A, ...B].map(norm);
  const n = A.length;
  const expected = z.map((zi, i) => {
    const logits = z.map((zj, j) => (j === i ? -Infinity : dot(zi, zj) / t));
    const finite = logits.filter((l) => l !== -Infinity);
    const m = Math.max(...finite);
    const lse = m + Math.log(finite.reduce((s, l) => s + Math.exp(l - m), 0));
    return lse - logits[(i + n) % (2 * n)];
  });
  assert.ok(relError(vals(ntXent(t2(A), t2(B), t)), expected) < 1e-5);
});

test('cross-view NCE (SimCLR mixed terms): anchor i against all targets, positive target i', () => {
  const t = 0.5;
  const expected = A.map((a, i) => ce(B.map((b) => dot(norm(a), norm(b)) / t), i));
  assert.ok(relError(vals(crossViewNce(t2(A), t2(B), t)), expected) < 1e-5);
});

test('BYOL 2 − 2cos and SimSiam −cos', () => {
  const cos = A.map((a, i) => dot(norm(a), norm(B[i])));
  assert.ok(relError(vals(byolLoss(t2(A), t2(B))), cos.map((c) => 2 - 2 * c)) < 1e-6);
  assert.ok(relError(vals(simsiamLoss(t2(A), t2(B))), cos.map((c) => -c)) < 1e-6);
  // SimSiam reaches −1 on identical inputs.
  assert.ok(Math.abs(vals(simsiamLoss(t2(A), t2(A)))[0] + 1) < 1e-6);
});

test('mixed terms weight own rows by λ and re-indexed rows by 1 − λ of the partner view', () => {
  // Mixed row i holds image i and, where M = 0, image partner[i]; inverse = argsort(partner).
  const partner = Int32Array.from([2, 0, 1]);
  const inverse = Int32Array.from([1, 2, 0]); // partner[inverse[j]] = j
  const lambdas = [0.7, 0.4, 0.55];
  const rowLoss = (a: tf.Tensor2D, b: tf.Tensor2D) => byolLoss(a, b);
  const { own, partner: part } = mixedTerms(rowLoss, t2(A), t2(B), lambdas, inverse);
  const l = (a: number[], b: number[]) => 2 - 2 * dot(norm(a), norm(b));
  const ownRef = A.reduce((s, a, i) => s + lambdas[i] * l(a, B[i]), 0) / 3;
  // Target j is compared with the mixed row whose partner is j, weighted by that row's 1 − λ.
  const partRef = B.reduce((s, b, j) => s + (1 - lambdas[inverse[j]]) * l(A[inverse[j]], b), 0) / 3;
  assert.ok(Math.abs(own.dataSync()[0] - ownRef) < 1e-6);
  assert.ok(Math.abs(part.dataSync()[0] - partRef) < 1e-6);
  for (let j = 0; j < 3; j++) assert.equal(partner[inverse[j]], j);
});

