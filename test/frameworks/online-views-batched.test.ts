import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { FRAMEWORKS, Framework, FrameworkName, OnlineOutput, makeFramework } from '../../lib/frameworks';
import { ViewSpec, disposeViews, makeViews } from '../../lib/masks';
import type { ResNet } from '../../lib/models';
import { pretrainConfig } from '../../lib/presets';
import { Rng } from '../../lib/util/rng';
import { assertBuffersMatch, relError, useBackend } from '../helpers';

/**
 * The online encoder over all the views of a step in ONE pass ([x1; x2; mixed…] with BatchNorm
 * statistics per view, bnGroups = number of views) against the computation it replaces,
 * reimplemented here as it was: one backbone + heads call per view, x1, x2, then the extra views
 * in order. Every framework, without extra views, with one MixMask view, with two extra views
 * (method 'both': Un-Mix then MixMask) and with an erase view: the same loss, terms,
 * embeddingStd, gradients, and running statistics and num_batches_tracked of every BatchNorm
 * (online and target) within 1e-5, on cpu (the composite per group) and on wasm (the grouped
 * kernel), over two steps; tensors flat.
 */

interface Heads {
  backbone: ResNet;
  projector: { apply(x: tf.Tensor2D, training: boolean): tf.Tensor2D };
  predictor?: { apply(x: tf.Tensor2D, training: boolean): tf.Tensor2D };
}

/** The old per-view online forward (lib/frameworks/*.ts before the batched pass): ungrouped BatchNorm, one call per view. */
function sequentialViews(fw: Framework, xs: tf.Tensor4D[]): OnlineOutput[] {
  const m = fw as unknown as Heads;
  return xs.map((x) => {
    const z = m.projector.apply(m.backbone.apply(x, true), true);
    // BYOL and SimSiam predict; MoCo and SimCLR compare the projection itself.
    return { z, out: m.predictor ? m.predictor.apply(z, true) : z };
  });
}

/** All buffers (BatchNorm running mean / variance / num_batches_tracked, online and target; MoCo's queue) by name. */
function buffers(fw: Framework): Map<string, Float32Array | Int32Array> {
  return new Map(fw.namedBuffers().map(([name, v]) => [name, v.dataSync() as Float32Array | Int32Array]));
}

/**
 * Gradients that are zero analytically, so that both computations give rounding noise (~1e-8
 * against ~0.1 for the layer's weight) which need not agree: BYOL's and SimSiam's projection z
 * only reaches the loss through BatchNorms (the predictor's first Linear → BN; SimSiam's output
 * BN), which are invariant to a shift of z per view, so the last projector Linear's bias gets
 * no gradient. The test checks that they are ~0 in both instead of comparing the noise.
 */
const ZERO_GRADIENTS: Partial<Record<FrameworkName, string[]>> = {
  byol: ['projector.1.linear.bias'],
  simsiam: ['projector.1.linear.bias'],
};

const maxAbs = (a: Float32Array) => a.reduce((m, v) => Math.max(m, Math.abs(v)), 0);

const SPECS: Array<[string, ViewSpec, number]> = [
  ['no extra view', { method: 'none' }, 0],
  ['one MixMask view', { method: 'mixmask', gridSize: 4 }, 1],
  ['two extra views (Un-Mix, MixMask)', { method: 'both', gridSize: 4 }, 2],
  ['an erase view', { method: 'erase', gridSize: 4 }, 1],
];

for (const backend of ['cpu', 'wasm'] as const) {
  for (const name of FRAMEWORKS) {
    for (const [label, spec, extra] of SPECS) {
      test(`${name} on ${backend}, ${label}: one grouped online pass gives the loss, terms, gradients and running statistics of one pass per view`, async () => {
        await useBackend(backend);
        const n = 8;
        const cfg = pretrainConfig(name as FrameworkName, 'synthetic', 'smoke');
        const fresh = makeFramework(name, cfg.backbone, cfg.heads, 3);
        const old = makeFramework(name, cfg.backbone, cfg.heads, 3);
        const oldAny = old as unknown as { onlineViews?: unknown };
        assert.equal(typeof oldAny.onlineViews, 'function', 'Framework.onlineViews (replaced here by the sequential computation)');
        oldAny.onlineViews = (xs: tf.Tensor4D[]) => sequentialViews(old, xs);
        // Online backbone passes of the new computation: one, over every view, grouped by view.
        const passes: Array<[number, number | undefined]> = [];
        const apply = fresh.backbone.apply.bind(fresh.backbone);
        fresh.backbone.apply = (x, training, bnGroups) => {
          passes.push([x.shape[0], bnGroups]);
          return apply(x, training, bnGroups);
        };
        const x1 = tf.randomUniform([n, 16, 16, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
        const x2 = tf.randomUniform([n, 16, 16, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
        const views = makeViews(x1, spec, new Rng(6));
        assert.equal(views.length, extra);
        // MoCo's loss does not read x2's online output: its pass runs x1 and the extra views only.
        const online = (name.startsWith('moco') ? 1 : 2) + extra;
        const tensors: number[] = [];
        for (let step = 0; step < 2; step++) {
          passes.length = 0;
          const a = await fresh.computeGradients(x1, x2, views, new Rng(7 + step));
          const b = await old.computeGradients(x1, x2, views, new Rng(7 + step));
          const at = `step ${step + 1}`;
          assert.deepEqual(passes, [[online * n, online]], `${at}: online backbone passes [batch, bnGroups]`);
          const close = (got: number, want: number, what: string) =>
            assert.ok(Math.abs(got - want) <= 1e-5 * Math.max(1, Math.abs(want)), `${at}: ${what} ${got} vs ${want}`);
          close(a.result.loss, b.result.loss, 'loss');
          close(a.result.embeddingStd, b.result.embeddingStd, 'embeddingStd');
          assert.deepEqual(Object.keys(a.result.terms).sort(), Object.keys(b.result.terms).sort(), `${at}: term names`);
          assert.equal(Object.keys(b.result.terms).length, 1 + (spec.method === 'erase' ? 1 : 2 * extra));
          for (const [k, v] of Object.entries(b.result.terms)) close(a.result.terms[k], v, `term ${k}`);
          // Gradients are keyed by tfjs variable name: pair them by state name.
          const oldVars = new Map(old.namedTrainable());
          const trainable = fresh.namedTrainable();
          assert.equal(Object.keys(a.grads).length, trainable.length);
          const grad = (fw: 'a' | 'b', k: string) =>
            (fw === 'a' ? a.grads[new Map(trainable).get(k)!.name] : b.grads[oldVars.get(k)!.name]).dataSync() as Float32Array;
          for (const [k] of trainable) {
            if (ZERO_GRADIENTS[name]?.includes(k)) {
              const scale = maxAbs(grad('b', k.replace(/bias$/, 'weight')));
              assert.ok(scale > 0);
              for (const fw of ['a', 'b'] as const) assert.ok(maxAbs(grad(fw, k)) <= 1e-5 * scale, `${at}: gradient of ${k} (${fw}) should be ~0: ${maxAbs(grad(fw, k))} vs weight ${scale}`);
              continue;
            }
            const e = relError(grad('a', k), grad('b', k));
            assert.ok(e < 1e-5, `${at}: gradient of ${k} rel err ${e}`);
          }
          const want = buffers(old);
          const got = buffers(fresh);
          assertBuffersMatch(got, want, at);
          assert.equal(want.get('backbone.bn1.num_batches_tracked')![0], online * (step + 1), 'each view counts as a batch');
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
}

for (const name of ['moco-v1', 'moco-v2'] as const) {
  test(`${name}: leaving x2 out of the online pass changes no loss, term or gradient, only the online BatchNorms' running statistics (x1 and the mixed view only, as the official code)`, async () => {
    await useBackend('cpu');
    const n = 8;
    const cfg = pretrainConfig(name, 'synthetic', 'smoke');
    const fw = makeFramework(name, cfg.backbone, cfg.heads, 3);
    const withX2 = makeFramework(name, cfg.backbone, cfg.heads, 3);
    (withX2 as unknown as { onlineSecondView: boolean }).onlineSecondView = true;
    const x1 = tf.randomUniform([n, 16, 16, 3], 0, 1, 'float32', 1) as tf.Tensor4D;
    const x2 = tf.randomUniform([n, 16, 16, 3], 0, 1, 'float32', 2) as tf.Tensor4D;
    const views = makeViews(x1, { method: 'mixmask', gridSize: 4 }, new Rng(6));
    const a = await fw.computeGradients(x1, x2, views, new Rng(7));
    const b = await withX2.computeGradients(x1, x2, views, new Rng(7));
    assert.ok(Math.abs(a.result.loss - b.result.loss) <= 1e-5 * Math.abs(b.result.loss), `loss ${a.result.loss} vs ${b.result.loss}`);
    for (const [k, v] of Object.entries(b.result.terms)) assert.ok(Math.abs(a.result.terms[k] - v) <= 1e-5 * Math.max(1, Math.abs(v)), `term ${k}`);
    const bVars = new Map(withX2.namedTrainable());
    for (const [k, v] of fw.namedTrainable()) {
      const e = relError(a.grads[v.name].dataSync() as Float32Array, b.grads[bVars.get(k)!.name].dataSync() as Float32Array);
      assert.ok(e < 1e-5, `gradient of ${k} rel err ${e}`);
    }
    const got = buffers(fw);
    const want = buffers(withX2);
    assert.equal(got.get('backbone.bn1.num_batches_tracked')![0], 2, 'online BatchNorm: x1 and the mixed view');
    assert.equal(want.get('backbone.bn1.num_batches_tracked')![0], 3, 'with x2: three batches');
    const mean = (m: Map<string, Float32Array | Int32Array>) => m.get('backbone.bn1.running_mean') as Float32Array;
    assert.ok(relError(mean(got), mean(want)) > 1e-3, 'the running statistics differ: x2 no longer moves them');
    tf.dispose([...Object.values(a.grads), ...a.targets, ...Object.values(b.grads), ...b.targets, x1, x2]);
    disposeViews(views);
    fw.dispose();
    withX2.dispose();
  });
}

test('views of different shapes are an error naming the view and the shape expected', async () => {
  await useBackend('cpu');
  const cfg = pretrainConfig('simclr', 'synthetic', 'smoke');
  const fw = makeFramework('simclr', cfg.backbone, cfg.heads, 3);
  const x1 = tf.zeros([4, 16, 16, 3]) as tf.Tensor4D;
  const x2 = tf.zeros([6, 16, 16, 3]) as tf.Tensor4D;
  const small = tf.zeros([4, 8, 8, 3]) as tf.Tensor4D;
  const views = makeViews(small, { method: 'mixmask', gridSize: 4 }, new Rng(2));
  const before = tf.memory().numTensors;
  await assert.rejects(fw.computeGradients(x1, x2, [], new Rng(1)), /shape of x1 \[4,16,16,3\].*got \[6,16,16,3\] for x2/);
  await assert.rejects(fw.computeGradients(x1, x1, views, new Rng(1)), /got \[4,8,8,3\] for extra view 0/);
  assert.equal(tf.memory().numTensors, before, 'a rejected step leaves no tensor behind');
  disposeViews(views);
  tf.dispose([x1, x2, small]);
  fw.dispose();
});
