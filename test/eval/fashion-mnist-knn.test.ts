import { test, before } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FASHION_MNIST_DEBIAN_DIR, loadFashionMnist } from '../../lib/data';
import { knnNeighbours, knnVote } from '../../lib/eval';
import { useBackend } from '../helpers';

before(() => useBackend('wasm'));

const present = fs.existsSync(path.join(FASHION_MNIST_DEBIAN_DIR, 'train-images-idx3-ubyte.gz'));

// docs/method.md#knn-monitor: an independent implementation on raw Fashion-MNIST pixels (784-d, L2-normalised,
// bank = 60k train, query = 10k test) gives 78.85 % (k = 200, T = 0.1) and 84.59 % (k = 20,
// T = 0.07). One neighbour search with k = 200 serves both settings.
test('Fashion-MNIST raw-pixel kNN matches the reference numbers', { skip: present ? false : `no ${FASHION_MNIST_DEBIAN_DIR} (apt-get install dataset-fashion-mnist)` }, async () => {
  const train = loadFashionMnist('train');
  const test10k = loadFashionMnist('test');
  assert.equal(train.size, 60000);
  assert.equal(test10k.size, 10000);
  const t0 = Date.now();
  const nb = await knnNeighbours({ data: Float32Array.from(train.pixels), dim: 784 }, { data: Float32Array.from(test10k.pixels), dim: 784 }, { k: 200 });
  const seconds = (Date.now() - t0) / 1000;
  const a = knnVote(nb, train.labels, test10k.labels, { k: 200, t: 0.1 });
  const b = knnVote(nb, train.labels, test10k.labels, { k: 20, t: 0.07 });
  console.log(`# fashion-mnist raw kNN: k=200 T=0.1 top-1 ${a.top1.toFixed(2)} top-5 ${a.top5.toFixed(2)}; k=20 T=0.07 top-1 ${b.top1.toFixed(2)} top-5 ${b.top5.toFixed(2)}; search ${seconds.toFixed(1)} s`);
  assert.ok(Math.abs(a.top1 - 78.85) <= 0.1, `k=200 T=0.1: top-1 ${a.top1}, expected 78.85 ± 0.1`);
  assert.ok(Math.abs(b.top1 - 84.59) <= 0.1, `k=20 T=0.07: top-1 ${b.top1}, expected 84.59 ± 0.1`);
});
