/**
 * Mask generation + mixing for one CIFAR batch (paper's batch 512, 32×32×3), per view method,
 * and its share of a training step when the train section ran before it (goal: < 2%).
 */
import * as tf from '@tensorflow/tfjs';
import { disposeViews, makeGrids, makeViews, ViewSpec } from '../../lib/masks';
import { Rng } from '../../lib/util/rng';
import { BenchContext, timeMedian } from '../harness';

const TRAIN_NAME = 'resnet18-cifar train';

export async function run(ctx: BenchContext): Promise<void> {
  const batch = 512;
  const reps = ctx.quick ? 5 : 20;
  const x = tf.randomUniform([batch, 32, 32, 3]) as tf.Tensor4D;
  const rng = new Rng(0);
  const train = ctx.results.find((m) => m.name === TRAIN_NAME && m.imgPerSec !== undefined && m.imgPerSec > 0);
  // The step time at batch 512 from the measured throughput (the train section may run a
  // smaller batch; throughput is what carries over).
  const stepMs = train ? (batch / train.imgPerSec!) * 1000 : null;

  const cases: Array<[string, ViewSpec]> = [
    ['mixmask block', { method: 'mixmask', maskType: 'block' }],
    ['mixmask discrete', { method: 'mixmask', maskType: 'discrete' }],
    ['mixmask block per-sample', { method: 'mixmask', maskType: 'block', perSample: true }],
    ['unmix', { method: 'unmix' }],
    ['both', { method: 'both' }],
    ['erase', { method: 'erase' }],
  ];
  for (const [label, spec] of cases) {
    const ms = await timeMedian(async () => {
      const views = makeViews(x, spec, rng);
      // Wait for the values so that async backends are timed too.
      await Promise.all(views.map((v) => v.mixed.data()));
      disposeViews(views);
    }, reps, 2);
    const extra: Record<string, number | string> = { grid: 8, ratio: 0.5 };
    if (stepMs !== null) {
      extra['share of step'] = `${((100 * ms) / stepMs).toFixed(2)}% (step ${(stepMs / 1000).toFixed(1)} s at batch ${batch}, goal < 2%)`;
    } else {
      extra['share of step'] = `n/a: needs the "${TRAIN_NAME}" measurement (run without --only masks)`;
    }
    ctx.report({ name: `masks ${label}`, backend: ctx.backend, batch, ms, peer: null, peerImgPerSec: null, ratio: null, extra });
  }
  x.dispose();

  // The JavaScript part alone: 512 per-sample block grids (the worst case; per batch it is one).
  const genMs = await timeMedian(() => makeGrids('block', 8, 0.5, rng, batch, true), reps, 1);
  ctx.report({ name: 'masks grid generation (512 block grids)', backend: 'js', batch, ms: genMs, peer: null, peerImgPerSec: null, ratio: null, extra: { grid: 8, ratio: 0.5 } });
}
