/**
 * ResNet-18/CIFAR training on `wasm+onednn` beside `wasm` and PyTorch CPU in the same run.
 *
 * The backend is global, but the oneDNN kernels are only kernels registered for tfjs's 'wasm'
 * backend: when the bench runs on plain `wasm` (MIXMASK_BACKEND=wasm, or wherever wasm is the
 * chosen backend), this section installs them, measures the same step as 10-train, re-measures
 * the PyTorch peer right after it (the CPU here is shared, so adjacent numbers compare best), and
 * uninstalls them again so that later sections run on plain wasm. On `wasm+onednn` itself
 * 10-train already measured it; on other backends it reports why it was skipped.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { defaultAddonPath, installOnednnKernels, loadAddon, probeOnednnAddon, uninstallOnednnKernels } from '../../lib/backend/onednn';
import { BenchContext, timeMedian } from '../harness';
import { makeTrainBench, TRAIN_NAME } from './10-train';

const PYTHON = '/usr/bin/python3';
const PEER_SCRIPT = path.resolve(__dirname, '..', '..', '..', 'bench', 'peer', 'pytorch_resnet.py');
const BACKEND = 'wasm+onednn';

function loadavg(): string {
  try {
    return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'n/a';
  }
}

function peer(batch: number, threads: number, steps: number, warmup: number): number | string {
  if (spawnSync(PYTHON, ['-c', 'import torch'], { stdio: 'ignore' }).status !== 0) return `none (${PYTHON} cannot import torch)`;
  const r = spawnSync(PYTHON, [PEER_SCRIPT, '--batch', String(batch), '--threads', String(threads), '--steps', String(steps), '--warmup', String(warmup)], {
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  if (r.status !== 0) return `peer exited ${r.status}`;
  try {
    return (JSON.parse(r.stdout.trim().split('\n').pop()!) as { train_img_s: number }).train_img_s;
  } catch {
    return 'unreadable peer output';
  }
}

export async function run(ctx: BenchContext): Promise<void> {
  const skip = (why: string) =>
    ctx.report({ name: `${TRAIN_NAME} (oneDNN kernels)`, backend: BACKEND, batch: 32, peer: null, peerImgPerSec: null, ratio: null, extra: { skipped: why } });
  if (ctx.backend === BACKEND) return; // 10-train measured it
  if (ctx.backend !== 'wasm') return skip(`runs beside the wasm backend only (this run: ${ctx.backend})`);
  const probe = probeOnednnAddon(defaultAddonPath());
  if (!probe.ok) return skip(probe.reason);

  const addon = loadAddon();
  const ompThreads = addon.setThreads(ctx.threads);
  const winograd = process.env.MIXMASK_ONEDNN_WINOGRAD !== '0';
  const batches = ctx.quick ? [32] : [32, 128];
  const steps = ctx.quick ? 2 : 5;
  const warmup = ctx.quick ? 1 : 2;
  for (const batch of batches) {
    installOnednnKernels(addon, { winograd });
    let trainMs: number;
    const loadBefore = loadavg();
    try {
      await tf.setBackend('wasm');
      const bench = makeTrainBench(batch);
      trainMs = await timeMedian(() => bench.step(), steps, warmup);
      bench.dispose();
    } finally {
      uninstallOnednnKernels();
    }
    const ours = (batch * 1000) / trainMs;
    const p = peer(batch, ctx.threads, steps, warmup);
    const wasmRow = ctx.results.find((m) => m.name === TRAIN_NAME && m.batch === batch && m.backend === 'wasm');
    const extra: Record<string, number | string> = {
      threads: ompThreads,
      'step ms': Math.round(trainMs),
      winograd: winograd ? 'on' : 'off',
      'load before': loadBefore,
      'load after': loadavg(),
    };
    if (wasmRow?.imgPerSec !== undefined) extra['vs wasm'] = `${(ours / wasmRow.imgPerSec).toFixed(2)}×`;
    if (typeof p === 'string') extra.peer = p;
    ctx.report({
      name: `${TRAIN_NAME} (oneDNN kernels)`,
      backend: BACKEND,
      batch,
      imgPerSec: ours,
      ms: trainMs,
      peer: typeof p === 'number' ? 'pytorch-cpu' : null,
      peerImgPerSec: typeof p === 'number' ? p : null,
      ratio: typeof p === 'number' ? ours / p : null,
      extra,
    });
  }
}
