import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as tf from '@tensorflow/tfjs';
import {
  blockGrid,
  boxLambda,
  cellIndex,
  cutmixBox,
  disposeViews,
  flipIndex,
  inverseIndex,
  makeView,
  permuteRows,
  makeViews,
  mixWithPartner,
  partnerShares,
  permutationIndex,
  pixelLambda,
  upsampleGrid,
  View,
} from '../../lib/masks';
import { Rng } from '../../lib/util/rng';
import { tensorCounts, useBackend } from '../helpers';

before(() => useBackend('wasm'));

/** A batch whose every value tells which image it came from: x[n, y, x, c] = 1000·n + small unique part. */
function labelledBatch(n: number, h: number, w: number, c = 3): tf.Tensor4D {
  const data = new Float32Array(n * h * w * c);
  for (let i = 0; i < data.length; i++) {
    const img = Math.floor(i / (h * w * c));
    data[i] = 1000 * img + ((i % (h * w * c)) % 997) / 997;
  }
  return tf.tensor4d(data, [n, h, w, c]);
}

/** Checks pixel by pixel that M = 1 holds exactly x[i] and M = 0 exactly x[partner[i]]; returns own-pixel shares. */
function checkMix(x: tf.Tensor4D, view: View): number[] {
  const [n, h, w, c] = x.shape;
  const xs = x.dataSync();
  const ms = view.mixed.dataSync();
  const mask = view.mask!.dataSync();
  const perSample = view.mask!.shape[0] === n;
  const shares: number[] = [];
  for (let i = 0; i < n; i++) {
    let own = 0;
    for (let p = 0; p < h * w; p++) {
      const m = mask[(perSample ? i : 0) * h * w + p];
      assert.ok(m === 0 || m === 1);
      own += m;
      const src = m === 1 ? i : view.partnerIndex![i];
      for (let ch = 0; ch < c; ch++) {
        assert.equal(ms[(i * h * w + p) * c + ch], xs[(src * h * w + p) * c + ch]);
      }
    }
    shares.push(own / (h * w));
  }
  return shares;
}

test('MixMask view: partner pixels exactly where M = 0; λ = share of own pixels, exactly', () => {
  const rng = new Rng(7);
  for (const [size, g] of [[32, 8], [64, 8], [224, 8], [32, 5], [37, 6], [16, 16]]) {
    const x = labelledBatch(4, size, size);
    for (const maskType of ['block', 'discrete'] as const) {
      for (const perSample of [false, true]) {
        const v = makeView(x, { method: 'mixmask', maskType, gridSize: g, ratio: 0.5, perSample }, rng);
        assert.deepEqual(v.mixed.shape, x.shape);
        assert.deepEqual(v.mask!.shape, [perSample ? 4 : 1, size, size, 1]);
        const shares = checkMix(x, v);
        for (let i = 0; i < 4; i++) {
          assert.equal(shares[i], v.lambdas[i], `size ${size} g ${g} ${maskType} sample ${i}`);
          assert.equal(v.lambdas[i], pixelLambda(v.grids![perSample ? i : 0], size, size));
        }
        const mean = shares.reduce((a, b) => a + b, 0) / 4;
        assert.ok(Math.abs(v.lambda - mean) < 1e-12);
        if (!perSample) assert.ok(shares.every((s) => s === shares[0]));
        // λ is realised, not requested: at g = 5, 37 px etc. it differs from 0.5.
        if (g === 8 && size % g === 0 && v.grids!.every((gr) => gr.filled === 32)) assert.equal(v.lambda, 0.5);
        v.mixed.dispose();
        v.mask!.dispose();
      }
    }
    x.dispose();
  }
});

test('upsampleGrid maps every pixel to the cell holding its centre (equal and unequal cells)', () => {
  const rng = new Rng(19);
  for (const [h, w, g] of [[32, 32, 8], [224, 224, 8], [64, 32, 16], [32, 32, 5], [37, 50, 6], [8, 8, 8], [3, 3, 1]]) {
    const grids = [blockGrid(g, 0.5, rng), blockGrid(g, 0.3, rng)];
    const up = upsampleGrid(grids, h, w);
    assert.deepEqual(up.shape, [2, h, w, 1]);
    const data = up.dataSync();
    const ri = cellIndex(h, g);
    const ci = cellIndex(w, g);
    for (let b = 0; b < 2; b++) for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
      assert.equal(data[(b * h + y) * w + x], grids[b].keep[ri[y] * g + ci[x]]);
    }
    up.dispose();
  }
});

test('per-sample masks differ between samples; one mask per batch is shared', () => {
  const x = labelledBatch(8, 32, 32);
  const v = makeView(x, { method: 'mixmask', perSample: true }, new Rng(8));
  const keys = new Set(v.grids!.map((gr) => gr.keep.join('')));
  assert.ok(keys.size > 1);
  disposeViews([v]);
  const u = makeView(x, { method: 'mixmask' }, new Rng(8));
  assert.equal(u.grids!.length, 1);
  disposeViews([u]);
  x.dispose();
});

test('partner index: flip by default, permutation on request; inverse ∘ partner = identity', () => {
  const x = labelledBatch(6, 8, 8, 1);
  const f = makeView(x, { method: 'mixmask', gridSize: 4 }, new Rng(9));
  assert.deepEqual(Array.from(f.partnerIndex!), [5, 4, 3, 2, 1, 0]);
  assert.deepEqual(Array.from(f.inverseIndex!), [5, 4, 3, 2, 1, 0]);
  checkMix(x, f);
  disposeViews([f]);
  const p = makeView(x, { method: 'mixmask', gridSize: 4, partner: 'permutation' }, new Rng(9));
  checkMix(x, p);
  for (let i = 0; i < 6; i++) {
    assert.equal(p.inverseIndex![p.partnerIndex![i]], i);
    assert.equal(p.partnerIndex![p.inverseIndex![i]], i);
  }
  disposeViews([p]);
  const rng = new Rng(10);
  for (let t = 0; t < 50; t++) {
    const perm = permutationIndex(17, rng);
    const inv = inverseIndex(perm);
    for (let i = 0; i < 17; i++) assert.equal(perm[inv[i]], i);
  }
  assert.throws(() => inverseIndex(Int32Array.from([0, 0, 1])), /permutation of 0\.\.2; entry 1 is 0/);
  x.dispose();
});

test('re-indexing the mixed outputs lines the partner term up with the partner images', () => {
  // Stand-in "outputs": the mixed batch itself; gathering it by inverseIndex must put, at row j,
  // the view whose filled pixels come from image j.
  const x = labelledBatch(5, 8, 8, 1);
  const v = makeView(x, { method: 'mixmask', gridSize: 4, partner: 'permutation', perSample: true }, new Rng(11));
  const re = tf.gather(v.mixed, tf.tensor1d(v.inverseIndex!, 'int32'));
  const data = re.dataSync();
  const mask = v.mask!.dataSync();
  for (let j = 0; j < 5; j++) {
    const i = v.inverseIndex![j];
    for (let p = 0; p < 64; p++) {
      if (mask[i * 64 + p] === 0) assert.equal(Math.floor(data[j * 64 + p] / 1000), j);
    }
  }
  const shares = partnerShares(v);
  for (let j = 0; j < 5; j++) assert.equal(shares[j], 1 - v.lambdas[v.inverseIndex![j]]);
  re.dispose();
  disposeViews([v]);
  x.dispose();
});

test('erase fills M = 0 with the fill value (scalar or per channel) and has no partner', () => {
  const x = labelledBatch(3, 16, 16);
  const fill = [0.25, 0.5, 0.75];
  const v = makeView(x, { method: 'erase', gridSize: 4, fill }, new Rng(12));
  assert.equal(v.partnerIndex, null);
  assert.equal(v.inverseIndex, null);
  assert.throws(() => partnerShares(v), /no partner/);
  const xs = x.dataSync();
  const ms = v.mixed.dataSync();
  const mask = v.mask!.dataSync();
  let own = 0;
  for (let i = 0; i < 3; i++) {
    for (let p = 0; p < 256; p++) {
      for (let c = 0; c < 3; c++) {
        const k = (i * 256 + p) * 3 + c;
        assert.equal(ms[k], mask[p] === 1 ? xs[k] : Math.fround(fill[c]));
      }
      if (i === 0) own += mask[p];
    }
  }
  assert.equal(v.lambda, own / 256);
  disposeViews([v]);
  const z = makeView(x, { method: 'erase', gridSize: 4 }, new Rng(12));
  const zs = z.mixed.dataSync();
  const zm = z.mask!.dataSync();
  for (let p = 0; p < 256; p++) if (zm[p] === 0) assert.equal(zs[p * 3], 0);
  disposeViews([z]);
  assert.throws(() => makeView(x, { method: 'erase', fill: [1, 2] }, new Rng(1)), /fill must be a number or 3 per-channel values, got 2/);
  x.dispose();
});

test('Un-Mix CutMix: λ equals the share of pixels outside the pasted (clipped) box', () => {
  const rng = new Rng(13);
  const x = labelledBatch(4, 32, 32, 1);
  let cutmix = 0;
  let mixup = 0;
  for (let t = 0; t < 40; t++) {
    const v = makeView(x, { method: 'unmix' }, rng);
    assert.deepEqual(Array.from(v.partnerIndex!), [3, 2, 1, 0]);
    if (v.kind === 'unmix-cutmix') {
      cutmix++;
      const shares = checkMix(x, v);
      assert.equal(v.lambda, shares[0]);
      const b = v.box!;
      assert.equal(v.lambda, 1 - ((b.y1 - b.y0) * (b.x1 - b.x0)) / 1024);
      // Pasted region = exactly the box.
      const mask = v.mask!.dataSync();
      for (let y = 0; y < 32; y++) for (let xx = 0; xx < 32; xx++) {
        const inside = y >= b.y0 && y < b.y1 && xx >= b.x0 && xx < b.x1;
        assert.equal(mask[y * 32 + xx], inside ? 0 : 1);
      }
    } else {
      mixup++;
      assert.equal(v.mask, null);
      const xs = x.dataSync();
      const ms = v.mixed.dataSync();
      const lam = v.lambda;
      for (let i = 0; i < 4; i++) for (let p = 0; p < 1024; p += 37) {
        const want = lam * xs[i * 1024 + p] + (1 - lam) * xs[(3 - i) * 1024 + p];
        assert.ok(Math.abs(ms[i * 1024 + p] - want) <= 1e-3, `mixup pixel ${ms[i * 1024 + p]} vs ${want}`);
      }
    }
    disposeViews([v]);
  }
  assert.ok(cutmix > 5 && mixup > 5, `cutmix ${cutmix}, mixup ${mixup}`);
  // unmixProb 0 → always CutMix, 1 → always mixup.
  for (const [prob, kind] of [[0, 'unmix-cutmix'], [1, 'unmix-mixup']] as const) {
    const v = makeView(x, { method: 'unmix', unmixProb: prob }, rng);
    assert.equal(v.kind, kind);
    disposeViews([v]);
  }
  x.dispose();
});

test('CutMix box: side sqrt(1 − λu) of the image before clipping, clipped at borders', () => {
  const rng = new Rng(14);
  let clipped = 0;
  for (let t = 0; t < 2000; t++) {
    const lam = rng.beta(1, 1);
    const b = cutmixBox(32, 48, lam, rng);
    assert.ok(b.y0 >= 0 && b.y1 <= 32 && b.x0 >= 0 && b.x1 <= 48 && b.y0 <= b.y1 && b.x0 <= b.x1);
    const h = Math.floor(32 * Math.sqrt(1 - lam));
    const w = Math.floor(48 * Math.sqrt(1 - lam));
    assert.ok(b.y1 - b.y0 <= h && b.x1 - b.x0 <= w);
    if (b.y1 - b.y0 < h || b.x1 - b.x0 < w) clipped++;
    else assert.ok(Math.abs(boxLambda(b, 32, 48) - (1 - (h * w) / (32 * 48))) < 1e-12);
  }
  assert.ok(clipped > 100, 'boxes near the border are clipped');
});

test('"both": an Un-Mix view with the flip and a MixMask view with a permutation', () => {
  const x = labelledBatch(8, 32, 32, 1);
  const views = makeViews(x, { method: 'both', maskType: 'block' }, new Rng(15));
  assert.equal(views.length, 2);
  assert.ok(views[0].kind.startsWith('unmix'));
  assert.deepEqual(Array.from(views[0].partnerIndex!), [7, 6, 5, 4, 3, 2, 1, 0]);
  assert.equal(views[1].kind, 'mixmask');
  checkMix(x, views[1]);
  for (let i = 0; i < 8; i++) assert.equal(views[1].inverseIndex![views[1].partnerIndex![i]], i);
  disposeViews(views);
  assert.deepEqual(makeViews(x, { method: 'none' }, new Rng(1)), []);
  assert.throws(() => makeView(x, { method: 'both' }, new Rng(1)), /makeView needs a one-view method/);
  x.dispose();
});

test('the same seed reproduces the same views', () => {
  const x = labelledBatch(4, 32, 32, 1);
  for (const method of ['mixmask', 'unmix', 'both', 'erase'] as const) {
    for (let seed = 0; seed < 5; seed++) {
      const a = makeViews(x, { method, perSample: true, maskType: 'discrete' }, new Rng(seed));
      const b = makeViews(x, { method, perSample: true, maskType: 'discrete' }, new Rng(seed));
      assert.equal(a.length, b.length);
      for (let k = 0; k < a.length; k++) {
        assert.deepEqual(a[k].lambdas, b[k].lambdas);
        assert.deepEqual(a[k].partnerIndex, b[k].partnerIndex);
        assert.deepEqual(a[k].mixed.dataSync(), b[k].mixed.dataSync());
      }
      disposeViews(a);
      disposeViews(b);
    }
  }
  x.dispose();
});

test('spec validation names the argument and its value', () => {
  const x = tf.zeros([2, 32, 32, 3]) as tf.Tensor4D;
  const rng = new Rng(16);
  const bad: Array<[object, RegExp]> = [
    [{ method: 'mixmask', gridSize: 0 }, /gridSize must be an integer ≥ 1, got 0/],
    [{ method: 'mixmask', gridSize: 7.5 }, /gridSize must be an integer ≥ 1, got 7\.5/],
    [{ method: 'mixmask', ratio: 1.01 }, /ratio must be a number in \[0, 1\], got 1\.01/],
    [{ method: 'mixmask', ratio: -1 }, /ratio must be a number in \[0, 1\], got -1/],
    [{ method: 'mixmask', gridSize: 33 }, /image height 32 is smaller than gridSize 33/],
    [{ method: 'unmix', unmixProb: 2 }, /unmixProb must be a number in \[0, 1\], got 2/],
    [{ method: 'mixup' }, /method must be one of .*got "mixup"/],
    [{ method: 'mixmask', partner: 'random' }, /partner must be 'flip' or 'permutation', got "random"/],
  ];
  const before = tf.memory().numTensors;
  for (const [spec, re] of bad) assert.throws(() => makeViews(x, spec as never, rng), re);
  assert.equal(tf.memory().numTensors, before, 'failed calls leak no tensors');
  assert.throws(() => makeViews(tf.zeros([32, 32, 3]) as never, { method: 'mixmask' }, rng), /x must be a \[N, H, W, C\] batch, got shape \[32, 32, 3\]/);
  assert.throws(() => upsampleGrid(blockGrid(8, 0.5, rng), 32, 7), /image width 7 is smaller than gridSize 8/);
  const m = tf.ones([1, 16, 16, 1]) as tf.Tensor4D;
  assert.throws(() => mixWithPartner(x, m, flipIndex(2)), /mask shape \[1, 16, 16, 1\] does not fit batch \[2, 32, 32, 3\]/);
  m.dispose();
  x.dispose();
});

test('no tensor leaks across many makeViews calls', async () => {
  const x = tf.randomUniform([16, 32, 32, 3]) as tf.Tensor4D;
  const rng = new Rng(17);
  const methods = ['mixmask', 'erase', 'unmix', 'both'] as const;
  const counts = await tensorCounts(40, (step) => {
    const views = makeViews(x, { method: methods[step % 4], perSample: step % 3 === 0, partner: step % 5 === 0 ? 'permutation' : 'flip' }, rng);
    disposeViews(views);
  });
  assert.ok(counts.every((c) => c === counts[0]), `tensor counts drift: ${counts.join(',')}`);
  x.dispose();
});

test('same results on the cpu backend (the ops are backend-independent)', async () => {
  const run = () => {
    const x = labelledBatch(4, 32, 32);
    const views = makeViews(x, { method: 'both', perSample: true }, new Rng(18));
    const out = views.map((v) => Array.from(v.mixed.dataSync()));
    disposeViews(views);
    x.dispose();
    return out;
  };
  const wasm = run();
  await useBackend('cpu');
  try {
    const cpu = run();
    assert.equal(cpu.length, wasm.length);
    for (let k = 0; k < cpu.length; k++) {
      // The MixMask view (a select) is bit-exact; the Un-Mix mixup is arithmetic, allow rounding.
      for (let i = 0; i < cpu[k].length; i++) assert.ok(Math.abs(cpu[k][i] - wasm[k][i]) <= 1e-3 * Math.max(1, Math.abs(cpu[k][i])));
    }
  } finally {
    await useBackend('wasm');
  }
});

test('permuteRows: gather (or reverse for the flip) forward, inverse-permutation gradient, rejects non-permutations', () => {
  const rows = [[1, 0, 2], [0.5, -1, 0], [2, 2, -1]];
  const x = tf.tensor2d(rows);
  const wRows = [[1, 2, 3], [4, 5, 6], [7, 8, 9]];
  const w = tf.tensor2d(wRows);
  for (const perm of [Int32Array.from([2, 0, 1]), Int32Array.from([2, 1, 0])]) {
    const y = permuteRows(x, perm);
    assert.deepEqual(Array.from(y.dataSync()), [...perm].flatMap((p) => rows[p]));
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(permuteRows(v as tf.Tensor2D, perm), w)))(x);
    // d/dx Σ w ⊙ x[perm]: row perm[i] of the gradient is row i of w.
    const ref = new Array<number[]>(3);
    perm.forEach((p, i) => (ref[p] = wRows[i]));
    assert.deepEqual(Array.from(g.dataSync()), ref.flat());
    tf.dispose([y, g]);
  }
  const before = tf.memory().numTensors;
  permuteRows(x, Int32Array.from([1, 2, 0])).dispose();
  assert.equal(tf.memory().numTensors, before, 'no index tensor left behind');
  assert.throws(() => permuteRows(x, Int32Array.from([0, 0, 1])), /index 0 at position 1 makes this no permutation of 0..2/);
  assert.throws(() => permuteRows(x, Int32Array.from([0, 1])), /permuteRows: 2 indices for 3 rows/);
  tf.dispose([x, w]);
});
