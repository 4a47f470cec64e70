import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { countDispatches } from '../../lib/backend/webgpu/dispatches';
import { MIXMASK_ADAM_UPDATE, MIXMASK_EMA_UPDATE, MIXMASK_SGD_UPDATE } from '../../lib/backend/webgpu/optimizer-update';
import { emaUpdate, makeOptimizer, type OptimizerConfig } from '../../lib/optim';
import { Rng } from '../../lib/util/rng';
import { relError, useWebgpu } from '../helpers';

/**
 * The fused parameter updates of lib/backend/webgpu against lib/optim's optimisers and EMA on the
 * cpu backend (the reference semantics): two steps with different gradients, weights and slots
 * within 1e-5 relative, one dispatch per updated tensor.
 */

let skip: string | null = null;
before(async () => {
  skip = await useWebgpu();
});

const rng = new Rng(5);
const SHAPE = [3, 3, 8, 16];
const SIZE = SHAPE.reduce((a, b) => a * b, 1);
const w0 = rng.fillNormal(new Float32Array(SIZE), 0, 0.5);
const grads = [rng.fillNormal(new Float32Array(SIZE), 0, 1), rng.fillNormal(new Float32Array(SIZE), 0, 1)];

/** Weights and slots after two steps of lib/optim on cpu. */
async function reference(cfg: OptimizerConfig): Promise<Float32Array[]> {
  await tf.setBackend('cpu');
  const w = tf.variable(tf.tensor(w0, SHAPE), true, 'w_ref');
  const opt = makeOptimizer(cfg, [['w', w]]);
  for (const g of grads) {
    const gt = tf.tensor(g, SHAPE);
    opt.step({ [w.name]: gt }, cfg.lr);
    gt.dispose();
  }
  const out = [(await w.data()) as Float32Array];
  for (const [, t] of opt.namedState()) out.push((await t.data()) as Float32Array);
  opt.dispose();
  w.dispose();
  return out;
}

/** Two steps of a fused kernel on webgpu; `slots` zero-initialised; returns weights, slots and dispatches per step. */
async function fused(kernel: string, slots: string[], attrs: (step: number) => object): Promise<{ values: Float32Array[]; dispatches: number }> {
  await tf.setBackend('webgpu');
  const before = tf.memory().numTensors;
  let w = tf.tensor(w0, SHAPE);
  let state = slots.map(() => tf.zeros(SHAPE));
  let dispatches = 0;
  for (const [i, g] of grads.entries()) {
    const gt = tf.tensor(g, SHAPE);
    const inputs = { w, g: gt, ...Object.fromEntries(slots.map((s, j) => [s, state[j]])) };
    const { result, count } = await countDispatches(() => tf.engine().runKernel(kernel, inputs as unknown as tf.NamedTensorMap, attrs(i + 1) as tf.NamedAttrMap) as tf.Tensor[]);
    dispatches = count.total;
    tf.dispose([w, gt, ...state]);
    [w, ...state] = result;
  }
  const values: Float32Array[] = [];
  for (const t of [w, ...state]) values.push((await t.data()) as Float32Array);
  tf.dispose([w, ...state]);
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
  return { values, dispatches };
}

function close(got: Float32Array[], want: Float32Array[], names: string[]): void {
  assert.equal(got.length, want.length);
  names.forEach((n, i) => {
    const e = relError(got[i], want[i]);
    assert.ok(e < 1e-5, `${n}: rel err ${e}`);
  });
}

for (const nesterov of [false, true]) {
  test(`${MIXMASK_SGD_UPDATE} (momentum, weight decay${nesterov ? ', Nesterov' : ''}) on webgpu matches lib/optim's Sgd on cpu, in 2 dispatches`, async (t) => {
    if (skip) return t.skip(skip);
    const cfg: OptimizerConfig = { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-3, nesterov };
    const want = await reference(cfg);
    const got = await fused(MIXMASK_SGD_UPDATE, ['v'], () => ({ lr: cfg.lr, momentum: 0.9, weightDecay: 1e-3, nesterov }));
    close(got.values, want, ['weights', 'velocity']);
    assert.equal(got.dispatches, 2);
  });
}

test(`${MIXMASK_ADAM_UPDATE} (weight decay, bias correction) on webgpu matches lib/optim's Adam on cpu, in 3 dispatches`, async (t) => {
  if (skip) return t.skip(skip);
  const cfg: OptimizerConfig = { kind: 'adam', lr: 1e-3, weightDecay: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8 };
  const want = await reference(cfg);
  const got = await fused(MIXMASK_ADAM_UPDATE, ['m', 'v'], (step) => ({ lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weightDecay: 1e-4, step }));
  close(got.values, want, ['weights', 'm', 'v']);
  assert.equal(got.dispatches, 3);
});

test(`${MIXMASK_EMA_UPDATE} on webgpu matches lib/optim's emaUpdate on cpu, in 1 dispatch`, async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('cpu');
  const target = tf.variable(tf.tensor(w0, SHAPE), false, 'ema_target');
  const online = tf.variable(tf.tensor(grads[0], SHAPE), false, 'ema_online');
  emaUpdate([['p', target]], [['p', online]], 0.99);
  const want = (await target.data()) as Float32Array;
  tf.dispose([target, online]);
  await tf.setBackend('webgpu');
  const tt = tf.tensor(w0, SHAPE);
  const ot = tf.tensor(grads[0], SHAPE);
  const { result, count } = await countDispatches(() => tf.engine().runKernel(MIXMASK_EMA_UPDATE, { target: tt, online: ot }, { momentum: 0.99 }) as tf.Tensor[]);
  const got = (await result[0].data()) as Float32Array;
  tf.dispose([tt, ot, ...result]);
  assert.ok(relError(got, want) < 1e-5, `rel err ${relError(got, want)}`);
  assert.equal(count.total, 1);
});

test(`${MIXMASK_EMA_UPDATE} with onlineScale updates a BatchNorm running variance as lib/models does (unbiased batch variance)`, async (t) => {
  if (skip) return t.skip(skip);
  const running = Float32Array.from({ length: 16 }, (_, i) => 1 + 0.1 * i);
  const batchVar = Float32Array.from({ length: 16 }, (_, i) => 0.5 + 0.05 * i);
  const n = 8 * 32 * 32;
  const m = 0.1; // BatchNorm's momentum: running ← (1 − m)·running + m·unbiased
  await tf.setBackend('cpu');
  const want = (await tf.tidy(() => tf.add(tf.mul(tf.tensor1d(running), 1 - m), tf.mul(tf.mul(tf.tensor1d(batchVar), n / (n - 1)), m))).data()) as Float32Array;
  await tf.setBackend('webgpu');
  const r = tf.tensor1d(running);
  const b = tf.tensor1d(batchVar);
  const [out] = tf.engine().runKernel(MIXMASK_EMA_UPDATE, { target: r, online: b }, { momentum: 1 - m, onlineScale: n / (n - 1) }) as tf.Tensor[];
  const got = (await out.data()) as Float32Array;
  tf.dispose([r, b, out]);
  assert.ok(relError(got, want) < 1e-6, `rel err ${relError(got, want)}`);
});

test('the fused updates reject operands of different shapes and a step below 1, naming them', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const w = tf.zeros([4]);
  const g = tf.zeros([5]);
  const m = tf.zeros([4]);
  assert.throws(() => tf.engine().runKernel(MIXMASK_SGD_UPDATE, { w, g, v: m }, { lr: 1, momentum: 0, weightDecay: 0 }), /g has shape \[5\], w has \[4\]/);
  assert.throws(() => tf.engine().runKernel(MIXMASK_ADAM_UPDATE, { w, g: m, m, v: m }, { lr: 1, beta1: 0.9, beta2: 0.9, eps: 1e-8, weightDecay: 0, step: 0 }), /step must be an integer ≥ 1/);
  tf.dispose([w, g, m]);
});
