import { test, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as os from 'node:os';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { tensorCounts, useBackend } from '../helpers';
import { Rng } from '../../lib/util/rng';
import {
  DataLoader,
  READY_MARKER,
  dataRoot,
  makeRecipe,
  prepareDataset,
  rawToBatch,
  syntheticDataset,
  twoViewEpoch,
  type Dataset,
  type RawBatch,
  type RemoteDataset,
} from '../../lib/data';

before(async () => {
  await useBackend('wasm');
});

test('rawToBatch: grayscale becomes three equal channels, bit for bit the scaled bytes the tensor ops give; RGB is scaled as is', async () => {
  const pixels = Uint8Array.from({ length: 2 * 3 * 5 }, (_, i) => (i * 37) % 256);
  const grey = rawToBatch({ pixels, labels: Int32Array.from([4, 7]), indices: Int32Array.from([0, 1]), n: 2, height: 3, width: 5, channels: 1 });
  assert.deepEqual(grey.images.shape, [2, 3, 5, 3]);
  const want = tf.tidy(() => tf.tile(tf.mul(tf.tensor4d(new Float32Array(pixels), [2, 3, 5, 1]), 1 / 255), [1, 1, 1, 3]));
  assert.deepEqual(Array.from(await grey.images.data()), Array.from(await want.data()));
  const rgb = rawToBatch({ pixels, labels: Int32Array.from([1, 2]), indices: Int32Array.from([0, 1]), n: 2, height: 1, width: 5, channels: 3 });
  assert.deepEqual(Array.from(await rgb.images.data()), Array.from(pixels, (p) => Math.fround(p * Math.fround(1 / 255))));
  tf.dispose([grey.images, grey.labels, want, rgb.images, rgb.labels]);
});

test('DataLoader: each epoch is a seeded permutation, batches complete, labels follow indices', async () => {
  const ds = syntheticDataset({ size: 50, seed: 1 });
  const loader = new DataLoader(ds, { batchSize: 16, seed: 3 });
  assert.equal(loader.batchesPerEpoch, 3);
  const seen: number[] = [];
  for await (const b of loader) {
    assert.deepEqual(b.images.shape, [16, 32, 32, 3]);
    const labels = await b.labels.data();
    b.indices.forEach((i, k) => assert.equal(labels[k], ds.label(i)));
    seen.push(...b.indices);
    tf.dispose([b.images, b.labels]);
  }
  assert.equal(seen.length, 48);
  assert.equal(new Set(seen).size, 48);
  const firstEpoch = seen.slice();
  const second: number[] = [];
  for await (const b of loader) {
    second.push(...b.indices);
    tf.dispose([b.images, b.labels]);
  }
  assert.notDeepEqual(second, firstEpoch, 'a new order each epoch');
  const replay: number[] = [];
  for await (const b of new DataLoader(ds, { batchSize: 16, seed: 3 })) {
    replay.push(...b.indices);
    tf.dispose([b.images, b.labels]);
  }
  assert.deepEqual(replay, firstEpoch, 'same seed, same order');
  const ordered = new DataLoader(ds, { batchSize: 16, shuffle: false });
  const sizes: number[] = [];
  for await (const b of ordered) {
    sizes.push(b.images.shape[0]);
    tf.dispose([b.images, b.labels]);
  }
  assert.deepEqual(sizes, [16, 16, 16, 2]);
});

/** A dataset whose reads take time, recording when each starts and ends. */
class SlowDataset implements Dataset {
  readonly name = 'slow';
  readonly size = 40;
  readonly numClasses = 2;
  readonly classNames = ['a', 'b'];
  readonly height = 4;
  readonly width = 4;
  readonly channels = 1 as const;
  starts: number[] = [];
  failAt = -1;
  label(i: number): number {
    return i % 2;
  }
  async read(indices: ArrayLike<number>): Promise<RawBatch> {
    const call = this.starts.length;
    this.starts.push(Date.now());
    await new Promise((r) => setTimeout(r, 30));
    if (call === this.failAt) throw new Error(`slow: cannot read batch ${call}`);
    const n = indices.length;
    return { pixels: new Uint8Array(n * 16).fill(255), labels: Int32Array.from(indices, (i) => i % 2), indices: Int32Array.from(indices), n, height: 4, width: 4, channels: 1 };
  }
}

test('prefetch: the next reads run while the consumer works; errors surface at their batch; breaking out leaks nothing', async () => {
  const ds = new SlowDataset();
  const loader = new DataLoader(ds, { batchSize: 8, shuffle: false, prefetch: 2 });
  const t0 = Date.now();
  let n = 0;
  for await (const b of loader) {
    // 1-channel storage comes out as 3 equal channels in [0,1].
    assert.deepEqual(b.images.shape, [8, 4, 4, 3]);
    assert.equal((await b.images.data())[5], 1);
    tf.dispose([b.images, b.labels]);
    await new Promise((r) => setTimeout(r, 30)); // "training"
    n++;
  }
  const elapsed = Date.now() - t0;
  assert.equal(n, 5);
  // Serial would be 5 × (30 read + 30 train) = 300 ms; overlapped ≈ 30 + 5 × 30.
  assert.ok(elapsed < 270, `reads overlapped with work (${elapsed} ms)`);
  assert.ok(ds.starts[2] - ds.starts[0] < 25, 'three reads were in flight at once at the start');

  const failing = new SlowDataset();
  failing.failAt = 3;
  const got: number[] = [];
  await assert.rejects(
    (async () => {
      for await (const b of new DataLoader(failing, { batchSize: 8, shuffle: false })) {
        got.push(b.indices[0]);
        tf.dispose([b.images, b.labels]);
      }
    })(),
    /slow: cannot read batch 3/,
  );
  assert.deepEqual(got, [0, 8, 16]);

  const before = tf.memory().numTensors;
  for await (const b of new DataLoader(new SlowDataset(), { batchSize: 8, shuffle: false })) {
    tf.dispose([b.images, b.labels]);
    break;
  }
  assert.equal(tf.memory().numTensors, before);
});

test('twoViewEpoch: two augmented views per batch, tensor count flat across steps', async () => {
  const ds = syntheticDataset({ size: 64, seed: 2 });
  const loader = new DataLoader(ds, { batchSize: 16, seed: 1 });
  const recipe = makeRecipe('byol', { size: 32 });
  const rng = new Rng(5);
  const baseline = tf.memory().numTensors;
  const counts = await tensorCounts(3, async () => {
    for await (const b of twoViewEpoch(loader, recipe, rng)) {
      assert.deepEqual(b.view1.shape, [16, 32, 32, 3]);
      assert.deepEqual(b.view2.shape, [16, 32, 32, 3]);
      assert.equal(tf.memory().numTensors, baseline + 3);
      tf.dispose([b.view1, b.view2, b.labels]);
    }
  });
  assert.deepEqual(counts, [baseline, baseline, baseline]);
});

test('prepareDataset: md5-verified download via a temp file, extraction, marker; re-run is a no-op; bad checksum and offline are clear', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-dl-'));
  const src = path.join(dir, 'src');
  fs.mkdirSync(path.join(src, 'toy-data'), { recursive: true });
  fs.writeFileSync(path.join(src, 'toy-data', 'train.bin'), 'hello');
  const archive = path.join(dir, 'toy.tar.gz');
  assert.equal(spawnSync('tar', ['-czf', archive, '-C', src, 'toy-data']).status, 0);
  const bytes = fs.readFileSync(archive);
  const md5 = crypto.createHash('md5').update(bytes).digest('hex');
  let hits = 0;
  const server = http.createServer((req, res) => {
    hits++;
    res.writeHead(200, { 'content-length': bytes.length });
    res.end(bytes);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  try {
    const root = path.join(dir, 'datasets');
    const spec: RemoteDataset = {
      id: 'toy', title: 'Toy', url: `http://127.0.0.1:${port}/toy.tar.gz`, md5, archive: 'toy.tar.gz', folder: 'toy-data',
      expect: ['train.bin'], format: 'tar.gz', approxMB: 0,
    };
    const logs: string[] = [];
    const folder = await prepareDataset(spec, { root, log: (l) => logs.push(l) });
    assert.equal(fs.readFileSync(path.join(folder, 'train.bin'), 'utf8'), 'hello');
    assert.ok(fs.existsSync(path.join(folder, READY_MARKER)));
    assert.ok(fs.existsSync(path.join(root, 'downloads', 'toy.tar.gz')));
    assert.deepEqual(fs.readdirSync(path.join(root, 'downloads')), ['toy.tar.gz'], 'no .part file left');
    await prepareDataset(spec, { root, log: (l) => logs.push(l) });
    assert.equal(hits, 1, 're-run does not download again');
    assert.match(logs.at(-1)!, /ready/);

    // Wrong checksum: the partial file is discarded, nothing is marked.
    const root2 = path.join(dir, 'datasets2');
    await assert.rejects(prepareDataset({ ...spec, md5: '0'.repeat(32) }, { root: root2, log: () => undefined }), /md5 [0-9a-f]{32}, expected 0{32}; file discarded/);
    assert.deepEqual(fs.readdirSync(path.join(root2, 'downloads')), []);
    // An archive placed by hand is verified, then extracted.
    fs.copyFileSync(archive, path.join(root2, 'downloads', 'toy.tar.gz'));
    await prepareDataset(spec, { root: root2, log: () => undefined, fetchImpl: () => Promise.reject(new Error('must not fetch')) });
    assert.ok(fs.existsSync(path.join(root2, 'toy-data', READY_MARKER)));
    // Offline: the message says what to download and where to put it.
    const failingFetch = (() => Promise.reject(new TypeError('fetch failed'))) as typeof fetch;
    await assert.rejects(prepareDataset(spec, { root: path.join(dir, 'd3'), log: () => undefined, fetchImpl: failingFetch }), (e: Error) =>
      e.message.includes(spec.url) && e.message.includes(md5) && e.message.includes(path.join(dir, 'd3', 'downloads', 'toy.tar.gz')));
  } finally {
    server.close();
    fs.rmSync(dir, { recursive: true });
  }
});

test('dataRoot honours MIXMASK_DATA and defaults to data/datasets in the repository', () => {
  assert.equal(dataRoot({ MIXMASK_DATA: '/x/y' }), '/x/y');
  assert.match(dataRoot({}), /data[\\/]datasets$/);
});
