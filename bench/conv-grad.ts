/**
 * Conv2DBackpropFilter (dW) on the wasm backend, per ResNet-18/CIFAR layer shape:
 *   node dist/bench/conv-grad.js [--batch 32] [--reps 7] [--threads T] [--gemm 2x512,8x512] [--only NAME] [--json]
 * Times each implementation back to back in the same process (interleaved repetitions, median)
 * and prints GFLOP/s (2·N·OH·OW·KH·KW·Ci·Co per call) by wall-clock and by process CPU time (at
 * 1 thread on a shared machine the CPU time is the steadier of the two: it leaves out the time
 * other processes hold the core), and the largest relative difference to the convolution:
 *   conv       dW as one dilated forward convolution (conv-grad.ts, the previous default)
 *   gemm/<c>  per-tap GEMMs on a shared padded grid, the kernel's chunk (<c> images)
 *   im2col/<c> per-tap GEMMs on an im2col copy of x, the kernel's chunk
 *   gemm/<c>x<b> per-tap GEMMs, <c> images per chunk, <b> output channels per GEMM (conv-filter-gemm.ts)
 *   kernel(…)  the registered Conv2DBackpropFilter, which picks one of them per shape
 * Threads as for the bench (MIXMASK_THREADS) unless --threads is given.
 */
import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { formatBackendReport, initBackend } from '../lib/backend';
import { chooseFilterAlgorithm, conv2DBackpropFilter, convFilterViaConv, setConvFilterAlgorithm } from '../lib/backend/wasm/conv-grad';
import { FilterGemmOptions, filterGradGemm, filterGradIm2col } from '../lib/backend/wasm/conv-filter-gemm';
import { geometry, type Info } from '../lib/backend/wasm/wasm-ops';
import { relError } from '../lib/util/numeric';

interface Shape {
  name: string;
  hw: number;
  ci: number;
  co: number;
  k: number;
  stride: number;
  pad: number;
}

/** The distinct convolutions of ResNet-18 with the CIFAR stem (calls per step in `count`). */
const SHAPES: Array<Shape & { count: number }> = [
  { name: 'stem 32² 3→64 3×3', hw: 32, ci: 3, co: 64, k: 3, stride: 1, pad: 1, count: 1 },
  { name: 'l1 32² 64 3×3', hw: 32, ci: 64, co: 64, k: 3, stride: 1, pad: 1, count: 4 },
  { name: 'l2 32²→16² 64→128 3×3 s2', hw: 32, ci: 64, co: 128, k: 3, stride: 2, pad: 1, count: 1 },
  { name: 'l2 down 1×1 s2', hw: 32, ci: 64, co: 128, k: 1, stride: 2, pad: 0, count: 1 },
  { name: 'l2 16² 128 3×3', hw: 16, ci: 128, co: 128, k: 3, stride: 1, pad: 1, count: 3 },
  { name: 'l3 16²→8² 128→256 3×3 s2', hw: 16, ci: 128, co: 256, k: 3, stride: 2, pad: 1, count: 1 },
  { name: 'l3 down 1×1 s2', hw: 16, ci: 128, co: 256, k: 1, stride: 2, pad: 0, count: 1 },
  { name: 'l3 8² 256 3×3', hw: 8, ci: 256, co: 256, k: 3, stride: 1, pad: 1, count: 3 },
  { name: 'l4 8²→4² 256→512 3×3 s2', hw: 8, ci: 256, co: 512, k: 3, stride: 2, pad: 1, count: 1 },
  { name: 'l4 down 1×1 s2', hw: 8, ci: 256, co: 512, k: 1, stride: 2, pad: 0, count: 1 },
  { name: 'l4 4² 512 3×3', hw: 4, ci: 512, co: 512, k: 3, stride: 1, pad: 1, count: 3 },
];

function arg(args: string[], name: string): string | undefined {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
}

function median(v: number[]): number {
  const s = [...v].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const batch = Number(arg(args, '--batch') ?? 32);
  const reps = Number(arg(args, '--reps') ?? 7);
  const threadsArg = arg(args, '--threads');
  // Extra configurations of the grid GEMM as chunk×coBlock, e.g. "32x512,8x64".
  const configs = (arg(args, '--gemm') ?? '').split(',').filter((c) => c !== '').map((c) => c.split('x').map(Number));
  const only = arg(args, '--only');
  const json = args.includes('--json');
  const report = await initBackend({ force: 'wasm', threads: threadsArg ? Number(threadsArg) : undefined });
  if (!json) console.log(formatBackendReport(report) + '\n');
  const backend = tf.backend() as BackendWasm;

  // Per implementation: Σ calls per step × median, wall-clock and CPU time (ms).
  const total = { wall: {} as Record<string, number>, cpu: {} as Record<string, number> };
  if (!json) console.log('GFLOP/s per call, wall-clock/CPU-time medians (CPU time: the whole process, all threads)');
  for (const s of SHAPES) {
    if (only && !s.name.includes(only)) continue;
    const x = tf.randomNormal([batch, s.hw, s.hw, s.ci]) as tf.Tensor4D;
    const filterShape: [number, number, number, number] = [s.k, s.k, s.ci, s.co];
    const outShape = tf.backend_util.computeConv2DInfo(x.shape, filterShape, s.stride, 1, s.pad).outShape;
    const dy = tf.randomNormal(outShape) as tf.Tensor4D;
    const attrs = { strides: s.stride, pad: s.pad, dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape };
    const g = geometry(x.shape, filterShape, attrs);
    const flops = 2 * g.N * g.OH * g.OW * g.KH * g.KW * g.Ci * g.Co;
    // Tensors are TensorInfos to the backend's kernels.
    const xi = x as unknown as Info;
    const inputs = { x: xi, dy: dy as unknown as Info };
    setConvFilterAlgorithm('gemm');
    const gemmAuto = chooseFilterAlgorithm(g) as { algo: 'gemm'; opts: FilterGemmOptions };
    setConvFilterAlgorithm('im2col');
    const im2colAuto = chooseFilterAlgorithm(g) as { algo: 'im2col'; chunk: number };
    setConvFilterAlgorithm('auto');
    const picked = chooseFilterAlgorithm(g).algo;

    const impls: Array<[string, () => Info]> = [
      ['conv', () => convFilterViaConv(backend, xi, inputs.dy, g)],
      [`gemm/${gemmAuto.opts.chunk}`, () => filterGradGemm(backend, xi, inputs.dy, g, gemmAuto.opts)],
      [`im2col/${im2colAuto.chunk}`, () => filterGradIm2col(backend, xi, inputs.dy, g, im2colAuto.chunk)],
      ...configs.map(([chunk, coBlock]): [string, () => Info] => [`gemm/${chunk}x${coBlock}`, () => filterGradGemm(backend, xi, inputs.dy, g, { chunk, coBlock })]),
      [`kernel(${picked})`, () => conv2DBackpropFilter({ inputs, backend, attrs: attrs as unknown as tf.NamedAttrMap })],
    ];
    const ref = impls[0][1]();
    const refData = (backend.typedArrayFromHeap(ref) as Float32Array).slice();
    backend.disposeData(ref.dataId);
    const times = impls.map(() => [] as number[]);
    const cpu = impls.map(() => [] as number[]);
    const errs = impls.map(() => 0);
    for (let r = -1; r < reps; r++) {
      impls.forEach(([, fn], i) => {
        const t0 = process.hrtime.bigint();
        const c0 = process.cpuUsage();
        const out = fn();
        const c = process.cpuUsage(c0);
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        if (r >= 0) {
          times[i].push(ms);
          cpu[i].push((c.user + c.system) / 1e3);
        } else {
          errs[i] = relError(backend.typedArrayFromHeap(out) as Float32Array, refData);
        }
        backend.disposeData(out.dataId);
      });
    }
    const med = times.map(median);
    const medCpu = cpu.map(median);
    const gf = med.map((ms) => flops / ms / 1e6);
    const gfCpu = medCpu.map((ms) => flops / ms / 1e6);
    // Totals under shape-independent names (the chunk in `gemm/<c>` varies per shape).
    for (const [i, [n]] of impls.entries()) {
      const key = i === 1 ? 'gemm' : i === 2 ? 'im2col' : i === impls.length - 1 ? 'kernel' : n;
      total.wall[key] = (total.wall[key] ?? 0) + s.count * med[i];
      total.cpu[key] = (total.cpu[key] ?? 0) + s.count * medCpu[i];
    }
    if (json) {
      const per = (v: number[], d: number) => Object.fromEntries(impls.map(([n], i) => [n, +v[i].toFixed(d)]));
      console.log(JSON.stringify({ shape: s.name, batch, threads: report.threads, gflops: per(gf, 2), gflopsCpu: per(gfCpu, 2), ms: per(med, 2), cpuMs: per(medCpu, 2), maxRelDiff: Math.max(...errs) }));
    } else {
      const cells = impls.map(([n], i) => `${n} ${gf[i].toFixed(1)}/${gfCpu[i].toFixed(1)}`).join('  ');
      console.log(`${s.name.padEnd(28)} ${cells}  max rel diff ${Math.max(...errs).toExponential(1)}`);
    }
    tf.dispose([x, dy]);
  }
  const fmt = (r: Record<string, number>) => Object.entries(r).map(([n, ms]) => `${n} ${ms.toFixed(0)}`).join(', ');
  if (json) console.log(JSON.stringify({ perStepMs: total.wall, perStepCpuMs: total.cpu, batch, threads: report.threads }));
  else console.log(`\ndW of one ResNet-18 step (Σ calls × median, ms): wall ${fmt(total.wall)}; CPU ${fmt(total.cpu)}`);
}

main().catch((e) => {
  console.error(e instanceof Error ? (e.stack ?? e.message) : e);
  process.exit(1);
});
