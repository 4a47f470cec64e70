import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../lib/util/rng';
import { useBackend } from '../helpers';

/**
 * lib/backend/wasm's Reverse (row copies along the first axis, the stock kernel otherwise)
 * against the `cpu` backend, bit for bit: first axis given as 0, -rank or [0], other axes, size-1
 * axes, int32, and the gradient of a flip.
 */

before(async () => {
  await useBackend('wasm');
});

const rng = new Rng(3);

async function onBoth(f: () => tf.Tensor): Promise<[tf.TypedArray, tf.TypedArray]> {
  const out: tf.TypedArray[] = [];
  for (const b of ['cpu', 'wasm']) {
    await tf.setBackend(b);
    const before = tf.memory().numTensors;
    const y = tf.tidy(f);
    out.push(await y.data());
    y.dispose();
    assert.equal(tf.memory().numTensors, before, `${b}: tensors leaked`);
  }
  return [out[0], out[1]];
}

const CASES: Array<[string, number[], number | number[], 'float32' | 'int32']> = [
  ['[5,3,4,2] axis 0', [5, 3, 4, 2], 0, 'float32'],
  ['[6,7] axis -2', [6, 7], -2, 'float32'],
  ['[4,3,2] axes [0] int32', [4, 3, 2], [0], 'int32'],
  ['[1,4,3] axes [0, 1] (size-1 first axis: a reverse of axis 1)', [1, 4, 3], [0, 1], 'float32'],
  ['[4,1,3] axes [0, 1] (size-1 second axis)', [4, 1, 3], [0, 1], 'float32'],
  ['[4,3,2] axis 1 (stock kernel)', [4, 3, 2], 1, 'float32'],
  ['[4,3,2] axes [0, 2] (stock kernel)', [4, 3, 2], [0, 2], 'float32'],
  ['[9] axis 0', [9], 0, 'float32'],
];

for (const [name, shape, dims, dtype] of CASES) {
  test(`Reverse on wasm matches cpu: ${name}`, async () => {
    const size = shape.reduce((a, b) => a * b, 1);
    const values = rng.fillNormal(new Float32Array(size), 0, 10);
    const data = dtype === 'int32' ? Int32Array.from(values, Math.round) : values;
    const [want, got] = await onBoth(() => tf.reverse(tf.tensor(data, shape, dtype), dims));
    assert.deepEqual(Array.from(got), Array.from(want));
  });
}

test('the gradient of a first-axis flip on wasm matches cpu', async () => {
  const x = rng.fillNormal(new Float32Array(4 * 3 * 2), 0, 1);
  const w = rng.fillNormal(new Float32Array(4 * 3 * 2), 0, 1);
  const [want, got] = await onBoth(() => tf.grad((t: tf.Tensor) => tf.sum(tf.mul(tf.reverse(t, 0), tf.tensor(w, [4, 3, 2]))))(tf.tensor(x, [4, 3, 2])));
  assert.deepEqual(Array.from(got), Array.from(want));
});
