import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  BATCH_NORM_RUNNING_STATS_KERNEL,
  batchNormRunningStats,
  batchNormTrain,
  batchNormTrainComposite,
  FUSED_BATCH_NORM_KERNEL,
  hasFusedBatchNorm,
  hasGroupedBatchNorm,
  hasResidualBatchNorm,
  hasRunningStatsKernel,
} from '../../lib/backend/batchnorm-op';
import { countDispatches } from '../../lib/backend/webgpu/dispatches';
import { BatchNorm } from '../../lib/models';
import { Rng } from '../../lib/util/rng';
import { relError } from '../helpers';

/**
 * Shared by the grouped-BatchNorm tests of each backend (webgpu-batchnorm, wasm-kernels): a
 * backend's batchNormTrain with `groups` against the composite on cpu run by hand on each group
 * (split, normalise, concatenate: nothing of the code under test), forward and gradient; the
 * grouped running-statistics update against the same number of consecutive calls. With a
 * residual (y = act(BN(x) + residual)): the reference adds it and applies the ReLU by hand (tfjs
 * ops on cpu), and the gradients include dResidual.
 */

/** Rank 4 and rank 2, batch 8 and 12, odd channel counts; every case runs with groups 1, 2 and 4. */
export const GROUPED_SHAPES: number[][] = [
  [8, 3, 3, 5],
  [12, 2, 3, 7],
  [8, 13],
  [12, 9],
];
export const GROUPS = [1, 2, 4];

export const OUTPUTS = ['y', 'mean', 'variance', 'dx', 'dScale', 'dOffset'];
/** With a residual: the gradient of the residual too. */
export const RESIDUAL_OUTPUTS = [...OUTPUTS, 'dResidual'];

export interface GroupedInputs {
  shape: number[];
  xs: Float32Array;
  gs: Float32Array;
  bs: Float32Array;
  dys: Float32Array;
  /** The residual (x's shape), of the size of y's values. */
  rs: Float32Array;
}

/** Inputs whose groups differ in mean and spread (so that one set of statistics for all would not pass). */
export function groupedInputs(shape: number[], groups: number, seed: number): GroupedInputs {
  const rng = new Rng(seed);
  const C = shape[shape.length - 1];
  const size = shape.reduce((a, b) => a * b, 1);
  const perGroup = size / groups;
  const xs = rng.fillNormal(new Float32Array(size), 0, 1).map((v, i) => {
    const g = Math.floor(i / perGroup);
    return (1 + g) * v + 3 * g - 1 + (i % C) * 0.25;
  });
  const gs = rng.fillNormal(new Float32Array(C), 1, 0.5);
  const bs = rng.fillNormal(new Float32Array(C), 0, 0.5);
  const dys = rng.fillNormal(new Float32Array(size), 0, 1);
  return { shape, xs, gs, bs, dys, rs: rng.fillNormal(new Float32Array(size), 0, 1) };
}

export interface GroupedRun {
  values: Float32Array[];
  /** Shape of the mean output. */
  statsShape: number[];
  /** Dispatches of the forward kernel call and of the whole gradient (webgpu; else 0). */
  dispatches: { forward: number; gradient: number };
}

/**
 * y, mean, variance and the gradients of Σ y·dy for x, scale, offset (and the residual, with
 * one): batchNormTrain with `groups` on the active backend, or (`reference`) the cpu composite
 * on each group by hand, then + residual and ReLU by hand.
 */
export async function runGrouped(inputs: GroupedInputs, groups: number, relu: boolean, reference: boolean, withResidual = false): Promise<GroupedRun> {
  const { shape } = inputs;
  const x = tf.tensor(inputs.xs, shape);
  const scale = tf.tensor1d(inputs.gs);
  const offset = tf.tensor1d(inputs.bs);
  const dy = tf.tensor(inputs.dys, shape);
  const residual = tf.tensor(inputs.rs, shape);
  const bn = (a: tf.Tensor, s: tf.Tensor1D, o: tf.Tensor1D, r: tf.Tensor | undefined) => {
    if (!reference) return batchNormTrain(a, s, o, 1e-5, relu, { groups, residual: r });
    // The reference: BN without ReLU on each group, then (+ r) and ReLU as tfjs ops.
    const act = r ? false : relu;
    const parts = groups === 1 ? [batchNormTrainComposite(a, s, o, 1e-5, act)] : tf.split(a, groups, 0).map((p) => batchNormTrainComposite(p, s, o, 1e-5, act));
    const joined = groups === 1 ? parts[0] : { y: tf.concat(parts.map((p) => p.y), 0), mean: tf.stack(parts.map((p) => p.mean)), variance: tf.stack(parts.map((p) => p.variance)) };
    if (!r) return joined;
    const sum = tf.add(joined.y, r);
    return { ...joined, y: relu ? tf.relu(sum) : sum };
  };
  const forward = () =>
    tf.tidy(() => {
      const r = bn(x, scale, offset, withResidual ? residual : undefined);
      return [r.y, r.mean, r.variance];
    });
  const gradient = () =>
    tf.tidy(() =>
      withResidual
        ? tf.grads((a: tf.Tensor, s: tf.Tensor, o: tf.Tensor, r: tf.Tensor) => tf.sum(tf.mul(bn(a, s as tf.Tensor1D, o as tf.Tensor1D, r).y, dy)))([x, scale, offset, residual])
        : tf.grads((a: tf.Tensor, s: tf.Tensor, o: tf.Tensor) => tf.sum(tf.mul(bn(a, s as tf.Tensor1D, o as tf.Tensor1D, undefined).y, dy)))([x, scale, offset]),
    );
  const dispatches = { forward: 0, gradient: 0 };
  let out: tf.Tensor[];
  let grads: tf.Tensor[];
  if (tf.getBackend() === 'webgpu') {
    const f = await countDispatches(forward);
    const g = await countDispatches(gradient);
    [out, grads] = [f.result, g.result];
    dispatches.forward = f.count.total;
    dispatches.gradient = g.count.total;
  } else {
    [out, grads] = [forward(), gradient()];
  }
  const statsShape = out[1].shape;
  const values: Float32Array[] = [];
  for (const t of [...out, ...grads]) values.push((await t.data()) as Float32Array);
  tf.dispose([x, scale, offset, dy, residual, ...out, ...grads]);
  return { values, statsShape, dispatches };
}

/**
 * max |scale·dy|/√(var + ε) over the elements (each with its group's variance): the size of the
 * terms dx is the difference of. With two rows per group dx is 0 in exact arithmetic (x̂ = ±1,
 * dx = k·(g₁ − (g₁ + g₂)/2 − (g₁ − g₂)/2)), so its own largest value is rounding noise and
 * measures nothing; dx's error is taken relative to this instead.
 */
function dxScale(inputs: GroupedInputs, groups: number, variance: Float32Array): number {
  const C = inputs.gs.length;
  const perGroup = inputs.dys.length / groups;
  let m = 0;
  inputs.dys.forEach((d, i) => {
    const c = i % C;
    const v = variance[Math.floor(i / perGroup) * C + c];
    m = Math.max(m, Math.abs((inputs.gs[c] * d) / Math.sqrt(v + 1e-5)));
  });
  return m;
}

/** Largest |a − b| over max(max |b|, floor). */
function relErrorFloor(a: Float32Array, b: Float32Array, floor: number): number {
  let num = 0;
  let den = floor;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/**
 * `backend` (whose fused kernel must implement groups, and the residual when `residual`)
 * against the per-group cpu composite: every output within 1e-5 (dx relative to the size of its
 * terms, see dxScale), statistics [C] for one group and [groups, C] otherwise, no tensors left
 * behind. Returns the backend's run.
 */
export async function compareGroupedWithCpu(backend: string, shape: number[], groups: number, relu: boolean, seed: number, residual = false): Promise<GroupedRun> {
  const inputs = groupedInputs(shape, groups, seed);
  const C = shape[shape.length - 1];
  const at = `[${shape}] groups ${groups}${residual ? ' + residual' : ''}${relu ? ' + ReLU' : ''} on ${backend}`;
  await tf.setBackend(backend);
  assert.ok(hasFusedBatchNorm() && hasGroupedBatchNorm(), `${backend} declares a grouped fused BatchNorm`);
  if (residual) assert.ok(hasResidualBatchNorm(), `${backend} declares a fused BatchNorm with a residual`);
  const before = tf.memory().numTensors;
  const got = await runGrouped(inputs, groups, relu, false, residual);
  assert.equal(tf.memory().numTensors, before, `${at}: tensors leaked`);
  await tf.setBackend('cpu');
  assert.ok(!hasFusedBatchNorm(), 'the cpu reference is the composite');
  const want = await runGrouped(inputs, groups, relu, true, residual);
  await tf.setBackend(backend);
  assert.deepEqual(got.statsShape, groups === 1 ? [C] : [groups, C]);
  const names = residual ? RESIDUAL_OUTPUTS : OUTPUTS;
  assert.equal(got.values.length, names.length);
  const floor = dxScale(inputs, groups, want.values[2]);
  names.forEach((name, i) => {
    const e = name === 'dx' ? relErrorFloor(got.values[i], want.values[i], floor) : relError(got.values[i], want.values[i]);
    assert.ok(e < 1e-5, `${at}: ${name}: rel err ${e}`);
  });
  return got;
}

/**
 * On `backend` (which declares the residual): its fused kernel replaced by a wrapper that has
 * not declared it (a kernel registered in its place that knows no residual) and refuses one, the
 * residual takes the fallback (the kernel without ReLU, then Add and Relu as tfjs ops) with the
 * same result as the declared kernel (within 1e-6: the add is rounded once either way, only
 * where it happens differs), for every shape, groups 1 and 4, with and without ReLU; the
 * declared kernel restored afterwards. Returns the wrapper's calls.
 */
export async function compareResidualFallback(backend: string, shapes: number[][], seed: number): Promise<Array<{ residual: boolean; relu: boolean }>> {
  await tf.setBackend(backend);
  const declaredKernel = tf.getKernel(FUSED_BATCH_NORM_KERNEL, backend)!;
  assert.ok(hasResidualBatchNorm(), `${backend} declares the residual`);
  const calls: Array<{ residual: boolean; relu: boolean }> = [];
  const stranger = ((args: { inputs: { residual?: tf.TensorInfo }; attrs: { relu: boolean; residual?: boolean } }) => {
    calls.push({ residual: args.inputs.residual !== undefined || !!args.attrs.residual, relu: args.attrs.relu });
    if (args.inputs.residual || args.attrs.residual) throw new Error('the fallback handed a residual to a kernel that has not declared it');
    return declaredKernel.kernelFunc(args as never);
  }) as unknown as tf.KernelFunc;
  const cases: Array<{ inputs: GroupedInputs; groups: number; relu: boolean; want: GroupedRun }> = [];
  for (const [k, shape] of shapes.entries()) {
    for (const groups of [1, 4]) {
      const inputs = groupedInputs(shape, groups, seed + k);
      for (const relu of [true, false]) cases.push({ inputs, groups, relu, want: await runGrouped(inputs, groups, relu, false, true) });
    }
  }
  tf.unregisterKernel(FUSED_BATCH_NORM_KERNEL, backend);
  tf.registerKernel({ ...declaredKernel, kernelFunc: stranger });
  try {
    assert.ok(hasFusedBatchNorm() && !hasResidualBatchNorm(), 'a replaced kernel is no longer the declared one');
    for (const { inputs, groups, relu, want } of cases) {
      const { shape } = inputs;
      const before = tf.memory().numTensors;
      const got = await runGrouped(inputs, groups, relu, false, true);
      assert.equal(tf.memory().numTensors, before, `[${shape}] groups ${groups}: tensors leaked in the fallback`);
      RESIDUAL_OUTPUTS.forEach((name, i) => {
        const e = relError(got.values[i], want.values[i]);
        assert.ok(e < 1e-6, `[${shape}] groups ${groups}${relu ? ' + ReLU' : ''}: ${name}: fallback vs fused residual rel err ${e}`);
      });
    }
  } finally {
    tf.unregisterKernel(FUSED_BATCH_NORM_KERNEL, backend);
    tf.registerKernel(declaredKernel);
  }
  assert.ok(hasResidualBatchNorm(), 'the declared kernel back: the residual fused again');
  return calls;
}

/** Random running and batch statistics: [G, C] batch statistics, and the same as G tensors [C]. */
function statsInputs(G: number, C: number, seed: number) {
  const rng = new Rng(seed);
  return {
    runningMean: rng.fillNormal(new Float32Array(C), 0, 1),
    runningVar: rng.fillUniform(new Float32Array(C), 0.5, 2),
    mean: rng.fillNormal(new Float32Array(G * C), 1, 2),
    variance: rng.fillUniform(new Float32Array(G * C), 0.1, 4),
  };
}

export interface GroupedStatsRun {
  /** [running mean, running variance] after one call with [G, C] statistics. */
  grouped: Float32Array[];
  /** The same after G consecutive calls with [C] statistics. */
  consecutive: Float32Array[];
  tracked: { grouped: number; consecutive: number };
  /** Dispatches of the grouped call (webgpu; else 0). */
  dispatches: number;
}

/** The running-statistics update of G groups at once and as G consecutive calls, on the active backend. */
export async function runGroupedStats(G: number, C: number, momentum: number, count: number, seed: number, startTracked = 3): Promise<GroupedStatsRun> {
  const s = statsInputs(G, C, seed);
  const runningMean = tf.tensor1d(s.runningMean);
  const runningVar = tf.tensor1d(s.runningVar);
  const tracked = tf.scalar(startTracked, 'int32');
  const mean = tf.tensor2d(s.mean, [G, C]);
  const variance = tf.tensor2d(s.variance, [G, C]);
  const attrs = { momentum, count };
  const once = () => batchNormRunningStats({ runningMean, runningVar, numBatchesTracked: tracked, mean, variance }, attrs);
  let grouped: tf.Tensor[];
  let dispatches = 0;
  if (tf.getBackend() === 'webgpu') {
    const r = await countDispatches(once);
    grouped = r.result;
    dispatches = r.count.total;
  } else {
    grouped = once();
  }
  const means = tf.unstack(mean);
  const variances = tf.unstack(variance);
  let state: tf.Tensor[] = [runningMean, runningVar, tracked];
  for (let g = 0; g < G; g++) {
    const next = batchNormRunningStats({ runningMean: state[0], runningVar: state[1], numBatchesTracked: state[2], mean: means[g], variance: variances[g] }, attrs);
    if (g > 0) tf.dispose(state);
    state = next;
  }
  const run: GroupedStatsRun = {
    grouped: [(await grouped[0].data()) as Float32Array, (await grouped[1].data()) as Float32Array],
    consecutive: [(await state[0].data()) as Float32Array, (await state[1].data()) as Float32Array],
    tracked: { grouped: (await grouped[2].data())[0], consecutive: (await state[2].data())[0] },
    dispatches,
  };
  assert.equal(grouped[2].dtype, 'int32');
  tf.dispose([...grouped, ...state, ...means, ...variances, runningMean, runningVar, tracked, mean, variance]);
  return run;
}

/**
 * On `backend` (with the kernel): one call with [G, C] statistics equals G consecutive calls bit
 * for bit, num_batches_tracked + G, and agrees with cpu's tfjs-op fallback within 1e-5; no
 * tensors left behind. Returns the backend's runs.
 */
export async function compareGroupedStats(backend: string, seed: number): Promise<GroupedStatsRun[]> {
  const runs: GroupedStatsRun[] = [];
  for (const [G, C, momentum, count] of [
    [2, 5, 0.1, 9],
    [4, 70, 0.3, 1],
    [3, 13, 0.1, 2],
    [1, 6, 0.2, 4],
  ]) {
    const at = `G = ${G}, C = ${C}, count ${count}`;
    await tf.setBackend(backend);
    assert.ok(hasRunningStatsKernel(), `${BATCH_NORM_RUNNING_STATS_KERNEL} is registered for ${backend}`);
    const before = tf.memory().numTensors;
    const got = await runGroupedStats(G, C, momentum, count, seed + G);
    assert.equal(tf.memory().numTensors, before, `${at}: tensors leaked on ${backend}`);
    await tf.setBackend('cpu');
    assert.ok(!hasRunningStatsKernel(), 'cpu takes the tfjs-op fallback');
    const want = await runGroupedStats(G, C, momentum, count, seed + G);
    await tf.setBackend(backend);
    for (const [i, name] of ['running mean', 'running variance'].entries()) {
      assert.deepEqual(Array.from(got.grouped[i]), Array.from(got.consecutive[i]), `${at}: ${name} on ${backend}: one grouped call vs ${G} consecutive calls`);
      assert.deepEqual(Array.from(want.grouped[i]), Array.from(want.consecutive[i]), `${at}: ${name} on cpu: one grouped call vs ${G} consecutive calls`);
      const e = relError(got.grouped[i], want.grouped[i]);
      assert.ok(e < 1e-5, `${at}: ${name}: ${backend} vs cpu rel err ${e}`);
    }
    for (const r of [got, want]) assert.deepEqual(r.tracked, { grouped: 3 + G, consecutive: 3 + G }, `${at}: num_batches_tracked`);
    runs.push(got);
  }
  return runs;
}

/**
 * A BatchNorm layer (+ ReLU) called in training with `groups` on `backend` against G layers'
 * worth of calls on the G parts on cpu (one layer, the parts in order): the same output, running
 * statistics and num_batches_tracked.
 */
export async function compareGroupedLayerWithCpu(backend: string, shape: number[], groups: number, seed: number): Promise<void> {
  const C = shape[shape.length - 1];
  const inputs = groupedInputs(shape, groups, seed);
  const run = async (name: string, grouped: boolean) => {
    await tf.setBackend(name);
    const bn = new BatchNorm(C, { momentum: 0.2 });
    const x = tf.tensor(inputs.xs, shape);
    const before = tf.memory().numTensors;
    const y = tf.tidy(() => (grouped ? bn.apply(x, true, true, groups) : tf.concat(tf.split(x, groups, 0).map((p) => bn.apply(p, true, true)), 0)));
    const out = {
      y: (await y.data()) as Float32Array,
      runningMean: (await bn.runningMean.data()) as Float32Array,
      runningVar: (await bn.runningVar.data()) as Float32Array,
      tracked: (await bn.numBatchesTracked.data())[0],
    };
    y.dispose();
    assert.equal(tf.memory().numTensors, before, `${name}: tensors leaked`);
    x.dispose();
    bn.dispose();
    return out;
  };
  const got = await run(backend, true);
  const want = await run('cpu', false);
  await tf.setBackend(backend);
  assert.equal(got.tracked, groups);
  assert.equal(want.tracked, groups);
  for (const name of ['y', 'runningMean', 'runningVar'] as const) {
    const e = relError(got[name], want[name]);
    assert.ok(e < 1e-5, `[${shape}] groups ${groups}: ${name}: rel err ${e}`);
  }
}
