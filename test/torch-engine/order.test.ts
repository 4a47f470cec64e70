/**
 * The PyTorch engine trains on the images our trainer trains on, in the same order: the
 * validation split held out (lib/data/split.ts), the seeded subset and every epoch's shuffle
 * (lib/train/trainer.ts), dealt to 2 ranks so that their batches concatenated are our batch.
 */
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { validationSplit } from '../../lib/data/split';
import { loadFashionMnist } from '../../lib/data/idx';
import { FASHION_MNIST_DEBIAN_DIR } from '../../lib/data/paths';
import { pretrainConfig } from '../../lib/presets';
import { streamSeed } from '../../lib/train/trainer';
import { Rng } from '../../lib/util/rng';
import { helper, skip as noTorch } from './common';

const hasData = fs.existsSync(path.join(FASHION_MNIST_DEBIAN_DIR, 'train-images-idx3-ubyte.gz'));
const skip = noTorch || (!hasData && !process.env.CI ? `needs Debian's dataset-fashion-mnist in ${FASHION_MNIST_DEBIAN_DIR}` : false);

test('torch engine: the same training images and epoch order as our trainer, dealt to 2 ranks', { skip }, () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mixmask-torch-order-'));
  try {
    const config = { ...pretrainConfig('byol', 'fashion-mnist', 'smoke'), seed: 5, trainSubset: 96 };
    assert.ok(config.validation, 'the smoke profile holds out a validation split');
    const streams = [[5, -1, -1, 0], [0, 0, 0, 2], [3, 7, 11, 2], [2 ** 31 + 5, 1000, -1, 1]];
    const out = path.join(dir, 'order.json');
    helper('order', { config, world: 2, out, streams });
    const got = JSON.parse(fs.readFileSync(out, 'utf8')) as { indices: number[]; epoch0: number[]; streamSeeds: number[] };
    assert.deepEqual(got.streamSeeds, streams.map(([s, e, st, k]) => streamSeed(s, e, st, k)));

    const train = loadFashionMnist('train');
    const rest = validationSplit(train, config.validation!).rest;
    const n = config.trainSubset;
    const subset = Array.from(new Rng(streamSeed(config.seed, -1, -1, 0)).permutation(rest.size).slice(0, n), (i) => rest.indices[i]);
    assert.deepEqual(got.indices, subset);
    const order = Array.from(new Rng(streamSeed(config.seed, 0, -1, 1)).permutation(n), (i) => subset[i]);
    const steps = Math.floor(n / config.batchSize);
    assert.deepEqual(got.epoch0, order.slice(0, steps * config.batchSize));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
