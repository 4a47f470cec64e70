import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { makeFramework } from '../../lib/frameworks';
import { disposeViews, makeViews } from '../../lib/masks';
import type { ResNet } from '../../lib/models';
import { pretrainConfig } from '../../lib/presets';
import { Rng } from '../../lib/util/rng';
import { assertBuffersMatch, relError, useBackend } from '../helpers';

/**
 * MoCo's emulated shuffle-BN in one key-encoder pass (BatchNorm statistics per shard, `bnGroups`)
 * against the computation it replaces, reimplemented here as it was: permute, split into
 * `bnSplits` chunks, one key-encoder pass per chunk, concatenate, un-permute. The same keys, loss
 * (MixMask terms included), gradients, and running statistics and num_batches_tracked of every
 * BatchNorm of the key encoder, within 1e-5, on cpu (the composite per group) and on wasm (the
 * grouped kernel). A batch that is not a multiple of the splits keeps the chunks.
 */

interface MocoInternals {
  keyBackbone: ResNet;
  keyProjector: { apply(x: tf.Tensor2D, training: boolean): tf.Tensor2D };
  opts: { bnSplits?: number };
  computeTargets(x1: tf.Tensor4D, x2: tf.Tensor4D, rng: Rng): tf.Tensor[];
}

/** The chunked computation, as lib/frameworks/moco.ts computed the keys before the grouped pass. */
function chunkedKeys(m: MocoInternals, x2: tf.Tensor4D, rng: Rng): tf.Tensor[] {
  const n = x2.shape[0];
  const splits = Math.max(1, Math.min(m.opts.bnSplits ?? 4, Math.floor(n / 2)));
  const perm = rng.permutation(n);
  const inv = new Int32Array(n);
  perm.forEach((p, i) => (inv[p] = i));
  const shuffled = tf.gather(x2, tf.tensor1d(perm, 'int32'));
  const sizes = Array.from({ length: splits }, (_, i) => Math.floor(((i + 1) * n) / splits) - Math.floor((i * n) / splits));
  const chunks = tf.split(shuffled, sizes, 0).map((c) => m.keyProjector.apply(m.keyBackbone.apply(c as tf.Tensor4D, true), true));
  return [tf.gather(tf.concat(chunks, 0), tf.tensor1d(inv, 'int32'))];
}

/** The key encoder's buffers (running mean / variance, num_batches_tracked) by name. */
function keyBuffers(fw: { namedBuffers(): Array<[string, tf.Variable]> }): Map<string, Float32Array | Int32Array> {
  return new Map(fw.namedBuffers().filter(([name]) => name.startsWith('target.')).map(([name, v]) => [name, v.dataSync() as Float32Array | Int32Array]));
}

for (const backend of ['cpu', 'wasm'] as const) {
  for (const [name, n] of [
    ['moco-v2', 8],
    ['moco-v2', 12],
    ['moco-v2', 10],
    ['moco-v1', 8],
  ] as const) {
    const equal = n % 4 === 0;
    test(`${name} on ${backend}, batch ${n}, bnSplits 4: ${equal ? 'one key-encoder pass with grouped BatchNorm' : 'chunks of unequal size (one pass each)'} gives the keys, loss, gradients and key-encoder running statistics of the chunked computation`, async () => {
      await useBackend(backend);
      const cfg = pretrainConfig(name, 'synthetic', 'smoke');
      assert.equal(cfg.heads.bnSplits, 4);
      const fresh = makeFramework(name, cfg.backbone, cfg.heads, 3);
      const old = makeFramework(name, cfg.backbone, cfg.heads, 3);
      const oldM = old as unknown as MocoInternals;
      oldM.computeTargets = (_x1, x2, rng) => chunkedKeys(oldM, x2, rng);
      // Key-encoder passes of the new computation.
      const freshM = fresh as unknown as MocoInternals;
      const passes: number[] = [];
      const apply = freshM.keyBackbone.apply.bind(freshM.keyBackbone);
      freshM.keyBackbone.apply = (x, training, bnGroups) => {
        passes.push(x.shape[0]);
        return apply(x, training, bnGroups);
      };
      const x1 = tf.randomUniform([n, 16, 16, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
      const x2 = tf.randomUniform([n, 16, 16, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
      const views = makeViews(x1, { method: 'mixmask', gridSize: 4 }, new Rng(6));
      const tensors: number[] = [];
      for (let step = 0; step < 2; step++) {
        passes.length = 0;
        const a = await fresh.computeGradients(x1, x2, views, new Rng(7 + step));
        const b = await old.computeGradients(x1, x2, views, new Rng(7 + step));
        assert.deepEqual(passes, equal ? [n] : [2, 3, 2, 3], 'key-encoder passes (their batch sizes)');
        const at = `step ${step + 1}`;
        assert.ok(Math.abs(a.result.loss - b.result.loss) <= 1e-5 * Math.abs(b.result.loss), `${at}: loss ${a.result.loss} vs ${b.result.loss}`);
        for (const [k, v] of Object.entries(b.result.terms)) assert.ok(Math.abs(a.result.terms[k] - v) <= 1e-5 * Math.max(1, Math.abs(v)), `${at}: term ${k}`);
        const ek = relError(a.targets[0].dataSync() as Float32Array, b.targets[0].dataSync() as Float32Array);
        assert.ok(ek < 1e-5, `${at}: keys rel err ${ek}`);
        // Gradients are keyed by tfjs variable name: pair them by state name.
        const oldVars = new Map(old.namedTrainable());
        for (const [k, v] of fresh.namedTrainable()) {
          const e = relError(a.grads[v.name].dataSync() as Float32Array, b.grads[oldVars.get(k)!.name].dataSync() as Float32Array);
          assert.ok(e < 1e-5, `${at}: gradient of ${k} rel err ${e}`);
        }
        const want = keyBuffers(old);
        const got = keyBuffers(fresh);
        assert.ok(want.size > 0);
        assertBuffersMatch(got, want, at);
        assert.equal(want.get('target.backbone.bn1.num_batches_tracked')![0], 4 * (step + 1), 'each chunk counts as a batch');
        fresh.afterStep(a.targets, step, 2);
        old.afterStep(b.targets, step, 2);
        tf.dispose([...Object.values(a.grads), ...a.targets, ...Object.values(b.grads), ...b.targets]);
        tensors.push(tf.memory().numTensors);
      }
      assert.equal(tensors[1], tensors[0], `tensors per step ${tensors}`);
      disposeViews(views);
      tf.dispose([x1, x2]);
      fresh.dispose();
      old.dispose();
    });
  }
}
