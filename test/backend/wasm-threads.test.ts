import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as tf from '@tensorflow/tfjs';
import { initBackend } from '../../lib/backend';
import { resnet18 } from '../../lib/models';
import { Rng } from '../../lib/util/rng';

/**
 * The XNNPACK thread count is fixed per process, so this file runs itself as a child process
 * (MIXMASK_WASM_CHILD=<threads>) once with 1 and once with 2 threads, and compares what the
 * children computed (the parent starts no backend): conv forward, dx, dW (stride 1 and 2) and a small ResNet training step.
 */
const CHILD_ENV = 'MIXMASK_WASM_CHILD';

async function child(threads: number): Promise<void> {
  const report = await initBackend({ force: 'wasm', env: {}, threads });
  const rng = new Rng(99);
  const rand = (shape: number[]) => tf.tensor(rng.fillNormal(new Float32Array(shape.reduce((a, b) => a * b, 1)), 0, 1), shape);
  const out: Record<string, number[]> = {};
  for (const stride of [1, 2]) {
    const x = rand([9, 13, 12, 16]) as tf.Tensor4D;
    const w = rand([3, 3, 16, 24]) as tf.Tensor4D;
    const y = tf.conv2d(x, w, stride, 1);
    const dy = rand(y.shape);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) => tf.sum(tf.mul(tf.conv2d(a as tf.Tensor4D, b as tf.Tensor4D, stride, 1), dy)))([x, w]);
    out[`forward s${stride}`] = Array.from(y.dataSync());
    out[`dx s${stride}`] = Array.from(dx.dataSync());
    out[`dW s${stride}`] = Array.from(dw.dataSync());
  }
  const net = resnet18({ width: 8, seed: 3 });
  const input = rand([4, 16, 16, 3]) as tf.Tensor4D;
  const { value, grads } = tf.variableGrads(() => tf.sum(tf.square(net.apply(input, true))) as tf.Scalar, net.trainableVariables());
  out['resnet loss'] = [value.dataSync()[0]];
  out['resnet grads'] = net.trainableVariables().flatMap((v) => Array.from(grads[v.name].dataSync()));
  process.stdout.write(JSON.stringify({ threads: report.threads, detail: report.detail, out }) + '\n');
}

if (process.env[CHILD_ENV]) {
  child(Number(process.env[CHILD_ENV])).catch((e) => {
    console.error(e);
    process.exit(1);
  });
} else {
  test('wasm with 1 and 2 XNNPACK threads computes the same convolutions, gradients and training step', () => {
    const results = [1, 2].map((threads) => {
      const r = spawnSync(process.execPath, [__filename], {
        env: { ...process.env, [CHILD_ENV]: String(threads) },
        encoding: 'utf8',
        maxBuffer: 64 << 20,
        timeout: 120_000,
      });
      assert.equal(r.status, 0, `child with ${threads} thread(s) failed: ${r.stderr}`);
      return JSON.parse(r.stdout.trim().split('\n').pop()!) as { threads: number; detail: string; out: Record<string, number[]> };
    });
    assert.equal(results[0].threads, 1, results[0].detail);
    // An explicit count is honoured even on a 2-core machine (tfjs would cap it at cores / 2).
    assert.equal(results[1].threads, 2, results[1].detail);
    for (const key of Object.keys(results[0].out)) {
      const a = results[0].out[key];
      const b = results[1].out[key];
      assert.equal(a.length, b.length, key);
      let num = 0;
      let den = 0;
      for (let i = 0; i < a.length; i++) {
        num = Math.max(num, Math.abs(a[i] - b[i]));
        den = Math.max(den, Math.abs(a[i]));
      }
      assert.ok(num / Math.max(den, 1e-30) < 1e-6, `${key}: 1 vs 2 threads differ by ${num / den}`);
    }
  });
}
