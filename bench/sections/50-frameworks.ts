/**
 * Training images/s of every framework at batch 128 (ResNet-18/CIFAR, width 64, 32×32) with
 * and without MixMask, through the real training step (augmentation, views, framework loss,
 * optimiser, momentum/queue updates). The MixMask view costs one more forward/backward pass of
 * the online encoder; the measured overhead is reported. `--quick`: width 16, batch 32.
 */
import * as tf from '@tensorflow/tfjs';
import { makeRecipe, twoViews } from '../../lib/data/recipes';
import { FRAMEWORKS, makeFramework } from '../../lib/frameworks';
import { disposeViews, makeViews } from '../../lib/masks/views';
import { pretrainConfig } from '../../lib/presets';
import { learningRate, makeOptimizer } from '../../lib/optim';
import { Rng } from '../../lib/util/rng';
import { BenchContext, timeMedian } from '../harness';

export async function run(ctx: BenchContext): Promise<void> {
  const batch = ctx.quick ? 32 : 128;
  const width = ctx.quick ? 16 : 64;
  const images = tf.tidy(() => tf.randomUniform([batch, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D);
  for (const name of FRAMEWORKS) {
    const perMethod: Record<string, number> = {};
    for (const method of ['none', 'mixmask'] as const) {
      const c = pretrainConfig(name, 'cifar100', 'paper', { method, batchSize: batch, width });
      const fw = makeFramework(name, c.backbone, c.heads, 0);
      const opt = makeOptimizer(c.optimizer, fw.namedTrainable());
      const recipe = makeRecipe(c.recipe, { size: 32 });
      let step = 0;
      const ms = await timeMedian(async () => {
        const rng = new Rng(step);
        const { view1, view2 } = twoViews(images, recipe, rng);
        const views = makeViews(view1, c.view, rng);
        // The asynchronous read of the loss also waits for the GPU on webgpu.
        const { grads, targets } = await fw.computeGradients(view1, view2, views, rng);
        opt.step(grads, learningRate(c.optimizer.lr, c.schedule, 0, c.epochs));
        fw.afterStep(targets, step++, 1000);
        tf.dispose([...Object.values(grads), ...targets, view1, view2]);
        disposeViews(views);
      }, ctx.quick ? 2 : 3, 1);
      perMethod[method] = (batch * 1000) / ms;
      opt.dispose();
      fw.dispose();
    }
    for (const method of ['none', 'mixmask'] as const) {
      ctx.report({
        name: `${name} train${method === 'mixmask' ? ' + mixmask' : ''}`,
        backend: ctx.backend,
        batch,
        imgPerSec: perMethod[method],
        peer: null,
        peerImgPerSec: null,
        ratio: null,
        extra: method === 'mixmask' ? { width, 'time overhead vs none': `${(100 * (perMethod.none / perMethod.mixmask - 1)).toFixed(0)}%` } : { width },
      });
    }
  }
  images.dispose();
}
