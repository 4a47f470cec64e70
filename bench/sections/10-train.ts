/**
 * ResNet-18/CIFAR training and forward throughput on the selected backend, and the same model,
 * loss and optimiser in PyTorch CPU at the same thread count in the same run when
 * `/usr/bin/python3 -c "import torch"` works (bench/peer/pytorch_resnet.py).
 *
 * One step at batch B: B images of 32×32×3 through ResNet-18 (width 64) and a 2-layer projection
 * head (512→512→128), NT-Xent between the two halves of the batch (the two "views"), SGD with
 * momentum 0.9 (lib/optim's Sgd, torch.optim.SGD's semantics). Forward = evaluation-mode backbone + head, no tape. Times are medians after
 * warm-up; images/s = B / step time.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { ntXent } from '../../lib/losses';
import { MlpHead, ResNet, resnet18 } from '../../lib/models';
import { Sgd } from '../../lib/optim';
import { Rng } from '../../lib/util/rng';
import { BenchContext, timeMedian } from '../harness';

export const TRAIN_NAME = 'resnet18-cifar train';
export const FORWARD_NAME = 'resnet18-cifar forward';
const PYTHON = '/usr/bin/python3';
const PEER_SCRIPT = path.resolve(__dirname, '..', '..', '..', 'bench', 'peer', 'pytorch_resnet.py');

export interface TrainBench {
  backbone: ResNet;
  head: MlpHead;
  x: tf.Tensor4D;
  /** One SGD step (forward, NT-Xent, backward, update); resolves once done, leaks nothing. */
  step(): Promise<void>;
  /** Evaluation-mode forward of backbone + head, values read back. */
  forward(): Promise<void>;
  dispose(): void;
}

/** The benchmarked model and step, shared with bench/profile-step.ts. */
export function makeTrainBench(batch: number, opts: { width?: number; size?: number; seed?: number } = {}): TrainBench {
  if (batch % 2 !== 0) throw new Error(`train bench: batch must be even (two views), got ${batch}`);
  const width = opts.width ?? 64;
  const size = opts.size ?? 32;
  const backbone = resnet18({ width, seed: opts.seed ?? 0 });
  const head = new MlpHead(backbone.featureDim, [512], 128, { seed: 1 });
  const vars = [...backbone.trainableVariables(), ...head.trainableVariables()];
  const named = [...backbone.namedParameters('backbone.'), ...head.namedParameters('head.')];
  const optimizer = new Sgd(named, { momentum: 0.9, weightDecay: 0 });
  const pixels = new Rng(7).fillNormal(new Float32Array(batch * size * size * 3), 0, 1);
  const x = tf.tensor4d(pixels, [batch, size, size, 3]);
  const half = batch / 2;
  const loss = (): tf.Scalar => {
    const z = head.apply(backbone.apply(x, true), true);
    const [a, b] = tf.split(z, [half, half], 0) as [tf.Tensor2D, tf.Tensor2D];
    return tf.mean(ntXent(a, b, 0.5)) as tf.Scalar;
  };
  return {
    backbone,
    head,
    x,
    async step() {
      const { value: cost, grads } = tf.variableGrads(loss, vars);
      optimizer.step(grads, 0.03);
      tf.dispose(grads);
      // Reading the loss waits for every kernel; asynchronously, as webgpu needs (wasm/cpu have finished anyway).
      await cost.data();
      cost.dispose();
    },
    async forward() {
      const y = tf.tidy(() => head.apply(backbone.apply(x, false), false));
      await y.data();
      y.dispose();
    },
    dispose() {
      optimizer.dispose();
      backbone.dispose();
      head.dispose();
      x.dispose();
    },
  };
}

export interface PeerResult {
  forward_img_s: number;
  train_img_s: number;
  threads: number;
  torch: string;
}

export function torchAvailable(): boolean {
  const r = spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' });
  return r.status === 0;
}

/** The PyTorch peer; autocast 'bf16' runs its forward passes under torch.autocast('cpu', bfloat16). */
export function runPeer(batch: number, threads: number, steps: number, warmup: number, autocast: 'none' | 'bf16' = 'none'): PeerResult | { error: string } {
  const r = spawnSync(
    PYTHON,
    [PEER_SCRIPT, '--batch', String(batch), '--threads', String(threads), '--steps', String(steps), '--warmup', String(warmup), ...(autocast === 'bf16' ? ['--autocast', 'bf16'] : [])],
    { encoding: 'utf8', env: process.env, maxBuffer: 1 << 20 },
  );
  if (r.status !== 0) return { error: `${PYTHON} ${path.basename(PEER_SCRIPT)} exited ${r.status}: ${(r.stderr || '').trim().split('\n').pop()}` };
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop()!) as PeerResult;
  } catch {
    return { error: `unreadable peer output: ${r.stdout.slice(0, 200)}` };
  }
}

function peakRssMB(): number {
  // ru_maxrss is in kilobytes on Linux.
  return Math.round(process.resourceUsage().maxRSS / 1024);
}

function wasmHeapMB(): number | null {
  const backend = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  const bytes = backend.wasm?.HEAPU8?.buffer.byteLength;
  return bytes === undefined ? null : Math.round(bytes / (1 << 20));
}

/** MIXMASK_BENCH_TRAIN_BATCHES (e.g. "32,256": the GPU check's larger batches), else `dflt`. */
function trainBatches(dflt: number[]): number[] {
  const v = process.env.MIXMASK_BENCH_TRAIN_BATCHES;
  if (v === undefined || v === '') return dflt;
  const list = v.split(',').map(Number);
  if (list.some((b) => !Number.isInteger(b) || b <= 0 || b % 2 !== 0)) throw new Error(`MIXMASK_BENCH_TRAIN_BATCHES must list even positive integers, got '${v}'`);
  return list;
}

export async function run(ctx: BenchContext): Promise<void> {
  if (ctx.backend === 'cpu') {
    ctx.report({
      name: TRAIN_NAME,
      backend: ctx.backend,
      batch: 32,
      peer: null,
      peerImgPerSec: null,
      ratio: null,
      extra: { skipped: 'the cpu backend needs minutes per step (force MIXMASK_BACKEND=wasm)' },
    });
    return;
  }
  const batches = trainBatches(ctx.quick ? [32] : [32, 128]);
  const steps = ctx.quick ? 2 : 5;
  const warmup = ctx.quick ? 1 : 2;
  const peer = torchAvailable();

  for (const batch of batches) {
    const bench = makeTrainBench(batch);
    const trainMs = await timeMedian(() => bench.step(), steps, warmup);
    const forwardMs = await timeMedian(() => bench.forward(), steps, 1);
    const tensors = tf.memory().numTensors;
    bench.dispose();

    const extra: Record<string, number | string> = { threads: ctx.threads, 'step ms': Math.round(trainMs) };
    if (batch === Math.max(...batches)) {
      extra['peak RSS MB'] = peakRssMB();
      const heap = wasmHeapMB();
      if (heap !== null) extra['wasm heap MB'] = heap;
    }
    extra['live tensors'] = tensors;

    let peerRes: PeerResult | null = null;
    if (peer) {
      const r = runPeer(batch, ctx.threads, steps, warmup);
      if ('error' in r) extra.peer = r.error;
      else peerRes = r;
    } else {
      extra.peer = `none (${PYTHON} cannot import torch)`;
    }
    const ours = (batch * 1000) / trainMs;
    const oursFwd = (batch * 1000) / forwardMs;
    ctx.report({
      name: TRAIN_NAME,
      backend: ctx.backend,
      batch,
      imgPerSec: ours,
      ms: trainMs,
      peer: peerRes ? 'pytorch-cpu' : null,
      peerImgPerSec: peerRes ? peerRes.train_img_s : null,
      ratio: peerRes ? ours / peerRes.train_img_s : null,
      extra,
    });
    ctx.report({
      name: FORWARD_NAME,
      backend: ctx.backend,
      batch,
      imgPerSec: oursFwd,
      ms: forwardMs,
      peer: peerRes ? 'pytorch-cpu' : null,
      peerImgPerSec: peerRes ? peerRes.forward_img_s : null,
      ratio: peerRes ? oursFwd / peerRes.forward_img_s : null,
      extra: { threads: ctx.threads },
    });
  }
}
