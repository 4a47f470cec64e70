import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { BATCH_NORM_RUNNING_STATS_KERNEL, batchNormRunningStats, batchNormTrain, hasRunningStatsKernel } from '../../lib/backend/batchnorm-op';
import { countDispatches } from '../../lib/backend/webgpu/dispatches';
import { BatchNorm } from '../../lib/models';
import { Rng } from '../../lib/util/rng';
import { relError } from '../helpers';

/**
 * Shared by the BatchNorm running-statistics tests of each backend (webgpu-batchnorm, wasm-kernels):
 * the same inputs run on a backend with the kernel and on cpu, whose tfjs-op fallback is itself
 * checked against the formula in float64 here.
 */

/** Consecutive batches of one BatchNorm: rank 2 and 4, one element per channel (n = 1, no n/(n − 1)), C > 64. */
export const SEQUENCES: Array<{ name: string; momentum: number; shapes: number[][] }> = [
  { name: 'C = 5, rank 2 and 4, n = 1 in between', momentum: 0.1, shapes: [[6, 5], [2, 3, 3, 5], [1, 5], [1, 1, 1, 5], [3, 2, 2, 5]] },
  { name: 'C = 70, rank 4, momentum 0.3', momentum: 0.3, shapes: [[2, 2, 3, 70], [1, 4, 4, 70], [2, 1, 1, 70]] },
];

export interface StatsRun {
  /** Per call: running mean, running variance (after the call). */
  runningMean: Float32Array[];
  runningVar: Float32Array[];
  tracked: number[];
  /** Per call: the batch's mean and (biased) variance, as the backend computed them. */
  batchMean: Float32Array[];
  batchVar: Float32Array[];
  /** Per call: dispatches of the running-statistics update alone (webgpu; else 0). */
  dispatches: number[];
  /** tf.memory().numTensors after each call. */
  tensors: number[];
}

/** x for each call of `seq`, the same on every backend. */
export function sequenceInputs(seq: (typeof SEQUENCES)[number], seed: number): Float32Array[] {
  const rng = new Rng(seed);
  return seq.shapes.map((s, k) => rng.fillNormal(new Float32Array(s.reduce((a, b) => a * b, 1)), 0.5 * k, 1 + 0.25 * k));
}

/** Runs the running-statistics update of `seq` on `backend` (batch statistics from batchNormTrain). */
export async function runSequence(backend: string, seq: (typeof SEQUENCES)[number], xs: Float32Array[]): Promise<StatsRun> {
  await tf.setBackend(backend);
  const C = seq.shapes[0][seq.shapes[0].length - 1];
  let runningMean: tf.Tensor = tf.zeros([C]);
  let runningVar: tf.Tensor = tf.ones([C]);
  let tracked: tf.Tensor = tf.scalar(0, 'int32');
  const scale = tf.ones([C]) as tf.Tensor1D;
  const offset = tf.zeros([C]) as tf.Tensor1D;
  const out: StatsRun = { runningMean: [], runningVar: [], tracked: [], batchMean: [], batchVar: [], dispatches: [], tensors: [] };
  for (let k = 0; k < seq.shapes.length; k++) {
    const x = tf.tensor(xs[k], seq.shapes[k]);
    const { y, mean, variance } = batchNormTrain(x, scale, offset, 1e-5, false);
    const count = x.size / C;
    const update = () => batchNormRunningStats({ runningMean, runningVar, numBatchesTracked: tracked, mean, variance }, { momentum: seq.momentum, count });
    let next: tf.Tensor[];
    if (backend === 'webgpu') {
      const r = await countDispatches(update);
      next = r.result;
      out.dispatches.push(r.count.total);
    } else {
      next = update();
      out.dispatches.push(0);
    }
    assert.equal(next[2].dtype, 'int32', 'num_batches_tracked stays int32');
    assert.deepEqual(next[2].shape, []);
    out.batchMean.push((await mean.data()) as Float32Array);
    out.batchVar.push((await variance.data()) as Float32Array);
    tf.dispose([x, y, mean, variance, runningMean, runningVar, tracked]);
    [runningMean, runningVar, tracked] = next;
    out.runningMean.push((await runningMean.data()) as Float32Array);
    out.runningVar.push((await runningVar.data()) as Float32Array);
    out.tracked.push((await tracked.data())[0]);
    out.tensors.push(tf.memory().numTensors);
  }
  tf.dispose([runningMean, runningVar, tracked, scale, offset]);
  return out;
}

/** The PyTorch update in float64 from a run's own batch statistics. */
export function reference(seq: (typeof SEQUENCES)[number], run: StatsRun): { runningMean: number[][]; runningVar: number[][] } {
  const C = seq.shapes[0][seq.shapes[0].length - 1];
  let rm = new Array<number>(C).fill(0);
  let rv = new Array<number>(C).fill(1);
  const res = { runningMean: [] as number[][], runningVar: [] as number[][] };
  const m = seq.momentum;
  seq.shapes.forEach((shape, k) => {
    const n = shape.reduce((a, b) => a * b, 1) / C;
    const unbias = n > 1 ? n / (n - 1) : 1;
    rm = rm.map((r, c) => (1 - m) * r + m * run.batchMean[k][c]);
    rv = rv.map((r, c) => (1 - m) * r + m * unbias * run.batchVar[k][c]);
    res.runningMean.push(rm);
    res.runningVar.push(rv);
  });
  return res;
}

/**
 * `backend` (which must register the kernel) against cpu (which must not) on every sequence:
 * running statistics within 1e-5, num_batches_tracked exactly; cpu's fallback against the
 * float64 formula; no tensors left behind. Returns the backend's runs.
 */
export async function compareWithCpu(backend: string, seed: number): Promise<StatsRun[]> {
  const runs: StatsRun[] = [];
  for (const seq of SEQUENCES) {
    const xs = sequenceInputs(seq, seed);
    await tf.setBackend(backend);
    assert.ok(hasRunningStatsKernel(), `${BATCH_NORM_RUNNING_STATS_KERNEL} is registered for ${backend}`);
    const before = tf.memory().numTensors;
    const got = await runSequence(backend, seq, xs);
    await tf.setBackend(backend);
    assert.equal(tf.memory().numTensors, before, `${seq.name}: tensors leaked on ${backend}`);
    await tf.setBackend('cpu');
    assert.ok(!hasRunningStatsKernel(), 'cpu takes the tfjs-op fallback');
    const want = await runSequence('cpu', seq, xs);
    const exact = reference(seq, want);
    for (let k = 0; k < seq.shapes.length; k++) {
      const at = `${seq.name}, call ${k + 1} [${seq.shapes[k]}]`;
      for (const [name, e] of [
        ['running mean', relError(got.runningMean[k], want.runningMean[k])],
        ['running variance', relError(got.runningVar[k], want.runningVar[k])],
        ['cpu fallback running mean vs float64', relError(want.runningMean[k], exact.runningMean[k])],
        ['cpu fallback running variance vs float64', relError(want.runningVar[k], exact.runningVar[k])],
      ] as const) {
        assert.ok(e < 1e-5, `${at}: ${name}: rel err ${e}`);
      }
      assert.equal(got.tracked[k], k + 1, `${at}: num_batches_tracked on ${backend}`);
      assert.equal(want.tracked[k], k + 1, `${at}: num_batches_tracked on cpu`);
    }
    runs.push(got);
  }
  await tf.setBackend(backend);
  return runs;
}

export interface LayerRun {
  runningMean: Float32Array;
  runningVar: Float32Array;
  tracked: number;
  weight: Float32Array;
  /** tf.memory().numTensors after each step. */
  tensors: number[];
}

/**
 * A BatchNorm layer (+ ReLU) trained `steps` SGD steps on `backend` on Σ y·dy with fresh
 * inputs each step (the same on every backend); its statistics and weight at the end.
 */
export async function trainLayer(backend: string, shape: number[], steps: number, seed: number): Promise<LayerRun> {
  await tf.setBackend(backend);
  const C = shape[shape.length - 1];
  const rng = new Rng(seed);
  const size = shape.reduce((a, b) => a * b, 1);
  const bn = new BatchNorm(C, { momentum: 0.1 });
  const tensors: number[] = [];
  for (let s = 0; s < steps; s++) {
    const x = tf.tensor(rng.fillNormal(new Float32Array(size), 1, 2), shape);
    const dy = tf.tensor(rng.fillNormal(new Float32Array(size), 0, 1), shape);
    const { value, grads } = tf.variableGrads(() => tf.sum(tf.mul(bn.apply(x, true, true), dy)) as tf.Scalar, [bn.weight!, bn.bias!]);
    tf.tidy(() => {
      for (const v of [bn.weight!, bn.bias!]) v.assign(tf.sub(v, tf.mul(grads[v.name], 0.05)));
    });
    tf.dispose([x, dy, value, grads]);
    tensors.push(tf.memory().numTensors);
  }
  const run: LayerRun = {
    runningMean: (await bn.runningMean.data()) as Float32Array,
    runningVar: (await bn.runningVar.data()) as Float32Array,
    tracked: (await bn.numBatchesTracked.data())[0],
    weight: (await bn.weight!.data()) as Float32Array,
    tensors,
  };
  bn.dispose();
  return run;
}

/** A layer trained on `backend` and on cpu: the same running statistics, counter and weight; tensors flat. */
export async function compareLayerWithCpu(backend: string, shape: number[], steps: number, seed: number): Promise<void> {
  const got = await trainLayer(backend, shape, steps, seed);
  const want = await trainLayer('cpu', shape, steps, seed);
  await tf.setBackend(backend);
  assert.deepEqual(got.tensors, got.tensors.map(() => got.tensors[0]), `tensors per step on ${backend}: ${got.tensors}`);
  assert.equal(got.tracked, steps);
  assert.equal(want.tracked, steps);
  for (const [name, e] of [
    ['running mean', relError(got.runningMean, want.runningMean)],
    ['running variance', relError(got.runningVar, want.runningVar)],
    ['weight', relError(got.weight, want.weight)],
  ] as const) {
    assert.ok(e < 1e-5, `[${shape}], ${steps} steps: ${name}: rel err ${e}`);
  }
}
