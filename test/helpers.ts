import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { relError } from '../lib/util/numeric';
import { initBackend } from '../lib/backend';

/** Activates a backend for a test file (tests pick one explicitly; they never rely on the environment). */
export async function useBackend(name: 'wasm' | 'cpu'): Promise<void> {
  await initBackend({ force: name, env: {} });
}

/**
 * Forces the webgpu backend for a test file (a software adapter will do). Resolves to null when
 * it runs, else to the reason for t.skip. Under CI=true it fails instead: CI installs what
 * webgpu needs (scripts/apt-packages.txt), so a webgpu that cannot start there is a bug.
 */
export async function useWebgpu(): Promise<string | null> {
  // cpu first: its activation silences tfjs's "use the node backend" banner; tests compare with it.
  await initBackend({ force: 'cpu', env: {} });
  try {
    await initBackend({ force: 'webgpu', env: {} });
    return null;
  } catch (e) {
    if (process.env.CI === 'true') throw e;
    return `webgpu cannot start here: ${(e as Error).message}`;
  }
}

export { relError } from '../lib/util/numeric';

/** Runs fn `steps` times and returns tf.memory().numTensors after each step. */
export async function tensorCounts(steps: number, fn: (step: number) => void | Promise<void>): Promise<number[]> {
  const counts: number[] = [];
  for (let i = 0; i < steps; i++) {
    await fn(i);
    counts.push(tf.memory().numTensors);
  }
  return counts;
}

/** A convolution's padding as tfjs takes it. */
export type ConvPad = 'same' | 'valid' | number | [[number, number], [number, number], [number, number], [number, number]];

/** One convolution shape of the kernel tests: NHWC input n×h×w×ci, ci→co, kernel k (or [kh, kw]). */
export interface ConvCase {
  name: string;
  n: number;
  h: number;
  w: number;
  ci: number;
  co: number;
  k: number | [number, number];
  stride: number | [number, number];
  pad: ConvPad;
}

/**
 * Two models' buffers by state name (BatchNorm running statistics, queues, …) agree: the same
 * names in the same order, num_batches_tracked exactly, every other buffer within 1e-5 relative.
 */
export function assertBuffersMatch(got: Map<string, ArrayLike<number>>, want: Map<string, ArrayLike<number>>, at: string): void {
  assert.deepEqual([...got.keys()], [...want.keys()]);
  for (const [k, w] of want) {
    if (k.endsWith('num_batches_tracked')) assert.equal(got.get(k)![0], w[0], `${at}: ${k}`);
    else {
      const e = relError(got.get(k) as Float32Array, w as Float32Array);
      assert.ok(e < 1e-5, `${at}: ${k} rel err ${e}`);
    }
  }
}
