/**
 * kNN evaluation at the monitor's scale: a 50,000-image bank (CIFAR train) against 10,000
 * queries (CIFAR test), 512-d features (ResNet-18), k = 200, T = 0.1. Goal here: under 60 s.
 * Features are random (the search does not care), so this times the search alone.
 */
import * as tf from '@tensorflow/tfjs';
import { knnClassify } from '../../lib/eval';
import { Rng } from '../../lib/util/rng';
import type { BenchContext } from '../harness';

export async function run(ctx: BenchContext): Promise<void> {
  const bankN = ctx.quick ? 10_000 : 50_000;
  const queryN = ctx.quick ? 2_000 : 10_000;
  const dim = 512;
  const classes = 100;
  const bank = tf.randomNormal([bankN, dim], 0, 1, 'float32', 1) as tf.Tensor2D;
  const query = tf.randomNormal([queryN, dim], 0, 1, 'float32', 2) as tf.Tensor2D;
  const rng = new Rng(3);
  const bankLabels = Int32Array.from({ length: bankN }, () => rng.int(classes));
  const queryLabels = Int32Array.from({ length: queryN }, () => rng.int(classes));
  await Promise.all([bank.data(), query.data()]);
  const t0 = process.hrtime.bigint();
  const res = await knnClassify(bank, bankLabels, query, queryLabels, { k: 200, t: 0.1, numClasses: classes });
  const ms = Number(process.hrtime.bigint() - t0) / 1e6;
  tf.dispose([bank, query]);
  const gflop = (2 * bankN * queryN * dim) / 1e9;
  ctx.report({
    name: `knn ${bankN / 1000}k×${queryN / 1000}k×${dim}`,
    backend: ctx.backend,
    batch: queryN,
    ms,
    imgPerSec: (1000 * queryN) / ms,
    peer: null,
    peerImgPerSec: null,
    ratio: null,
    extra: {
      'GFLOP/s (similarities)': (gflop / (ms / 1000)).toFixed(1),
      threads: ctx.threads,
      'goal': ctx.quick ? 'n/a (--quick)' : `< 60 s: ${ms < 60_000 ? 'met' : 'missed'}`,
      'top-1 (chance 1%)': res.top1.toFixed(2),
    },
  });
}
