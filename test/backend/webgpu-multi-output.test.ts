import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { countDispatches } from '../../lib/backend/webgpu/dispatches';
import { runMultiOutput, storageBindingLimit } from '../../lib/backend/webgpu/multi-output';
import { useWebgpu } from '../helpers';

/**
 * The multi-output dispatcher (lib/backend/webgpu/multi-output.ts): one dispatch writes two
 * outputs, in order with tfjs's own dispatches before and after it, counted once, inside and
 * outside tf.profile, without leaking tensors; too many bindings is a clear error.
 */

let skip: string | null = null;
before(async () => {
  skip = await useWebgpu();
});

const WGSL = `
  @group(0) @binding(0) var<storage, read_write> sum : array<f32>;
  @group(0) @binding(1) var<storage, read_write> prod : array<f32>;
  @group(0) @binding(2) var<storage, read> a : array<f32>;
  @group(0) @binding(3) var<storage, read> b : array<f32>;
  struct U { n : i32, k : f32, }
  @group(0) @binding(4) var<uniform> u : U;
  @compute @workgroup_size(64)
  fn main(@builtin(global_invocation_id) id : vec3<u32>) {
    let i = i32(id.x);
    if (i < u.n) {
      sum[i] = a[i] + b[i];
      prod[i] = u.k * a[i] * b[i];
    }
  }`;

function sumAndProduct(a: tf.Tensor, b: tf.Tensor, k: number): tf.Tensor[] {
  const [s, p] = runMultiOutput(tf.backend(), {
    name: 'TestSumProduct', key: 'test_sum_product', wgsl: () => WGSL,
    outputs: [{ shape: a.shape, dtype: 'float32' }, { shape: a.shape, dtype: 'float32' }],
    inputs: [a, b].map((t) => ({ dataId: t.dataId, shape: t.shape, dtype: t.dtype })),
    uniforms: [{ type: 'int32', data: [a.size] }, { type: 'float32', data: [k] }],
    dispatch: [Math.ceil(a.size / 64), 1, 1],
  });
  return [s, p].map((t) => tf.engine().makeTensorFromTensorInfo(t));
}

test('two outputs from one dispatch, between tfjs dispatches, counted once', async (t) => {
  if (skip) return t.skip(skip);
  const before = tf.memory().numTensors;
  const a0 = tf.range(0, 1000, 1, 'float32');
  const b0 = tf.linspace(-3, 5, 1000);
  const { result, count } = await countDispatches(() => {
    const a = tf.mul(a0, 0.5); // a tfjs dispatch whose output the next one reads
    const [s, p] = sumAndProduct(a, b0, 3);
    const after = tf.add(s, p); // and one that reads ours
    a.dispose();
    return [s, p, after];
  });
  assert.equal(count.byProgram.get('TestSumProduct'), 1);
  assert.equal(count.total, 3);
  const [a, b] = [(await a0.data()) as Float32Array, (await b0.data()) as Float32Array];
  const [s, p, after] = await Promise.all(result.map((x) => x.data()));
  for (let i = 0; i < 1000; i++) {
    const ai = a[i] * 0.5;
    assert.ok(Math.abs(s[i] - (ai + b[i])) <= 1e-5 * (1 + Math.abs(ai + b[i])), `sum[${i}]`);
    assert.ok(Math.abs(p[i] - 3 * ai * b[i]) <= 1e-5 * (1 + Math.abs(3 * ai * b[i])), `prod[${i}]`);
    assert.ok(Math.abs(after[i] - (s[i] + p[i])) <= 1e-5 * (1 + Math.abs(s[i] + p[i])), `after[${i}]`);
  }
  tf.dispose([...result, a0, b0]);
  assert.equal(tf.memory().numTensors, before);
});

test('inside tf.profile, as a registered kernel: timed, and the values right', async (t) => {
  if (skip) return t.skip(skip);
  if (!tf.getKernel('TestSumProduct', 'webgpu')) {
    tf.registerKernel({
      kernelName: 'TestSumProduct', backendName: 'webgpu',
      kernelFunc: ({ inputs, backend }) => {
        const { a, b } = inputs as Record<string, tf.TensorInfo>;
        return runMultiOutput(backend as tf.KernelBackend, {
          name: 'TestSumProduct', key: 'test_sum_product', wgsl: () => WGSL,
          outputs: [{ shape: a.shape, dtype: 'float32' }, { shape: a.shape, dtype: 'float32' }],
          inputs: [a, b],
          uniforms: [{ type: 'int32', data: [a.shape[0]] }, { type: 'float32', data: [2] }],
          dispatch: [Math.ceil(a.shape[0] / 64), 1, 1],
        });
      },
    });
  }
  const a = tf.range(0, 256, 1, 'float32');
  let sum: Float32Array | null = null;
  const info = await tf.profile(async () => {
    const out = tf.engine().runKernel('TestSumProduct', { a, b: a }) as tf.Tensor[];
    sum = (await out[1].data()) as Float32Array;
    tf.dispose(out);
  });
  const k = info.kernels.find((x) => x.name === 'TestSumProduct');
  assert.ok(k, 'the kernel is in the profile');
  assert.equal(typeof k.kernelTimeMs, 'number');
  assert.equal(sum![100], 2 * 100 * 100);
  a.dispose();
});

test('more storage bindings than the device allows: a clear error', async (t) => {
  if (skip) return t.skip(skip);
  const limit = storageBindingLimit(tf.backend());
  const x = tf.ones([4]);
  const inputs = Array.from({ length: limit }, () => ({ dataId: x.dataId, shape: x.shape, dtype: x.dtype }));
  assert.throws(() => runMultiOutput(tf.backend(), {
    name: 'TooMany', key: 'too_many', wgsl: () => '', outputs: [{ shape: [4], dtype: 'float32' }], inputs, dispatch: [1, 1, 1],
  }), new RegExp(`TooMany: ${limit + 1} storage bindings, the device allows ${limit}`));
  x.dispose();
});
