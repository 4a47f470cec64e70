/**
 * Per-kernel profile of one ResNet-18/CIFAR training step (the step of bench/sections/10-train):
 *   node dist/bench/profile-step.js [--batch 32] [--steps 2] [--top 25] [--json]
 * Backend and threads as for the bench (MIXMASK_BACKEND, MIXMASK_THREADS). Prints, per kernel
 * name, calls and milliseconds per step, then the heaviest individual (kernel, shape) pairs,
 * and the time outside kernels (tape bookkeeping, JavaScript, optimizer glue).
 */
import * as tf from '@tensorflow/tfjs';
import { formatBackendReport, initBackend } from '../lib/backend';
import { makeTrainBench } from './sections/10-train';

interface Row {
  name: string;
  calls: number;
  ms: number;
}

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
  const steps = arg(args, '--steps', 2);
  const top = arg(args, '--top', 25);
  const json = args.includes('--json');
  const report = await initBackend();
  if (!json) console.log(formatBackendReport(report) + '\n');

  const bench = makeTrainBench(batch);
  await bench.step(); // warm-up: operator creation, heap growth
  const byKernel = new Map<string, Row>();
  const byShape = new Map<string, Row>();
  let wall = 0;
  for (let s = 0; s < steps; s++) {
    const t0 = process.hrtime.bigint();
    const info = await tf.profile(() => bench.step());
    wall += Number(process.hrtime.bigint() - t0) / 1e6;
    for (const k of info.kernels) {
      const ms = Number(k.kernelTimeMs) || 0;
      const name = k.name;
      const a = byKernel.get(name) ?? { name, calls: 0, ms: 0 };
      a.calls++;
      a.ms += ms;
      byKernel.set(name, a);
      const key = `${name} ${JSON.stringify(k.inputShapes)}`;
      const b = byShape.get(key) ?? { name: key, calls: 0, ms: 0 };
      b.calls++;
      b.ms += ms;
      byShape.set(key, b);
    }
  }
  bench.dispose();

  const perStep = (r: Row): Row => ({ name: r.name, calls: r.calls / steps, ms: r.ms / steps });
  const kernels = [...byKernel.values()].map(perStep).sort((a, b) => b.ms - a.ms);
  const shapes = [...byShape.values()].map(perStep).sort((a, b) => b.ms - a.ms).slice(0, top);
  const stepMs = wall / steps;
  const inKernels = kernels.reduce((s, r) => s + r.ms, 0);
  if (json) {
    console.log(JSON.stringify({ backend: report.name, threads: report.threads, batch, stepMs, inKernelsMs: inKernels, kernels, heaviest: shapes }));
    return;
  }
  console.log(`batch ${batch}: ${stepMs.toFixed(0)} ms per profiled step (${((batch * 1000) / stepMs).toFixed(1)} img/s), ${inKernels.toFixed(0)} ms inside kernels, ${(stepMs - inKernels).toFixed(0)} ms outside (tape, JS, profiler)\n`);
  console.log(`${'kernel'.padEnd(34)} ${'calls'.padStart(6)} ${'ms/step'.padStart(9)} ${'share'.padStart(7)}`);
  for (const r of kernels) {
    if (r.ms < 0.05 * (stepMs / 100)) continue;
    console.log(`${r.name.padEnd(34)} ${r.calls.toFixed(0).padStart(6)} ${r.ms.toFixed(1).padStart(9)} ${((100 * r.ms) / stepMs).toFixed(1).padStart(6)}%`);
  }
  console.log(`\nheaviest (kernel, input shapes), ms per step:`);
  for (const r of shapes) console.log(`  ${r.ms.toFixed(1).padStart(8)}  ×${r.calls.toFixed(0)}  ${r.name}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? e.stack : e);
  process.exit(1);
});
