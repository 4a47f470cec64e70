import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Adam, Sgd, byolTargetMomentum, emaUpdate, fixedRateParams, learningRate, learningRates, stepFactor } from '../../lib/optim';
import { useBackend } from '../helpers';

before(() => useBackend('cpu'));

test('SGD with momentum and weight decay matches torch.optim.SGD step by step', () => {
  const w = tf.variable(tf.tensor1d([1, -2]));
  const opt = new Sgd([['w', w]], { momentum: 0.9, weightDecay: 0.1 });
  let ref = [1, -2];
  let vel = [0, 0];
  const grads = [[0.5, 0.25], [-1, 2], [0.1, 0.1]];
  for (const g of grads) {
    opt.step({ [w.name]: tf.tensor1d(g) }, 0.1);
    const d = g.map((gi, i) => gi + 0.1 * ref[i]);
    vel = vel.map((v, i) => 0.9 * v + d[i]);
    ref = ref.map((r, i) => r - 0.1 * vel[i]);
  }
  Array.from(w.dataSync()).forEach((v, i) => assert.ok(Math.abs(v - ref[i]) < 1e-6));
  assert.deepEqual(opt.namedState().map(([n]) => n), ['velocity.w']);
});

test('Adam with L2 weight decay matches torch.optim.Adam step by step', () => {
  const w = tf.variable(tf.tensor1d([0.5]));
  const opt = new Adam([['w', w]], { weightDecay: 0.01 });
  let x = 0.5;
  let m = 0;
  let v = 0;
  const gs = [1, -0.5, 0.25, 2];
  gs.forEach((g0, k) => {
    opt.step({ [w.name]: tf.tensor1d([g0]) }, 0.01);
    const g = g0 + 0.01 * x;
    m = 0.9 * m + 0.1 * g;
    v = 0.999 * v + 0.001 * g * g;
    const t = k + 1;
    x -= (0.01 * (m / (1 - 0.9 ** t))) / (Math.sqrt(v / (1 - 0.999 ** t)) + 1e-8);
  });
  assert.ok(Math.abs(w.dataSync()[0] - x) < 1e-6);
  assert.deepEqual(opt.scalars(), { t: 4 });
});

test('schedules: cosine from base to 0, linear warm-up, step decay', () => {
  assert.equal(learningRate(0.1, { kind: 'cosine' }, 0, 10), 0.1);
  assert.ok(Math.abs(learningRate(0.1, { kind: 'cosine' }, 5, 10) - 0.05) < 1e-12);
  assert.ok(learningRate(0.1, { kind: 'cosine' }, 10, 10) < 1e-12);
  assert.ok(Math.abs(learningRate(0.1, { kind: 'cosine', warmupEpochs: 2 }, 1, 10) - 0.05) < 1e-9);
  assert.ok(Math.abs(learningRate(0.1, { kind: 'cosine', warmupEpochs: 2 }, 2, 10) - 0.1) < 1e-12);
  const step = { kind: 'step' as const, milestones: [60, 80] };
  assert.equal(learningRate(30, step, 59.9, 100), 30);
  assert.ok(Math.abs(learningRate(30, step, 60, 100) - 3) < 1e-9);
  assert.ok(Math.abs(learningRate(30, step, 85, 100) - 0.3) < 1e-9);
  assert.equal(stepFactor(0, [6, 8], 0.1), 1);
  assert.ok(Math.abs(stepFactor(7, [6, 8], 0.1) - 0.1) < 1e-12);
  assert.ok(Math.abs(stepFactor(9, [6, 8], 0.1) - 0.01) < 1e-12);
});

test('SGD on parameter groups: torch semantics with each group rate times lrFactor', () => {
  const a = tf.variable(tf.tensor1d([1, 2]));
  const b = tf.variable(tf.tensor1d([3]));
  const opt = new Sgd([{ params: [a], lr: 0.1 }, { params: [b], lr: 1 }], { momentum: 0.9, weightDecay: 0.5 });
  assert.deepEqual(opt.variables(), [a, b]);
  const before = tf.memory().numTensors;
  const g = { [a.name]: tf.tensor1d([1, 1]), [b.name]: tf.tensor1d([2]) };
  opt.step(g); // v = g + wd·p; p -= lr·v
  opt.step(g); // v = 0.9·v + g + wd·p
  // a0 = 1: v1 = 1 + 0.5 = 1.5 → a1 = 0.85; v2 = 1.35 + 1 + 0.425 = 2.775 → a2 = 0.5725
  // b0 = 3: v1 = 2 + 1.5 = 3.5 → b1 = -0.5; v2 = 3.15 + 2 - 0.25 = 4.9 → b2 = -5.4
  const av = a.dataSync();
  assert.ok(Math.abs(av[0] - 0.5725) < 1e-5, `a = ${av}`);
  assert.ok(Math.abs(b.dataSync()[0] + 5.4) < 1e-5, `b = ${b.dataSync()}`);
  // lrFactor scales every group: v3 = 0.9·4.9 + 2 + 0.5·(−5.4) = 3.71 → b3 = −5.4 − 0.1·3.71
  opt.lrFactor = 0.1;
  opt.step(g);
  assert.ok(Math.abs(b.dataSync()[0] - (-5.4 - 0.371)) < 1e-5, `b = ${b.dataSync()}`);
  // Momentum slots exist from construction: steps allocate nothing but the caller's gradients.
  assert.equal(tf.memory().numTensors, before + 2);
  opt.dispose();
  tf.dispose([a, b, ...Object.values(g)]);
  assert.throws(() => new Sgd([{ params: [], lr: -1 }]), /optimizer: groups\[0\].lr must be ≥ 0, got -1/);
  const c = tf.variable(tf.scalar(1));
  assert.throws(() => new Sgd([{ params: [c], lr: 1 }, { params: [c], lr: 2 }]), /variable .* is in two parameter groups/);
  const named = new Sgd([['c', c]], { momentum: 0, weightDecay: 0 });
  assert.throws(() => named.step({}), /needs a learning rate when built without parameter groups/);
  named.dispose();
  c.dispose();
});

test('per-parameter learning rates: SGD and Adam step each parameter with its own rate', () => {
  for (const make of [(v: Array<[string, tf.Variable]>) => new Sgd(v, { momentum: 0.9, weightDecay: 0 }), (v: Array<[string, tf.Variable]>) => new Adam(v, { weightDecay: 0 })]) {
    const a = tf.variable(tf.tensor1d([1]));
    const b = tf.variable(tf.tensor1d([1]));
    const opt = make([['backbone.w', a], ['predictor.w', b]]);
    opt.step({ [a.name]: tf.tensor1d([1]), [b.name]: tf.tensor1d([1]) }, (p) => (p.startsWith('predictor.') ? 0.1 : 0.01));
    // First step: SGD moves by lr·g, Adam by lr·sign(g); either way the update is the rate.
    assert.ok(Math.abs(1 - a.dataSync()[0] - 0.01) < 1e-6, `${opt.constructor.name}: backbone moved ${1 - a.dataSync()[0]}`);
    assert.ok(Math.abs(1 - b.dataSync()[0] - 0.1) < 1e-6, `${opt.constructor.name}: predictor moved ${1 - b.dataSync()[0]}`);
    opt.dispose();
  }
});

test('fixedLrModules: the named modules keep the base rate, the rest follow the schedule; unknown modules are named', () => {
  const params = ['backbone.conv1.weight', 'projector.fc0.weight', 'predictor.fc0.weight', 'predictor.fc1.bias'];
  const schedule = { kind: 'cosine' as const, warmupEpochs: 2, fixedLrModules: ['predictor'] };
  const fixed = fixedRateParams(schedule, params);
  assert.deepEqual([...fixed], ['predictor.fc0.weight', 'predictor.fc1.bias']);
  // During warm-up the schedule gives 0.05 of a base 0.1; the predictor still gets 0.1.
  const rates = learningRates(learningRate(0.1, schedule, 1, 10), 0.1, fixed) as (p: string) => number;
  assert.ok(Math.abs(rates('backbone.conv1.weight') - 0.05) < 1e-9);
  assert.equal(rates('predictor.fc1.bias'), 0.1);
  assert.equal(learningRates(0.05, 0.1, fixedRateParams({ kind: 'cosine' }, params)), 0.05);
  assert.throws(() => fixedRateParams({ kind: 'cosine', fixedLrModules: ['predictr'] }, params), /fixedLrModules: 'predictr' is not a trainable module here; expected one of backbone, projector, predictor/);
});

test('EMA and BYOL target momentum', () => {
  const t = tf.variable(tf.tensor1d([0, 10]));
  const o = tf.variable(tf.tensor1d([1, 0]));
  emaUpdate([['a', t]], [['a', o]], 0.9);
  assert.deepEqual(Array.from(t.dataSync()).map((v) => Math.round(v * 1e6) / 1e6), [0.1, 9]);
  assert.throws(() => emaUpdate([['a', t]], [['b', o]], 0.9), /"a" in the target but "b" online/);
  assert.equal(byolTargetMomentum(0.99, 0, 100), 0.99);
  assert.ok(Math.abs(byolTargetMomentum(0.99, 100, 100) - 1) < 1e-12);
});
