/**
 * wasm / wasm+onednn only: where a training step's time goes besides the kernels, and what the
 * fused parameter updates (lib/backend/wasm/fused-update.ts) save, in the same run.
 *
 * Two steps: the ResNet-18/CIFAR train bench step (width 64, batch 32; bench/sections/10-train)
 * and the real MoCo v2 + MixMask step at width 16, batch 128 (views, masks, loss, backward, SGD,
 * momentum encoder, queue). For each: one step timed op by op (bench/op-timer.ts: ms inside
 * kernels, around them, outside any op; the ops with the most time around their kernels), and
 * the step's img/s with the fused updates removed (tfjs ops), with their JavaScript loops and with
 * their WebAssembly SIMD loops (the default), alternating, medians.
 * `--quick`: one trial each way. The full per-op table: `node dist/bench/profile-step.js`.
 */
import * as tf from '@tensorflow/tfjs';
import { setWasmFusedUpdates, setWasmUpdateLoops } from '../../lib/backend/wasm/fused-update';
import { makeRecipe, twoViews } from '../../lib/data/recipes';
import { makeFramework } from '../../lib/frameworks';
import { disposeViews, makeViews } from '../../lib/masks/views';
import { makeOptimizer } from '../../lib/optim';
import { pretrainConfig } from '../../lib/presets';
import { Rng } from '../../lib/util/rng';
import type { BenchContext } from '../harness';
import { addTimings, perStep, timeOps, type OpTiming } from '../op-timer';
import { makeTrainBench } from './10-train';

export interface StepBench {
  name: string;
  batch: number;
  /** One training step; resolves once done, leaks nothing. */
  step(): Promise<void>;
  dispose(): void;
}

/** The ResNet-18 train bench step (SimCLR-like NT-Xent, SGD with momentum). */
export function resnetStep(batch: number, width: number): StepBench {
  const b = makeTrainBench(batch, { width });
  return { name: `resnet18 train w${width}`, batch, step: () => b.step(), dispose: () => b.dispose() };
}

/** The evaluation-mode forward (backbone + head, values read back) of bench/sections/10-train. */
export function resnetForward(batch: number, width: number): StepBench {
  const b = makeTrainBench(batch, { width });
  return { name: `resnet18 forward w${width}`, batch, step: () => b.forward(), dispose: () => b.dispose() };
}

/** One real MoCo v2 + MixMask training step on CIFAR-sized random images. */
export function mocoMixmaskStep(batch: number, width: number): StepBench {
  const cfg = pretrainConfig('moco-v2', 'cifar100', 'paper', { method: 'mixmask', batchSize: batch, width });
  const fw = makeFramework('moco-v2', cfg.backbone, cfg.heads, 0);
  const opt = makeOptimizer(cfg.optimizer, fw.namedTrainable());
  const recipe = makeRecipe(cfg.recipe, { size: 32 });
  const images = tf.tidy(() => tf.randomUniform([batch, 32, 32, 3], 0, 1, 'float32', 3) as tf.Tensor4D);
  let index = 0;
  return {
    name: `moco-v2+mixmask train w${width}`,
    batch,
    async step() {
      const rng = new Rng(index);
      const { view1, view2 } = twoViews(images, recipe, rng);
      const views = makeViews(view1, cfg.view, rng);
      const { grads, targets } = await fw.computeGradients(view1, view2, views, rng);
      opt.step(grads, cfg.optimizer.lr);
      fw.afterStep(targets, index++, 1000);
      tf.dispose([...Object.values(grads), ...targets, view1, view2]);
      disposeViews(views);
    },
    dispose() {
      opt.dispose();
      fw.dispose();
      images.dispose();
    },
  };
}

/** `steps` steps timed op by op, per step. */
export async function profileSteps(bench: StepBench, steps: number): Promise<OpTiming> {
  let total: OpTiming | null = null;
  for (let s = 0; s < steps; s++) {
    const t = await timeOps(() => bench.step());
    total = total ? addTimings(total, t) : t;
  }
  return perStep(total!, steps);
}

type UpdateMode = 'off' | 'js' | 'on';

function useMode(mode: UpdateMode): void {
  setWasmFusedUpdates(mode !== 'off');
  setWasmUpdateLoops(mode === 'js' ? 'js' : 'fastest');
}

/**
 * Median step ms without the fused updates (offMs), with their JavaScript loops (jsMs) and with
 * the loops training runs (onMs: native on wasm+onednn, else SIMD), alternating trial by trial (wasm only).
 */
export async function fusedBeforeAfter(bench: StepBench, trials: number): Promise<{ offMs: number; jsMs: number; onMs: number }> {
  const modes: UpdateMode[] = ['off', 'js', 'on'];
  const times: Record<UpdateMode, number[]> = { off: [], js: [], on: [] };
  try {
    for (const mode of modes) {
      useMode(mode);
      await bench.step(); // warm-up of each path
    }
    for (let t = 0; t < trials; t++) {
      for (const mode of modes) {
        useMode(mode);
        const t0 = process.hrtime.bigint();
        await bench.step();
        times[mode].push(Number(process.hrtime.bigint() - t0) / 1e6);
      }
    }
  } finally {
    useMode('on');
  }
  const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
  return { offMs: median(times.off), jsMs: median(times.js), onMs: median(times.on) };
}

/** The ops with the most time around their kernels, e.g. "Add 212× 3.1+9.0". */
export function topAround(t: OpTiming, n: number): string {
  return [...t.rows]
    .sort((a, b) => b.aroundMs - a.aroundMs)
    .slice(0, n)
    .map((r) => `${r.name} ${r.calls.toFixed(0)}× ${r.kernelMs.toFixed(1)}+${r.aroundMs.toFixed(1)}`)
    .join('; ');
}

export async function run(ctx: BenchContext): Promise<void> {
  if (tf.getBackend() !== 'wasm') return;
  const trials = ctx.quick ? 1 : 3;
  for (const bench of [resnetStep(32, 64), mocoMixmaskStep(128, 16)]) {
    const { offMs, jsMs, onMs } = await fusedBeforeAfter(bench, trials);
    const t = await profileSteps(bench, 1);
    bench.dispose();
    ctx.report({
      name: `${bench.name} overhead`,
      backend: ctx.backend,
      batch: bench.batch,
      imgPerSec: (bench.batch * 1000) / onMs,
      ms: onMs,
      peer: null,
      peerImgPerSec: null,
      ratio: null,
      extra: {
        threads: ctx.threads,
        'img/s without fused updates': Number(((bench.batch * 1000) / offMs).toFixed(1)),
        'img/s with their JavaScript loops': Number(((bench.batch * 1000) / jsMs).toFixed(1)),
        'fused speed-up': `${(offMs / onMs).toFixed(3)}×`,
        ops: Math.round(t.calls),
        'profiled step ms': Math.round(t.wallMs),
        'in kernels': Math.round(t.kernelMs),
        'around kernels': Math.round(t.aroundMs),
        'outside ops': Math.round(t.outsideMs),
        'most around (op calls kernel+around ms)': topAround(t, 5),
      },
    });
  }
}
