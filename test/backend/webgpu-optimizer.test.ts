import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { FUSED_UPDATE_SIGNATURES, emaAssign, emaAssignList, updateInputs } from '../../lib/backend/fused-update-op';
import { countDispatches } from '../../lib/backend/webgpu/dispatches';
import { storageBindingLimit } from '../../lib/backend/webgpu/multi-output';
import { MIXMASK_ADAM_UPDATE, MIXMASK_EMA_UPDATE, MIXMASK_SGD_UPDATE, updateTuning } from '../../lib/backend/webgpu/optimizer-update';
import { emaUpdate, makeOptimizer, type OptimizerConfig } from '../../lib/optim';
import { Rng } from '../../lib/util/rng';
import { relError, useWebgpu } from '../helpers';

/**
 * The multi-tensor parameter updates of lib/backend/webgpu, driven through lib/optim's
 * optimisers and EMA, against the same code on the cpu backend (no fused kernels there: the
 * reference tfjs ops): seven tensors of different sizes (a conv kernel of 18 workgroups, sizes
 * off the workgroup of 64, a scalar) with a learning rate each, two steps, weights and slots
 * within 1e-5 relative, ceil(7 / tensors per dispatch) dispatches per step (derived from the
 * device's storage-binding limit and the kernels' operand counts), no tensor leaked; the 2-D
 * grid on the same tensors with the per-dimension cap lowered; and the operand checks.
 */

let skip: string | null = null;
before(async () => {
  skip = await useWebgpu();
});

const rng = new Rng(5);
const SHAPES = [[3, 3, 8, 16], [37], [], [5, 7], [64], [130], [2, 65]];
const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const init = SHAPES.map((s) => rng.fillNormal(new Float32Array(size(s)), 0, 0.5));
const grads = [0, 1].map(() => SHAPES.map((s) => rng.fillNormal(new Float32Array(size(s)), 0, 1)));
/** A learning rate per parameter (as parameter groups give them). */
const rateFactor = SHAPES.map((_, i) => 1 + 0.5 * i);

/** Tensors of `kernel` per dispatch on this device: storage bindings / bindings per tensor (contract's inputs + outputs). */
function perDispatch(kernel: keyof typeof FUSED_UPDATE_SIGNATURES): number {
  const s = FUSED_UPDATE_SIGNATURES[kernel];
  return Math.floor(storageBindingLimit(tf.backend()) / (s.operands.length + s.outputs.length));
}

/** A variable of `make()`'s value (tf.variable keeps its initial tensor alive: the tidy frees it). */
function variable(make: () => tf.Tensor, trainable: boolean, name: string): tf.Variable {
  return tf.tidy(() => tf.variable(make(), trainable, name));
}

let uid = 0;

/**
 * Two steps of lib/optim on `backend` over SHAPES: weights then slots, and (webgpu) the
 * dispatches of each step by program; tf.memory().numTensors checked flat.
 */
async function optimise(backend: 'cpu' | 'webgpu', cfg: OptimizerConfig): Promise<{ values: Float32Array[]; counts: Array<Map<string, number>> }> {
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  const vars = SHAPES.map((s, i) => variable(() => tf.tensor(init[i], s), true, `opt_${backend}_${uid++}`));
  const names = new Map(vars.map((v, i) => [`p${i}`, i]));
  const opt = makeOptimizer(cfg, vars.map((v, i) => [`p${i}`, v]));
  const lr = (name: string) => cfg.lr * rateFactor[names.get(name)!];
  const counts: Array<Map<string, number>> = [];
  for (const g of grads) {
    const gt = Object.fromEntries(vars.map((v, i) => [v.name, tf.tensor(g[i], SHAPES[i])]));
    if (backend === 'webgpu') {
      const { count } = await countDispatches(() => opt.step(gt, lr));
      counts.push(count.byProgram);
    } else {
      opt.step(gt, lr);
    }
    tf.dispose(Object.values(gt));
  }
  const values: Float32Array[] = [];
  for (const v of vars) values.push((await v.data()) as Float32Array);
  for (const [, t] of opt.namedState()) values.push((await t.data()) as Float32Array);
  opt.dispose();
  tf.dispose(vars);
  assert.equal(tf.memory().numTensors, before, `${backend}: tensors leaked`);
  return { values, counts };
}

function close(got: Float32Array[], want: Float32Array[]): void {
  assert.equal(got.length, want.length);
  got.forEach((g, i) => {
    const e = relError(g, want[i]);
    assert.ok(e < 1e-5, `tensor ${i} (weights of SHAPES, then slots): rel err ${e}`);
  });
  // The updates moved the weights (a kernel that copied its inputs would fail here).
  SHAPES.forEach((_, i) => assert.ok(relError(got[i], init[i]) > 1e-3, `weights ${i} did not move`));
}

async function compareOptimiser(cfg: OptimizerConfig, kernel: keyof typeof FUSED_UPDATE_SIGNATURES): Promise<void> {
  const want = await optimise('cpu', cfg);
  const got = await optimise('webgpu', cfg);
  close(got.values, want.values);
  const expected = Math.ceil(SHAPES.length / perDispatch(kernel));
  for (const c of got.counts) assert.deepEqual([...c], [[kernel, expected]], `dispatches per step (${SHAPES.length} tensors, ${perDispatch(kernel)} per dispatch)`);
}

for (const nesterov of [false, true]) {
  test(`${MIXMASK_SGD_UPDATE} (momentum, weight decay${nesterov ? ', Nesterov' : ''}, a rate per tensor) on webgpu matches lib/optim's Sgd on cpu, ceil(n / per dispatch) dispatches`, async (t) => {
    if (skip) return t.skip(skip);
    await compareOptimiser({ kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-3, nesterov }, MIXMASK_SGD_UPDATE);
  });
}

test(`${MIXMASK_ADAM_UPDATE} (weight decay, bias correction, a rate per tensor) on webgpu matches lib/optim's Adam on cpu, ceil(n / per dispatch) dispatches`, async (t) => {
  if (skip) return t.skip(skip);
  await compareOptimiser({ kind: 'adam', lr: 1e-2, weightDecay: 1e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8 }, MIXMASK_ADAM_UPDATE);
});

/** emaUpdate over SHAPES (targets = init, online = grads[0]) on `backend`; dispatches on webgpu. */
async function ema(backend: 'cpu' | 'webgpu', m: number): Promise<{ values: Float32Array[]; count: Map<string, number> | null }> {
  await tf.setBackend(backend);
  const before = tf.memory().numTensors;
  const target = SHAPES.map((s, i) => variable(() => tf.tensor(init[i], s), false, `ema_t_${uid++}`));
  const online = SHAPES.map((s, i) => variable(() => tf.tensor(grads[0][i], s), false, `ema_o_${uid++}`));
  const named = (vs: tf.Variable[]) => vs.map((v, i) => [`p${i}`, v] as [string, tf.Variable]);
  let count: Map<string, number> | null = null;
  if (backend === 'webgpu') count = (await countDispatches(() => emaUpdate(named(target), named(online), m))).count.byProgram;
  else emaUpdate(named(target), named(online), m);
  const values: Float32Array[] = [];
  for (const v of target) values.push((await v.data()) as Float32Array);
  tf.dispose([...target, ...online]);
  assert.equal(tf.memory().numTensors, before, `${backend}: tensors leaked`);
  return { values, count };
}

test(`${MIXMASK_EMA_UPDATE} through emaUpdate on webgpu matches it on cpu, ceil(n / per dispatch) dispatches`, async (t) => {
  if (skip) return t.skip(skip);
  const want = await ema('cpu', 0.99);
  const got = await ema('webgpu', 0.99);
  got.values.forEach((g, i) => assert.ok(relError(g, want.values[i]) < 1e-5, `tensor ${i}: rel err ${relError(g, want.values[i])}`));
  assert.deepEqual([...got.count!], [[MIXMASK_EMA_UPDATE, Math.ceil(SHAPES.length / perDispatch(MIXMASK_EMA_UPDATE))]]);
});

test('the 2-D grid (per-dimension cap lowered to 5 workgroups): same values and dispatches as the cpu reference', async (t) => {
  if (skip) return t.skip(skip);
  // At 16 storage bindings the first SGD dispatch has 18 + 1 + 1 workgroups (a 5 × 4 grid) and
  // the first EMA one 18 + 1 + 1 + 1 + 1 (5 × 5, three idle workgroups past the last tensor).
  const cfg: OptimizerConfig = { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 1e-3, nesterov: false };
  const want = await optimise('cpu', cfg);
  const wantEma = await ema('cpu', 0.9);
  updateTuning.maxWorkgroupsPerDimension = 5;
  try {
    const got = await optimise('webgpu', cfg);
    close(got.values, want.values);
    for (const c of got.counts) assert.equal(c.get(MIXMASK_SGD_UPDATE), Math.ceil(SHAPES.length / perDispatch(MIXMASK_SGD_UPDATE)));
    const gotEma = await ema('webgpu', 0.9);
    gotEma.values.forEach((g, i) => assert.ok(relError(g, wantEma.values[i]) < 1e-5, `EMA tensor ${i}: rel err ${relError(g, wantEma.values[i])}`));
  } finally {
    updateTuning.maxWorkgroupsPerDimension = null;
  }
});

test(`${MIXMASK_EMA_UPDATE} with a scale per tensor updates BatchNorm running statistics as lib/models does (mean, unbiased variance), in 1 dispatch`, async (t) => {
  if (skip) return t.skip(skip);
  const running = [Float32Array.from({ length: 16 }, (_, i) => 0.1 * i), Float32Array.from({ length: 16 }, (_, i) => 1 + 0.1 * i)];
  const batch = [Float32Array.from({ length: 16 }, (_, i) => 0.3 - 0.02 * i), Float32Array.from({ length: 16 }, (_, i) => 0.5 + 0.05 * i)];
  const n = 8 * 32 * 32;
  const m = 0.1; // BatchNorm's momentum: running ← (1 − m)·running + m·batch (variance unbiased)
  const scales = [1, n / (n - 1)];
  await tf.setBackend('cpu');
  const want = await Promise.all(running.map((r, j) => tf.tidy(() => tf.add(tf.mul(tf.tensor1d(r), 1 - m), tf.mul(tf.mul(tf.tensor1d(batch[j]), scales[j]), m))).data()));
  await tf.setBackend('webgpu');
  const before = tf.memory().numTensors;
  const targets = running.map((r) => variable(() => tf.tensor1d(r), false, `bn_${uid++}`));
  const online = batch.map((b) => tf.tensor1d(b));
  const { count } = await countDispatches(() => emaAssignList(targets.map((target, j) => ({ target, online: online[j], onlineScale: scales[j] })), 1 - m));
  assert.equal(count.total, 1);
  for (const [j, tv] of targets.entries()) {
    const got = (await tv.data()) as Float32Array;
    assert.ok(relError(got, want[j] as Float32Array) < 1e-6, `statistic ${j}: rel err ${relError(got, want[j] as Float32Array)}`);
  }
  // Without onlineScale every scale is 1 (the mean's update).
  const fresh = tf.tensor1d(running[0]);
  const [plain] = tf.engine().runKernel(MIXMASK_EMA_UPDATE, updateInputs([{ target: fresh, online: online[0] }]), { momentum: 1 - m }) as tf.Tensor[];
  assert.ok(relError((await plain.data()) as Float32Array, want[0] as Float32Array) < 1e-6);
  tf.dispose([fresh, plain]);
  // emaAssign (BatchNorm's call) is the list of one.
  const single = variable(() => tf.tensor1d(running[1]), false, `bn_${uid++}`);
  emaAssign(single, online[1], 1 - m, scales[1]);
  assert.ok(relError((await single.data()) as Float32Array, want[1] as Float32Array) < 1e-6);
  tf.dispose([...targets, ...online, single]);
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
});

test('the update kernels reject a wrong operand count, a missing operand, mismatched shapes or dtypes, a rate list of the wrong length and a step below 1, naming them', async (t) => {
  if (skip) return t.skip(skip);
  await tf.setBackend('webgpu');
  const before = tf.memory().numTensors;
  const w = tf.zeros([4]);
  const g = tf.zeros([5]);
  const i = tf.zeros([4], 'int32');
  const sgd = { lr: [1, 1], momentum: 0, weightDecay: 0 };
  const run = (kernel: string, inputs: Record<string, tf.Tensor>, attrs: object) => tf.engine().runKernel(kernel, inputs, attrs as tf.NamedAttrMap);
  assert.throws(() => run(MIXMASK_SGD_UPDATE, { w0: w, g0: w, v0: w, w1: w }, sgd), /4 inputs, expected 3 per tensor \(w0, g0, v0, w1, …\)/);
  assert.throws(() => run(MIXMASK_SGD_UPDATE, { w0: w, g0: w, v0: w, w1: w, g1: w, m1: w }, sgd), /no input v1 among/);
  assert.throws(() => run(MIXMASK_SGD_UPDATE, updateInputs([{ w, g: w, v: w }, { w, g, v: w }]), sgd), /g1 has shape \[5\], w1 has \[4\]/);
  assert.throws(() => run(MIXMASK_EMA_UPDATE, updateInputs([{ target: w, online: i }]), { momentum: 0.9 }), /online0 must be float32, got int32/);
  assert.throws(() => run(MIXMASK_SGD_UPDATE, updateInputs([{ w, g: w, v: w }]), sgd), /lr must be an array of 1 numbers \(one per tensor\), got \[1,1\]/);
  assert.throws(() => run(MIXMASK_SGD_UPDATE, updateInputs([{ w, g: w, v: w }]), { momentum: 0, weightDecay: 0 }), /lr must be an array of 1 numbers \(one per tensor\), got undefined/);
  assert.throws(() => run(MIXMASK_EMA_UPDATE, updateInputs([{ target: w, online: w }]), { momentum: 0.9, onlineScale: [NaN] }), /onlineScale\[0\] must be a finite number, got NaN/);
  assert.throws(() => run(MIXMASK_ADAM_UPDATE, updateInputs([{ w, g: w, m: w, v: w }]), { lr: [1], beta1: 0.9, beta2: 0.9, eps: 1e-8, weightDecay: 0, step: 0 }), /step must be an integer ≥ 1/);
  tf.dispose([w, g, i]);
  assert.equal(tf.memory().numTensors, before, 'tensors leaked');
});
