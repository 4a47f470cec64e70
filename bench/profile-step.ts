/**
 * Where one training step's time goes, op by op (bench/op-timer.ts):
 *   node dist/bench/profile-step.js [--step train|forward|moco-mixmask] [--width 64] [--batch 32]
 *                                    [--steps 2] [--top 25] [--compare-fused 3] [--json]
 * `train`: the ResNet-18/CIFAR step of bench/sections/10-train, `forward` its evaluation-mode forward; `moco-mixmask`: the real MoCo v2 +
 * MixMask step (bench/sections/13-step-overhead). Backend and threads as for the bench
 * (MIXMASK_BACKEND, MIXMASK_THREADS). Prints, per op name, calls and the milliseconds per step
 * inside its kernel and around it (the op's own engine bookkeeping), the time outside any op
 * (backward-pass construction, gradient functions' and the optimiser's JavaScript), then the
 * heaviest (op, input shapes) pairs. --compare-fused N (wasm backends): the step's img/s without
 * the fused parameter updates, with their JavaScript loops and with the loops training runs
 * (native on wasm+onednn, else SIMD), N alternating trials each, medians.
 */
import * as tf from '@tensorflow/tfjs';
import { formatBackendReport, initBackend } from '../lib/backend';
import { byOpName, timeOps, addTimings, perStep, type OpTiming } from './op-timer';
import { fusedBeforeAfter, mocoMixmaskStep, resnetForward, resnetStep } from './sections/13-step-overhead';

function arg(args: string[], name: string, dflt: number): number {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(args[i + 1]);
  if (!Number.isFinite(v) || v <= 0) throw new Error(`profile-step: ${name} expects a positive number, got '${args[i + 1]}'`);
  return v;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const batch = arg(args, '--batch', 32);
  const width = arg(args, '--width', 64);
  const steps = arg(args, '--steps', 2);
  const top = arg(args, '--top', 25);
  const compare = args.includes('--compare-fused') ? arg(args, '--compare-fused', 3) : 0;
  const kind = args.includes('--step') ? args[args.indexOf('--step') + 1] : 'train';
  if (kind !== 'train' && kind !== 'forward' && kind !== 'moco-mixmask') throw new Error(`profile-step: --step must be train, forward or moco-mixmask, got '${kind}'`);
  const json = args.includes('--json');
  const report = await initBackend();
  if (!json) console.log(formatBackendReport(report) + '\n');

  const bench = kind === 'train' ? resnetStep(batch, width) : kind === 'forward' ? resnetForward(batch, width) : mocoMixmaskStep(batch, width);
  await bench.step(); // warm-up: operator creation, heap growth
  let total: OpTiming | null = null;
  for (let s = 0; s < steps; s++) {
    const t = await timeOps(() => bench.step(), { byShape: true });
    total = total ? addTimings(total, t) : t;
  }
  const shaped = perStep(total!, steps);
  const t = byOpName(shaped);
  let fused: { offMs: number; jsMs: number; onMs: number } | null = null;
  if (compare > 0) {
    if (tf.getBackend() !== 'wasm') throw new Error(`profile-step: --compare-fused needs the wasm backend (wasm or wasm+onednn), running ${report.name}`);
    fused = await fusedBeforeAfter(bench, compare);
  }
  bench.dispose();

  const imgS = (ms: number) => (batch * 1000) / ms;
  if (json) {
    console.log(JSON.stringify({ backend: report.name, threads: report.threads, step: bench.name, batch, ...t, heaviest: shaped.rows.slice(0, top), fused }));
    return;
  }
  const f = (v: number, w = 9) => v.toFixed(1).padStart(w);
  console.log(
    `${bench.name}, batch ${batch}: ${t.wallMs.toFixed(0)} ms per timed step (${imgS(t.wallMs).toFixed(1)} img/s), ${t.calls.toFixed(0)} ops: ` +
      `${t.kernelMs.toFixed(0)} ms inside kernels, ${t.aroundMs.toFixed(0)} ms around them, ${t.outsideMs.toFixed(0)} ms outside ops\n`,
  );
  console.log(`${'op'.padEnd(34)} ${'calls'.padStart(6)} ${'kernel ms'.padStart(9)} ${'around ms'.padStart(9)} ${'µs around/call'.padStart(14)} ${'share'.padStart(7)}`);
  for (const r of t.rows) {
    const ms = r.kernelMs + r.aroundMs;
    if (ms < 0.0005 * t.wallMs) continue;
    console.log(`${r.name.padEnd(34)} ${r.calls.toFixed(0).padStart(6)} ${f(r.kernelMs)} ${f(r.aroundMs)} ${f((1000 * r.aroundMs) / r.calls, 14)} ${((100 * ms) / t.wallMs).toFixed(1).padStart(6)}%`);
  }
  console.log(`\nheaviest (op, input shapes), kernel + around ms per step:`);
  for (const r of shaped.rows.slice(0, top)) console.log(`  ${f(r.kernelMs, 8)} +${f(r.aroundMs, 6)}  ×${r.calls.toFixed(0)}  ${r.name}`);
  if (fused) {
    console.log(
      `\nfused parameter updates, ${compare} alternating trials: without ${fused.offMs.toFixed(0)} ms (${imgS(fused.offMs).toFixed(1)} img/s), ` +
        `JavaScript loops ${fused.jsMs.toFixed(0)} ms (${imgS(fused.jsMs).toFixed(1)} img/s), ` +
        `the loops training runs (native on wasm+onednn, else SIMD) ${fused.onMs.toFixed(0)} ms (${imgS(fused.onMs).toFixed(1)} img/s): ${(fused.offMs / fused.onMs).toFixed(3)}×`,
    );
  }
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
