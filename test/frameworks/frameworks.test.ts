import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import { syntheticDataset, loadAll, makeRecipe, twoViews } from '../../lib/data';
import { FRAMEWORKS, FrameworkName, makeFramework } from '../../lib/frameworks';
import { byolLoss, crossViewNce, infoNce, simsiamLoss } from '../../lib/losses';
import { disposeViews, makeViews } from '../../lib/masks';
import { pretrainConfig } from '../../lib/presets';
import { makeOptimizer } from '../../lib/optim';
import { Rng } from '../../lib/util/rng';
import { useBackend } from '../helpers';

before(() => useBackend('wasm'));

async function fixedBatch(n: number) {
  const ds = syntheticDataset({ size: n, numClasses: 4, seed: 3 });
  const b = await loadAll(ds);
  b.labels.dispose();
  return b.images;
}

for (const name of FRAMEWORKS) {
  test(`${name} with MixMask: the loss decreases on a tiny dataset`, async () => {
    const images = await fixedBatch(32);
    const cfg = pretrainConfig(name, 'synthetic', 'smoke', { method: 'mixmask', gridSize: 4 });
    // MoCo's loss first rises while the random initial queue is replaced by real keys; a queue of
    // one batch is full of real keys after the first step, so the comparison starts at step 2.
    const fw = makeFramework(name, cfg.backbone, { ...cfg.heads, queueSize: 32 }, 1);
    const lr = name.startsWith('moco') ? 0.05 : name === 'simsiam' ? 0.05 : 0.003;
    const opt = makeOptimizer({ ...cfg.optimizer, lr } as typeof cfg.optimizer, fw.namedTrainable());
    const recipe = makeRecipe(cfg.recipe, { size: 32 });
    const losses: number[] = [];
    const counts: number[] = [];
    for (let step = 0; step < 24; step++) {
      const rng = new Rng(100 + step);
      const { view1, view2 } = twoViews(images, recipe, rng);
      const views = makeViews(view1, cfg.view, rng);
      const { result, grads, targets } = await fw.computeGradients(view1, view2, views, rng);
      opt.step(grads, lr);
      fw.afterStep(targets, step, 24);
      tf.dispose([...Object.values(grads), ...targets, view1, view2]);
      disposeViews(views);
      losses.push(result.loss);
      counts.push(tf.memory().numTensors);
    }
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    const first = mean(losses.slice(2, 6));
    const last = mean(losses.slice(-4));
    assert.ok(losses.every(Number.isFinite), `non-finite loss in ${losses}`);
    assert.ok(last < first - 0.02 * Math.abs(first), `${name}: loss did not decrease (${first.toFixed(4)} → ${last.toFixed(4)})`);
    assert.deepEqual(counts.slice(2), Array(counts.length - 2).fill(counts[2]), `${name}: tensor count drifts ${counts}`);
    images.dispose();
    opt.dispose();
    fw.dispose();
  });
}

/** The framework's own directional loss ℓ(x1 → x2), computed independently of the framework's code paths. */
function directional(name: FrameworkName, fw: ReturnType<typeof makeFramework>, x1: tf.Tensor4D, x2: tf.Tensor4D, rng: Rng): number {
  return tf.tidy(() => {
    const any = fw as unknown as Record<string, { apply(x: tf.Tensor, training: boolean): tf.Tensor2D }>;
    const z = (x: tf.Tensor4D) => any.projector.apply(fw.backbone.apply(x, true), true);
    const cfgHeads = (fw as unknown as { opts: { temperature: number } }).opts;
    if (name.startsWith('moco')) {
      const keys = (fw as unknown as { computeTargets(a: tf.Tensor, b: tf.Tensor, r: Rng): tf.Tensor2D[] }).computeTargets(x1, x2, rng)[0];
      return tf.mean(infoNce(z(x1), keys, (fw as unknown as { queue: tf.Tensor2D }).queue, cfgHeads.temperature)).dataSync()[0];
    }
    if (name === 'simclr') return tf.mean(crossViewNce(z(x1), z(x2), cfgHeads.temperature)).dataSync()[0];
    const p1 = any.predictor.apply(z(x1), true);
    if (name === 'byol') {
      const t2 = (fw as unknown as { computeTargets(a: tf.Tensor, b: tf.Tensor): tf.Tensor2D[] }).computeTargets(x1, x2)[1];
      return tf.mean(byolLoss(p1, t2)).dataSync()[0];
    }
    return tf.mean(simsiamLoss(p1, z(x2))).dataSync()[0];
  });
}

for (const name of FRAMEWORKS) {
  test(`${name}: MixMask with λ = 1 adds exactly one more copy of the x1 → x2 loss and no partner term`, async () => {
    const images = await fixedBatch(8);
    const cfg = pretrainConfig(name, 'synthetic', 'smoke');
    const fw = makeFramework(name, cfg.backbone, cfg.heads, 2);
    const { view1, view2 } = twoViews(images, makeRecipe(cfg.recipe, { size: 32 }), new Rng(5));
    // Ratio 0 fills no cell from the partner: the mixed view is x1 itself and λ = 1.
    const views = makeViews(view1, { method: 'mixmask', ratio: 0, gridSize: 4 }, new Rng(6));
    assert.equal(views[0].lambda, 1);
    const { result, grads, targets } = await fw.computeGradients(view1, view2, views, new Rng(7));
    const ref = directional(name, fw, view1, view2, new Rng(7));
    assert.ok(Math.abs(result.terms['mix0.own'] - ref) < 1e-4 * Math.max(1, Math.abs(ref)), `${name}: own term ${result.terms['mix0.own']} vs ${ref}`);
    assert.equal(result.terms['mix0.partner'], 0);
    assert.ok(Math.abs(result.loss - (result.terms.base + ref)) < 1e-4 * Math.max(1, Math.abs(result.loss)));
    if (name.startsWith('moco')) {
      // MoCo's own loss is directional: with λ = 1 the total is exactly twice the base loss.
      assert.ok(Math.abs(result.loss - 2 * result.terms.base) < 1e-4 * Math.abs(result.loss));
    }
    tf.dispose([...Object.values(grads), ...targets, view1, view2, images]);
    disposeViews(views);
    fw.dispose();
  });
}

/** Largest absolute difference between two gradient maps over every parameter. */
function maxGradDiff(a: tf.NamedTensorMap, b: tf.NamedTensorMap): number {
  assert.deepEqual(Object.keys(a).sort(), Object.keys(b).sort());
  return Math.max(...Object.keys(a).map((k) => tf.tidy(() => tf.max(tf.abs(tf.sub(a[k], b[k]))).dataSync()[0])));
}

for (const name of FRAMEWORKS) {
  test(`${name}: asymmetric: false trains one plain term L(x_m → x2) instead of the two λ-weighted ones`, async () => {
    const images = await fixedBatch(8);
    const cfg = pretrainConfig(name, 'synthetic', 'smoke');
    const fw = makeFramework(name, cfg.backbone, cfg.heads, 2);
    const { view1, view2 } = twoViews(images, makeRecipe(cfg.recipe, { size: 32 }), new Rng(5));
    const on = makeViews(view1, { method: 'mixmask', gridSize: 4 }, new Rng(6));
    const off = makeViews(view1, { method: 'mixmask', gridSize: 4, asymmetric: false }, new Rng(6));
    // Same mask and mixed pixels: only the loss differs.
    assert.ok(on[0].lambda > 0 && on[0].lambda < 1, `λ = ${on[0].lambda}`);
    assert.equal(off[0].lambda, on[0].lambda);
    const a = await fw.computeGradients(view1, view2, on, new Rng(7));
    const b = await fw.computeGradients(view1, view2, off, new Rng(7));
    assert.deepEqual(Object.keys(a.result.terms).sort(), ['base', 'mix0.own', 'mix0.partner']);
    assert.deepEqual(Object.keys(b.result.terms).sort(), ['base', 'mix0.plain']);
    assert.ok(Math.abs(a.result.terms.base - b.result.terms.base) < 1e-5 * Math.max(1, Math.abs(a.result.terms.base)));
    // The plain term is the framework's own loss of the mixed view against x2's target, weight 1.
    const ref = directional(name, fw, off[0].mixed, view2, new Rng(7));
    const plain = b.result.terms['mix0.plain'];
    assert.ok(Math.abs(plain - ref) < 1e-4 * Math.max(1, Math.abs(ref)), `${name}: plain term ${plain} vs ${ref}`);
    assert.ok(Math.abs(b.result.loss - (b.result.terms.base + plain)) < 1e-4 * Math.max(1, Math.abs(b.result.loss)));
    // And it changes what is trained.
    const diff = maxGradDiff(a.grads, b.grads);
    assert.ok(diff > 1e-4, `${name}: gradients with the asymmetric loss on and off differ by only ${diff}`);
    tf.dispose([...Object.values(a.grads), ...a.targets, ...Object.values(b.grads), ...b.targets, view1, view2, images]);
    disposeViews([...on, ...off]);
    fw.dispose();
  });
}

test('asymmetric: false is refused where there is no partner term to switch off', () => {
  const x = tf.zeros([4, 8, 8, 3]) as tf.Tensor4D;
  for (const method of ['none', 'erase'] as const) {
    assert.throws(() => makeViews(x, { method, asymmetric: false }, new Rng(1)), new RegExp(`method '${method}' has no partner`));
  }
  const u = makeViews(x, { method: 'unmix', asymmetric: false }, new Rng(1));
  assert.equal(u[0].asymmetric, false);
  const both = makeViews(x, { method: 'both', gridSize: 4, asymmetric: false }, new Rng(1));
  assert.deepEqual(both.map((v) => v.asymmetric), [false, false]);
  disposeViews([...u, ...both]);
  x.dispose();
});

test('"both" adds five terms; erase adds one term without a partner', async () => {
  const images = await fixedBatch(8);
  const cfg = pretrainConfig('byol', 'synthetic', 'smoke');
  const fw = makeFramework('byol', cfg.backbone, cfg.heads, 3);
  const { view1, view2 } = twoViews(images, makeRecipe('byol', { size: 32 }), new Rng(1));
  for (const [method, keys] of [
    ['both', ['base', 'mix0.own', 'mix0.partner', 'mix1.own', 'mix1.partner']],
    ['erase', ['base', 'erase0']],
    ['none', ['base']],
  ] as const) {
    const views = makeViews(view1, { method, gridSize: 4 }, new Rng(2));
    const { result, grads, targets } = await fw.computeGradients(view1, view2, views, new Rng(3));
    assert.deepEqual(Object.keys(result.terms).sort(), [...keys].sort());
    const sum = Object.values(result.terms).reduce((s, v) => s + v, 0);
    assert.ok(Math.abs(result.loss - sum) < 1e-4 * Math.abs(result.loss), `${method}: terms do not add up`);
    tf.dispose([...Object.values(grads), ...targets]);
    disposeViews(views);
  }
  tf.dispose([view1, view2, images]);
  fw.dispose();
});

test('MoCo enqueues normalised keys once per step, wrapping around the queue', async () => {
  const images = await fixedBatch(8);
  const cfg = pretrainConfig('moco-v2', 'synthetic', 'smoke');
  const fw = makeFramework('moco-v2', cfg.backbone, { ...cfg.heads, queueSize: 12 }, 4);
  const queue = (fw as unknown as { queue: tf.Variable }).queue;
  const keys = tf.tidy(() => tf.randomNormal([8, cfg.heads.dim], 0, 1, 'float32', 1) as tf.Tensor2D);
  const before = queue.arraySync() as number[][];
  fw.afterStep([keys], 0, 10);
  fw.afterStep([keys], 1, 10); // 16 keys into 12 slots: rows 0..7, then 8..11 and 0..3
  const after = queue.arraySync() as number[][];
  const kn = (tf.div(keys, tf.norm(keys, 'euclidean', 1, true)).arraySync()) as number[][];
  const close = (a: number[], b: number[]) => a.every((v, i) => Math.abs(v - b[i]) < 1e-6);
  for (let r = 0; r < 4; r++) assert.ok(close(after[r], kn[4 + r]), `row ${r} should hold key ${4 + r} of step 2`);
  for (let r = 4; r < 8; r++) assert.ok(close(after[r], kn[r]), `row ${r} should hold key ${r} of step 1`);
  for (let r = 8; r < 12; r++) assert.ok(close(after[r], kn[r - 8]), `row ${r} should hold key ${r - 8} of step 2`);
  assert.deepEqual(fw.scalars(), { queuePtr: 4 });
  assert.ok(!close(before[0], after[0]));
  tf.dispose([keys, images]);
  fw.dispose();
});
