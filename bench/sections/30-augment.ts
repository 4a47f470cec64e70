/**
 * Two-view augmented batches per second at batch 512, 32×32 and 64×64, through the same path
 * training uses (uint8 batch from memory → float tensor → twoViews). Compared with the training
 * step measured by 10-train: the pipeline must not be what limits a CPU training step.
 */
import * as tf from '@tensorflow/tfjs';
import { Rng } from '../../lib/util/rng';
import { makeRecipe, rawToBatch, syntheticDataset, twoViews, NORMALIZATION, type RecipeName } from '../../lib/data';
import { timeMedian, type BenchContext } from '../harness';

const BATCH = 512;

export async function run(ctx: BenchContext): Promise<void> {
  const train = ctx.results.find((m) => m.name.startsWith('resnet18-cifar train') && m.imgPerSec !== undefined);
  const cases: [number, RecipeName][] = [
    [32, 'mocov2'],
    [32, 'byol'],
    [64, 'mocov2'],
    [64, 'byol'],
  ];
  for (const [size, recipeName] of cases) {
    const ds = syntheticDataset({ size: BATCH, height: size, width: size, seed: size });
    const recipe = makeRecipe(recipeName, { size, normalize: NORMALIZATION.cifar100 });
    const rng = new Rng(1);
    const all = Int32Array.from({ length: BATCH }, (_, i) => i);
    const step = async (): Promise<void> => {
      const b = rawToBatch(await ds.read(all));
      const { view1, view2 } = twoViews(b.images, recipe, rng);
      // A scalar readback waits for the work on asynchronous backends without copying the views.
      const s = tf.tidy(() => tf.add(tf.sum(view1), tf.sum(view2)));
      await s.data();
      tf.dispose([b.images, b.labels, view1, view2, s]);
    };
    const ms = await timeMedian(step, ctx.quick ? 2 : 5, 1);
    const batchesPerSec = 1000 / ms;
    const imgPerSec = batchesPerSec * BATCH;
    const extra: Record<string, number | string> = { 'batches/s': batchesPerSec.toFixed(2), recipe: recipeName, views: 2 };
    if (train?.imgPerSec) {
      extra['train img/s'] = train.imgPerSec.toFixed(1);
      // Share of a training step's wall time spent preparing its batch, were it not overlapped.
      extra['pipeline/train time'] = `${((100 * train.imgPerSec) / imgPerSec).toFixed(1)}%`;
    }
    ctx.report({ name: `augment two-view ${size}px ${recipeName}`, backend: ctx.backend, batch: BATCH, imgPerSec, ms, peer: null, peerImgPerSec: null, ratio: null, extra });
  }
}
