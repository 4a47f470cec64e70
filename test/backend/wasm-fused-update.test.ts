import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { FUSED_ADAM_UPDATE, FUSED_EMA_UPDATE, FUSED_SGD_UPDATE, emaAssign, hasFusedUpdate, updateInputs } from '../../lib/backend/fused-update-op';
import * as fs from 'node:fs';
import { setNativeUpdateLoops, setWasmFusedUpdates, setWasmUpdateLoops } from '../../lib/backend/wasm/fused-update';
import { defaultAddonPath, loadAddon } from '../../lib/backend/onednn';
import { simdUpdateLoops } from '../../lib/backend/wasm/update-simd';
import { emaUpdate, makeOptimizer, type OptimizerConfig } from '../../lib/optim';
import { Rng } from '../../lib/util/rng';
import { relError, useBackend } from '../helpers';

/**
 * The multi-tensor parameter updates of lib/backend/wasm, driven through lib/optim's optimisers,
 * emaUpdate and emaAssign, against the same code on the `cpu` backend (which has no fused
 * kernels, so runs the tfjs ops): several tensors of different sizes with a learning rate each,
 * four steps with different gradients, weights and slots within 1e-5 relative, one kernel call
 * per step for all tensors, and tf.memory().numTensors flat from step to step; with the
 * WebAssembly SIMD loops, the JavaScript ones and (SGD, EMA) the native ones wasm+onednn installs
 * (counted, so a fall-through to the SIMD loop would fail). Sizes 37, 35, 1 and 130 leave a tail
 * after the groups of four; [] is a scalar.
 */
const nativeBuilt = fs.existsSync(defaultAddonPath());
/** CI builds the addon, so there a missing one fails instead of skipping. */
const nativeSkip = !nativeBuilt && !process.env.CI ? 'native/onednn addon not built (needs libdnnl-dev; node scripts/build-native.mjs)' : false;
const nativeCalls = { sgd: 0, ema: 0 };

type Loops = 'native' | 'simd' | 'js';
/** Native: the addon's loops (counted) with 'fastest'; the others without native loops. */
function useLoops(loops: Loops): void {
  if (loops === 'native') {
    const addon = loadAddon();
    setNativeUpdateLoops({
      sgd: (...a) => (nativeCalls.sgd++, addon.sgd(...a)),
      ema: (...a) => (nativeCalls.ema++, addon.ema(...a)),
    });
    setWasmUpdateLoops('fastest');
  } else {
    setNativeUpdateLoops(null);
    setWasmUpdateLoops(loops);
  }
}

const rng = new Rng(11);
const SHAPES = [[3, 3, 8, 16], [37], [], [5, 7], [130]];
/** A learning rate per parameter (as parameter groups give them). */
const rateFactor = SHAPES.map((_, i) => 1 + 0.5 * i);
const STEPS = 4;
const init = SHAPES.map((s) => rng.fillNormal(new Float32Array(s.reduce((a, b) => a * b, 1)), 0, 0.5));
const grads = Array.from({ length: STEPS }, () => SHAPES.map((s) => rng.fillNormal(new Float32Array(s.reduce((a, b) => a * b, 1)), 0, 1)));

/** A variable of `make()`'s value (tf.variable keeps its initial tensor alive: the tidy frees it). */
function variable(make: () => tf.Tensor, trainable: boolean, name: string): tf.Variable {
  return tf.tidy(() => tf.variable(make(), trainable, name));
}

before(async () => {
  await useBackend('wasm');
});

/** Calls of `kernel` while `fn` runs (tf.profile lists every kernel the engine runs). */
async function kernelCalls(kernel: string, fn: () => void): Promise<number> {
  return (await tf.profile(fn)).kernels.filter((k) => k.name === kernel).length;
}

/**
 * Weights and optimiser slots after STEPS steps of lib/optim on `backend`, numTensors after each
 * step and the calls of `kernel` in each.
 */
async function run(backend: 'cpu' | 'wasm', cfg: OptimizerConfig, kernel = ''): Promise<{ values: Float32Array[]; counts: number[]; calls: number[] }> {
  await tf.setBackend(backend);
  const vars = SHAPES.map((s, i) => variable(() => tf.tensor(init[i], s), true, `p${i}_${backend}_${Math.random()}`));
  const opt = makeOptimizer(cfg, vars.map((v, i) => [`p${i}`, v]));
  const lr = (name: string) => cfg.lr * rateFactor[Number(name.slice(1))];
  const counts: number[] = [];
  const calls: number[] = [];
  for (const g of grads) {
    const gt = Object.fromEntries(vars.map((v, i) => [v.name, tf.tensor(g[i], SHAPES[i])]));
    calls.push(await kernelCalls(kernel, () => opt.step(gt, lr)));
    tf.dispose(Object.values(gt));
    counts.push(tf.memory().numTensors);
  }
  const values: Float32Array[] = [];
  for (const v of vars) values.push((await v.data()) as Float32Array);
  for (const [, t] of opt.namedState()) values.push((await t.data()) as Float32Array);
  opt.dispose();
  tf.dispose(vars);
  return { values, counts, calls };
}

const LOOPS: Loops[] = nativeSkip ? ['simd', 'js'] : ['native', 'simd', 'js'];

async function compare(cfg: OptimizerConfig, kernel: string, loops: Loops): Promise<void> {
  await tf.setBackend('wasm');
  useLoops(loops);
  const native = nativeCalls.sgd;
  assert.ok(hasFusedUpdate(kernel), `${kernel} is not registered for wasm`);
  const want = await run('cpu', cfg);
  const got = await run('wasm', cfg, kernel);
  assert.equal(got.values.length, want.values.length);
  got.values.forEach((g, i) => {
    const e = relError(g, want.values[i]);
    assert.ok(e < 1e-5, `tensor ${i} (weights, then slots): rel err ${e}`);
  });
  // The updates moved the weights (a kernel that copied its inputs would fail here).
  SHAPES.forEach((_, i) => assert.ok(relError(got.values[i], init[i]) > 1e-3, `weights ${i} did not move`));
  assert.deepEqual(got.counts, Array(STEPS).fill(got.counts[0]), `numTensors per step ${got.counts}`);
  assert.deepEqual(got.calls, Array(STEPS).fill(1), `${kernel} calls per step`);
  if (loops === 'native' && kernel === FUSED_SGD_UPDATE) assert.equal(nativeCalls.sgd - native, STEPS * SHAPES.length, 'the native loop ran for every tensor');
  useLoops('simd');
}

test('the SIMD update loops instantiate on the wasm backend\'s memory', async () => {
  await tf.setBackend('wasm');
  const memory = (tf.backend() as unknown as { wasm: { wasmMemory?: WebAssembly.Memory } }).wasm.wasmMemory;
  assert.ok(memory, 'the wasm backend exposes no wasmMemory');
  assert.ok(simdUpdateLoops(memory));
});

for (const loops of LOOPS) {
  for (const weightDecay of [0, 5e-4]) {
    for (const nesterov of [false, true]) {
      test(`${FUSED_SGD_UPDATE} on wasm, ${loops} loops (momentum${weightDecay ? ', weight decay' : ''}${nesterov ? ', Nesterov' : ''}) matches lib/optim's Sgd on cpu over ${STEPS} steps`, async () => {
        await compare({ kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay, nesterov }, FUSED_SGD_UPDATE, loops);
      });
    }
  }
  for (const weightDecay of [0, 1e-4]) {
    test(`${FUSED_ADAM_UPDATE} on wasm, ${loops} loops (bias correction${weightDecay ? ', weight decay' : ''}) matches lib/optim's Adam on cpu over ${STEPS} steps`, async () => {
      await compare({ kind: 'adam', lr: 1e-2, weightDecay, beta1: 0.9, beta2: 0.999, eps: 1e-8 }, FUSED_ADAM_UPDATE, loops);
    });
  }
}

test(`${FUSED_EMA_UPDATE} on wasm matches emaAssign on cpu, with and without onlineScale (BatchNorm's unbiased running variance)`, async () => {
  const online = grads.map((g) => g[1]);
  const emaRun = async (backend: 'cpu' | 'wasm', m: number, scale: number): Promise<{ value: Float32Array; counts: number[] }> => {
    await tf.setBackend(backend);
    const target = variable(() => tf.tensor(init[1]), false, `ema_${backend}_${Math.random()}`);
    const counts: number[] = [];
    for (const o of online) {
      const ot = tf.tensor(o);
      emaAssign(target, ot, m, scale);
      ot.dispose();
      counts.push(tf.memory().numTensors);
    }
    const value = (await target.data()) as Float32Array;
    target.dispose();
    return { value, counts };
  };
  await tf.setBackend('wasm');
  assert.ok(hasFusedUpdate(FUSED_EMA_UPDATE));
  for (const loops of LOOPS) {
    useLoops(loops);
    for (const [m, scale] of [[0.99, 1], [0.9, 2048 / 2047]]) {
      const want = await emaRun('cpu', m, scale);
      const got = await emaRun('wasm', m, scale);
      const e = relError(got.value, want.value);
      assert.ok(e < 1e-5, `${loops} loops, m ${m}, onlineScale ${scale}: rel err ${e}`);
      assert.deepEqual(got.counts, Array(STEPS).fill(got.counts[0]));
    }
  }
  useLoops('simd');
});

test(`${FUSED_EMA_UPDATE} on wasm through emaUpdate: every tensor in one kernel call, as emaUpdate on cpu`, async () => {
  const emaRun = async (backend: 'cpu' | 'wasm'): Promise<{ values: Float32Array[]; calls: number[] }> => {
    await tf.setBackend(backend);
    const before = tf.memory().numTensors;
    const target = SHAPES.map((s, i) => variable(() => tf.tensor(init[i], s), false, `emat_${backend}_${Math.random()}`));
    const calls: number[] = [];
    for (const g of grads) {
      const online = SHAPES.map((s, i) => variable(() => tf.tensor(g[i], s), false, `emao_${backend}_${Math.random()}`));
      const named = (vs: tf.Variable[]) => vs.map((v, i) => [`p${i}`, v] as [string, tf.Variable]);
      calls.push(await kernelCalls(FUSED_EMA_UPDATE, () => emaUpdate(named(target), named(online), 0.99)));
      tf.dispose(online);
    }
    const values: Float32Array[] = [];
    for (const v of target) values.push((await v.data()) as Float32Array);
    tf.dispose(target);
    assert.equal(tf.memory().numTensors, before, `${backend}: tensors leaked`);
    return { values, calls };
  };
  for (const loops of LOOPS) {
    useLoops(loops);
    const native = nativeCalls.ema;
    const want = await emaRun('cpu');
    const got = await emaRun('wasm');
    if (loops === 'native') assert.equal(nativeCalls.ema - native, STEPS * SHAPES.length, 'the native loop ran for every tensor');
    got.values.forEach((v, i) => assert.ok(relError(v, want.values[i]) < 1e-5, `${loops} loops, tensor ${i}: rel err ${relError(v, want.values[i])}`));
    assert.deepEqual(got.calls, Array(STEPS).fill(1));
  }
  useLoops('simd');
});

test('setWasmFusedUpdates(false) leaves lib/optim on its tfjs ops, with the same result', async () => {
  const cfg: OptimizerConfig = { kind: 'sgd', lr: 0.05, momentum: 0.9, weightDecay: 5e-4, nesterov: false };
  const fused = await run('wasm', cfg, FUSED_SGD_UPDATE);
  setWasmFusedUpdates(false);
  try {
    assert.equal(hasFusedUpdate(FUSED_SGD_UPDATE), false);
    const ops = await run('wasm', cfg, FUSED_SGD_UPDATE);
    fused.values.forEach((v, i) => assert.ok(relError(v, ops.values[i]) < 1e-5));
    assert.deepEqual([fused.calls, ops.calls], [Array(STEPS).fill(1), Array(STEPS).fill(0)]);
  } finally {
    setWasmFusedUpdates(true);
  }
  assert.ok(hasFusedUpdate(FUSED_SGD_UPDATE));
});

test('the wasm fused updates reject a wrong operand count, mismatched shapes or dtypes, a rate list of the wrong length and a step below 1, naming them', async () => {
  await tf.setBackend('wasm');
  const w = tf.zeros([4]);
  const g = tf.zeros([5]);
  const m = tf.zeros([4]);
  const i = tf.zeros([4], 'int32');
  const run = (kernel: string, inputs: Record<string, tf.Tensor>, attrs: object) => tf.engine().runKernel(kernel, inputs, attrs as tf.NamedAttrMap);
  assert.throws(() => run(FUSED_SGD_UPDATE, { w0: w, g0: m }, { lr: [1], momentum: 0, weightDecay: 0 }), /2 inputs, expected 3 per tensor/);
  assert.throws(() => run(FUSED_SGD_UPDATE, updateInputs([{ w, g: m, v: m }, { w, g, v: m }]), { lr: [1, 1], momentum: 0, weightDecay: 0 }), /g1 has shape \[5\], w1 has \[4\]/);
  assert.throws(() => run(FUSED_SGD_UPDATE, updateInputs([{ w, g: m, v: m }]), { lr: 1, momentum: 0, weightDecay: 0 }), /lr must be an array of 1 numbers/);
  assert.throws(() => run(FUSED_EMA_UPDATE, updateInputs([{ target: m, online: i }]), { momentum: 0.9 }), /online0 must be float32, got int32/);
  assert.throws(() => run(FUSED_ADAM_UPDATE, updateInputs([{ w, g: m, m, v: m }]), { lr: [1], beta1: 0.9, beta2: 0.9, eps: 1e-8, weightDecay: 0, step: 0 }), /step must be an integer ≥ 1/);
  tf.dispose([w, g, m, i]);
});
