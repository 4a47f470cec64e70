/**
 * The bf16 mixed-precision mode of `wasm+onednn` (MIXMASK_PRECISION=bf16) against its own fp32
 * and against PyTorch CPU fp32 and bf16 (`torch.autocast('cpu', dtype=torch.bfloat16)`), all in
 * the same run: ResNet-18/CIFAR width 64 training steps (10-train's step) at batch 32 and 128.
 *
 * The CPU here is shared, so each compared pair is interleaved: our fp32 and bf16 steps alternate
 * on the same model (the precision is a switch of the addon, the kernels are re-registered
 * between steps), and the two PyTorch runs follow each round of ours, in alternating order.
 * Medians over all rounds; the load average before and after is printed with them. Runs beside
 * the `wasm` or `wasm+onednn` backend (it installs the oneDNN kernels itself and puts back what
 * was there); where the addon is missing or oneDNN reports no native bf16 it says so and skips.
 */
import * as fs from 'node:fs';
import * as tf from '@tensorflow/tfjs';
import { backendReport } from '../../lib/backend';
import { defaultAddonPath, installOnednnKernels, loadAddon, probeOnednnAddon, uninstallOnednnKernels } from '../../lib/backend/onednn';
import { BenchContext } from '../harness';
import { makeTrainBench, runPeer, torchAvailable, TRAIN_NAME } from './10-train';

const NAME = `${TRAIN_NAME} (oneDNN bf16)`;
const BACKEND = 'wasm+onednn bf16';

function loadavg(): string {
  try {
    return fs.readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  } catch {
    return 'n/a';
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function timed(fn: () => Promise<void>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

export async function run(ctx: BenchContext): Promise<void> {
  const skip = (why: string) => ctx.report({ name: NAME, backend: BACKEND, batch: 32, peer: null, peerImgPerSec: null, ratio: null, extra: { skipped: why } });
  if (ctx.backend !== 'wasm' && ctx.backend !== 'wasm+onednn') return skip(`runs beside the wasm or wasm+onednn backend only (this run: ${ctx.backend})`);
  const probe = probeOnednnAddon(defaultAddonPath());
  if (!probe.ok) return skip(probe.reason);
  const addon = loadAddon();
  const info = addon.info();
  if (!info.bf16) return skip(`oneDNN ${info.version} reports ISA ${info.isa}, which has no native bf16 (needs avx512_core_bf16 or avx512_core_amx)`);
  const ompThreads = addon.setThreads(ctx.threads);
  const winograd = process.env.MIXMASK_ONEDNN_WINOGRAD !== '0';
  const torch = torchAvailable();

  const batches = ctx.quick ? [32] : [32, 128];
  const rounds = ctx.quick ? 1 : 2;
  const steps = ctx.quick ? 2 : 3; // per precision and round
  const peerSteps = ctx.quick ? 2 : 3;
  try {
    for (const batch of batches) {
      const loadBefore = loadavg();
      await tf.setBackend('wasm');
      const bench = makeTrainBench(batch);
      const ours: Record<'fp32' | 'bf16', number[]> = { fp32: [], bf16: [] };
      const peer: Record<'none' | 'bf16', number[]> = { none: [], bf16: [] };
      const peerErrors: string[] = [];
      try {
        // Warm-up: primitive creation (each precision has its own) and heap growth.
        for (const precision of ['fp32', 'bf16'] as const) {
          installOnednnKernels(addon, { winograd, precision });
          await bench.step();
        }
        for (let r = 0; r < rounds; r++) {
          for (let i = 0; i < steps; i++) {
            for (const precision of (i + r) % 2 === 0 ? (['fp32', 'bf16'] as const) : (['bf16', 'fp32'] as const)) {
              installOnednnKernels(addon, { winograd, precision });
              ours[precision].push(await timed(() => bench.step()));
            }
          }
          if (!torch) continue;
          for (const autocast of r % 2 === 0 ? (['bf16', 'none'] as const) : (['none', 'bf16'] as const)) {
            const p = runPeer(batch, ctx.threads, peerSteps, 1, autocast);
            if ('error' in p) peerErrors.push(p.error);
            else peer[autocast].push(p.train_img_s);
          }
        }
      } finally {
        bench.dispose();
      }
      const fp32 = (batch * 1000) / median(ours.fp32);
      const bf16 = (batch * 1000) / median(ours.bf16);
      const torchFp32 = peer.none.length ? median(peer.none) : null;
      const torchBf16 = peer.bf16.length ? median(peer.bf16) : null;
      const extra: Record<string, number | string> = {
        oneDNN: `${info.version} (${info.isa})`,
        threads: ompThreads,
        'ours fp32 img/s': fp32.toFixed(1),
        'ours bf16/fp32': `${(bf16 / fp32).toFixed(2)}×`,
      };
      if (torchFp32 !== null) extra['pytorch fp32 img/s'] = torchFp32.toFixed(1);
      if (torchFp32 !== null && torchBf16 !== null) extra['pytorch bf16/fp32'] = `${(torchBf16 / torchFp32).toFixed(2)}×`;
      if (torchFp32 !== null) extra['ours fp32 / pytorch fp32'] = `${(fp32 / torchFp32).toFixed(2)}×`;
      // The spread says how much the shared machine moved the numbers.
      const range = (xs: number[]) => `${Math.min(...xs).toFixed(1)}–${Math.max(...xs).toFixed(1)}`;
      const imgs = (ms: number[]) => ms.map((m) => (batch * 1000) / m);
      extra['steps'] = `${ours.bf16.length} per precision (interleaved), pytorch ${peer.bf16.length}+${peer.none.length} runs of ${peerSteps}`;
      extra['img/s ranges: ours fp32'] = range(imgs(ours.fp32));
      extra['ours bf16'] = range(imgs(ours.bf16));
      if (peer.none.length) extra['pytorch fp32'] = range(peer.none);
      if (peer.bf16.length) extra['pytorch bf16'] = range(peer.bf16);
      extra['load before'] = loadBefore;
      extra['load after'] = loadavg();
      if (!torch) extra.peer = 'none (/usr/bin/python3 cannot import torch)';
      if (peerErrors.length) extra.peer = peerErrors[0];
      ctx.report({
        name: NAME,
        backend: BACKEND,
        batch,
        imgPerSec: bf16,
        ms: median(ours.bf16),
        peer: torchBf16 !== null ? 'pytorch-cpu bf16 autocast' : null,
        peerImgPerSec: torchBf16,
        ratio: torchBf16 !== null ? bf16 / torchBf16 : null,
        extra,
      });
    }
  } finally {
    // Put back what the run had: wasm+onednn at the precision it chose, or plain wasm.
    if (ctx.backend === 'wasm+onednn') installOnednnKernels(addon, { winograd, precision: backendReport()?.precision ?? 'fp32' });
    else uninstallOnednnKernels();
  }
}
