/**
 * webgpu only: where a training step's GPU work goes.
 *
 * 1. One MoCo v2 + MixMask step of ResNet-18/CIFAR (the real step: views, masks, loss, backward,
 *    SGD, momentum encoder and queue): GPU dispatches (every program run), tf.profile's kernel
 *    count with and without the dispatch-free Reshape/Identity, the kernels most often called
 *    and those with the most GPU time (timestamp queries; zero where the adapter has none); the
 *    step time against the encoder's forward: step / (passes × forward), where a pass is one
 *    encoder forward over the batch (online x1, x2, mixed view; momentum keys of x2: 4).
 *    The augmentation (twoViews) is counted apart.
 * 2. Every distinct ResNet-18/CIFAR convolution (width 64, 32×32) at batch 8: wall time of the
 *    forward, the filter gradient (dW) and the input gradient (dx), and dW/fwd, dx/fwd.
 *
 * --quick: step at batch 8, width 8; otherwise batch 32, width 64 (MIXMASK_BENCH_WEBGPU_BATCH and
 * MIXMASK_BENCH_WEBGPU_WIDTH override them). Convolutions at batch 8 always.
 * MIXMASK_BENCH_WEBGPU=step or =convs runs one half only; MIXMASK_WEBGPU_KERNELS=stock measures
 * tfjs's own kernels instead of lib/backend/webgpu's.
 */
import * as tf from '@tensorflow/tfjs';
import { countDispatches } from '../../lib/backend/webgpu/dispatches';
import { makeRecipe, twoViews } from '../../lib/data/recipes';
import { makeFramework } from '../../lib/frameworks';
import type { Moco } from '../../lib/frameworks/moco';
import { disposeViews, makeViews } from '../../lib/masks/views';
import { pretrainConfig } from '../../lib/presets';
import { makeOptimizer } from '../../lib/optim';
import { Rng } from '../../lib/util/rng';
import type { BenchContext } from '../harness';

/** The distinct convolutions of ResNet-18 with the CIFAR stem at width 64 (calls per forward in `count`). */
export const RESNET18_CIFAR_CONVS = [
  { name: 'stem 32² 3→64 3×3', hw: 32, ci: 3, co: 64, k: 3, stride: 1, pad: 1, count: 1 },
  { name: 'l1 32² 64 3×3', hw: 32, ci: 64, co: 64, k: 3, stride: 1, pad: 1, count: 4 },
  { name: 'l2 32²→16² 64→128 3×3 s2', hw: 32, ci: 64, co: 128, k: 3, stride: 2, pad: 1, count: 1 },
  { name: 'l2 down 32²→16² 1×1 s2', hw: 32, ci: 64, co: 128, k: 1, stride: 2, pad: 0, count: 1 },
  { name: 'l2 16² 128 3×3', hw: 16, ci: 128, co: 128, k: 3, stride: 1, pad: 1, count: 3 },
  { name: 'l3 16²→8² 128→256 3×3 s2', hw: 16, ci: 128, co: 256, k: 3, stride: 2, pad: 1, count: 1 },
  { name: 'l3 down 16²→8² 1×1 s2', hw: 16, ci: 128, co: 256, k: 1, stride: 2, pad: 0, count: 1 },
  { name: 'l3 8² 256 3×3', hw: 8, ci: 256, co: 256, k: 3, stride: 1, pad: 1, count: 3 },
  { name: 'l4 8²→4² 256→512 3×3 s2', hw: 8, ci: 256, co: 512, k: 3, stride: 2, pad: 1, count: 1 },
  { name: 'l4 down 8²→4² 1×1 s2', hw: 8, ci: 256, co: 512, k: 1, stride: 2, pad: 0, count: 1 },
  { name: 'l4 4² 512 3×3', hw: 4, ci: 512, co: 512, k: 3, stride: 1, pad: 1, count: 3 },
] as const;

const CONV_BATCH = 8;
const DISPATCH_FREE = new Set(['Reshape', 'Identity']);

interface KernelRow {
  calls: number;
  ms: number;
}

function top(rows: Map<string, KernelRow>, by: 'calls' | 'ms', n: number): string {
  return [...rows]
    .sort((a, b) => b[1][by] - a[1][by])
    .slice(0, n)
    .map(([k, r]) => (by === 'calls' ? `${k} ${r.calls}` : `${k} ${r.ms.toFixed(1)}`))
    .join(', ');
}

/** A positive integer from the environment, or `dflt`. */
export function envInt(name: string, dflt: number): number {
  const v = process.env[name];
  if (v === undefined || v === '') return dflt;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got '${v}'`);
  return n;
}

async function stepProfile(ctx: BenchContext): Promise<void> {
  const batch = envInt('MIXMASK_BENCH_WEBGPU_BATCH', ctx.quick ? 8 : 32);
  const width = envInt('MIXMASK_BENCH_WEBGPU_WIDTH', ctx.quick ? 8 : 64);
  const cfg = pretrainConfig('moco-v2', 'cifar100', 'paper', { method: 'mixmask', batchSize: batch, width });
  const fw = makeFramework('moco-v2', cfg.backbone, cfg.heads, 0);
  const projector = (fw as Moco).projector;
  const opt = makeOptimizer(cfg.optimizer, fw.namedTrainable());
  const recipe = makeRecipe(cfg.recipe, { size: 32 });
  const images = tf.tidy(() => tf.randomUniform([batch, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D);
  let stepIndex = 0;
  const augment = () => twoViews(images, recipe, new Rng(stepIndex));
  const train = async (view1: tf.Tensor4D, view2: tf.Tensor4D) => {
    const rng = new Rng(1000 + stepIndex);
    const views = makeViews(view1, cfg.view, rng);
    const { grads, targets } = await fw.computeGradients(view1, view2, views, rng);
    opt.step(grads, cfg.optimizer.lr);
    fw.afterStep(targets, stepIndex++, 1000);
    tf.dispose([...Object.values(grads), ...targets]);
    disposeViews(views);
  };
  const step = async () => {
    const { view1, view2 } = augment();
    await train(view1, view2);
    tf.dispose([view1, view2]);
  };
  await step(); // warm-up: shader compilation, optimiser slots

  // Dispatches and kernels of the augmentation and of the rest of one step, counted apart.
  const aug = await countDispatches(() => augment());
  const { view1, view2 } = aug.result;
  await view2.data();
  const kernels = new Map<string, KernelRow>();
  let profiled = 0;
  const { count } = await countDispatches(async () => {
    const info = await tf.profile(() => train(view1, view2));
    for (const k of info.kernels) {
      const r = kernels.get(k.name) ?? { calls: 0, ms: 0 };
      r.calls++;
      r.ms += Number(k.kernelTimeMs) || 0;
      kernels.set(k.name, r);
      profiled++;
    }
  });
  tf.dispose([view1, view2]);
  const withoutViews = [...kernels].filter(([k]) => !DISPATCH_FREE.has(k)).reduce((s, [, r]) => s + r.calls, 0);
  const gpuMs = [...kernels.values()].reduce((s, r) => s + r.ms, 0);

  // Step and forward alternate, so that a machine shared with other work slows both alike;
  // wall time and process CPU time (on a software adapter, all of its threads).
  const forward = async () => {
    const q = tf.tidy(() => projector.apply(fw.backbone.apply(images, true), true));
    await q.data();
    q.dispose();
  };
  await forward();
  const times = { step: [] as number[], forward: [] as number[], stepCpu: [] as number[], forwardCpu: [] as number[] };
  for (let trial = 0; trial < (ctx.quick ? 3 : 5); trial++) {
    for (const [name, fn] of [['step', step], ['forward', forward]] as const) {
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      await fn();
      const c = process.cpuUsage(c0);
      times[name].push(Number(process.hrtime.bigint() - t0) / 1e6);
      times[`${name}Cpu`].push((c.user + c.system) / 1e3);
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  const stepMs = median(times.step);
  const forwardMs = median(times.forward);
  const cpuRatio = median(times.stepCpu) / median(times.forwardCpu);
  const passes = 4;
  ctx.report({
    name: 'webgpu moco-v2 + mixmask step',
    backend: ctx.backend,
    batch,
    ms: stepMs,
    peer: null,
    peerImgPerSec: null,
    ratio: null,
    extra: {
      width,
      'dispatches/step': count.total,
      'augmentation dispatches': aug.count.total,
      'tf.profile kernels': profiled,
      'without Reshape/Identity': withoutViews,
      'forward ms': +forwardMs.toFixed(1),
      'step/(4 passes × forward)': +(stepMs / (passes * forwardMs)).toFixed(2),
      'by CPU time': +(cpuRatio / passes).toFixed(2),
      'GPU ms in kernels (timestamps)': +gpuMs.toFixed(1),
    },
  });
  ctx.report({
    name: 'webgpu step: top kernels',
    backend: ctx.backend,
    batch,
    peer: null,
    peerImgPerSec: null,
    ratio: null,
    extra: { 'by calls': top(kernels, 'calls', 12), 'by GPU ms': gpuMs > 0 ? top(kernels, 'ms', 12) : 'no timestamp queries on this adapter' },
  });
  ctx.report({
    name: 'webgpu step: dispatches by program',
    backend: ctx.backend,
    batch,
    peer: null,
    peerImgPerSec: null,
    ratio: null,
    extra: { programs: [...count.byProgram].sort((a, b) => b[1] - a[1]).slice(0, 15).map(([k, n]) => `${k} ${n}`).join(', ') },
  });
  images.dispose();
  opt.dispose();
  fw.dispose();
}

/**
 * Per op, the median wall time and process CPU time of one call (ms): in each trial every op
 * runs `reps` times back to back and the last output is read; ops alternate within a trial, so a
 * machine shared with other work slows them alike. On a software adapter the CPU time (all of
 * the adapter's threads) is the steadier measure.
 */
async function timeOps(ops: Array<() => tf.Tensor>, reps: number, trials: number): Promise<Array<{ wall: number; cpu: number }>> {
  const wall = ops.map(() => [] as number[]);
  const cpu = ops.map(() => [] as number[]);
  for (let trial = -1; trial < trials; trial++) {
    for (const [i, op] of ops.entries()) {
      const t0 = process.hrtime.bigint();
      const c0 = process.cpuUsage();
      const outs: tf.Tensor[] = [];
      for (let r = 0; r < reps; r++) outs.push(op());
      await outs[outs.length - 1].data();
      const c = process.cpuUsage(c0);
      tf.dispose(outs);
      if (trial < 0) continue; // warm-up: shader compilation
      wall[i].push(Number(process.hrtime.bigint() - t0) / 1e6 / reps);
      cpu[i].push((c.user + c.system) / 1e3 / reps);
    }
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  return ops.map((_, i) => ({ wall: median(wall[i]), cpu: median(cpu[i]) }));
}

async function convShapes(ctx: BenchContext): Promise<void> {
  const reps = 2;
  const trials = ctx.quick ? 3 : 5;
  let worstDw = { ratio: 0, name: '' };
  let worstDx = { ratio: 0, name: '' };
  for (const s of RESNET18_CIFAR_CONVS) {
    const filterShape: [number, number, number, number] = [s.k, s.k, s.ci, s.co];
    const x = tf.randomNormal([CONV_BATCH, s.hw, s.hw, s.ci], 0, 1, 'float32', 1) as tf.Tensor4D;
    const w = tf.randomNormal(filterShape, 0, 0.1, 'float32', 2) as tf.Tensor4D;
    const info = tf.backend_util.computeConv2DInfo(x.shape, filterShape, s.stride, 1, s.pad);
    const dy = tf.randomNormal(info.outShape, 0, 1, 'float32', 3) as tf.Tensor4D;
    const attrs = { strides: s.stride, pad: s.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
    const [fwd, dW, dx] = await timeOps(
      [
        () => tf.conv2d(x, w, s.stride, s.pad),
        () => tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape } as unknown as tf.NamedAttrMap) as tf.Tensor,
        () => tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: x.shape } as unknown as tf.NamedAttrMap) as tf.Tensor,
      ],
      reps,
      trials,
    );
    tf.dispose([x, w, dy]);
    const rdW = dW.wall / fwd.wall;
    const rdx = dx.wall / fwd.wall;
    if (rdW > worstDw.ratio) worstDw = { ratio: rdW, name: s.name };
    if (rdx > worstDx.ratio) worstDx = { ratio: rdx, name: s.name };
    ctx.report({
      name: `webgpu conv ${s.name}`,
      backend: ctx.backend,
      batch: CONV_BATCH,
      ms: fwd.wall,
      peer: null,
      peerImgPerSec: null,
      ratio: null,
      extra: {
        'dW ms': +dW.wall.toFixed(2),
        'dx ms': +dx.wall.toFixed(2),
        'dW/fwd': +rdW.toFixed(2),
        'dx/fwd': +rdx.toFixed(2),
        'dW/fwd (CPU time)': +(dW.cpu / fwd.cpu).toFixed(2),
        'dx/fwd (CPU time)': +(dx.cpu / fwd.cpu).toFixed(2),
      },
    });
  }
  ctx.report({
    name: 'webgpu conv worst ratios',
    backend: ctx.backend,
    batch: CONV_BATCH,
    peer: null,
    peerImgPerSec: null,
    ratio: null,
    extra: { 'dW/fwd': `${worstDw.ratio.toFixed(2)} (${worstDw.name})`, 'dx/fwd': `${worstDx.ratio.toFixed(2)} (${worstDx.name})` },
  });
}

export async function run(ctx: BenchContext): Promise<void> {
  if (ctx.backend !== 'webgpu') return;
  const part = process.env.MIXMASK_BENCH_WEBGPU ?? 'all';
  if (!['all', 'step', 'convs'].includes(part)) throw new Error(`MIXMASK_BENCH_WEBGPU must be step, convs or unset, got '${part}'`);
  if (part !== 'convs') await stepProfile(ctx);
  if (part !== 'step') await convShapes(ctx);
}
