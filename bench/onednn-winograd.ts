/**
 * The four convolution algorithms of native/onednn — oneDNN's direct kernels, oneDNN's Winograd
 * F(4×4, 3×3), our Winograd F(2×2, 3×3) and F(4×4, 3×3) — per 3×3 stride-1 layer shape of
 * the models this project trains (ResNet-18/CIFAR at width 64, batch 32 and 128; width 16 at
 * batch 128 and 384 — three views in one pass — as the cpu profile runs it):
 *   node dist/bench/onednn-winograd.js [--threads 1] [--reps 5]
 * For each shape and direction (forward, backward data, backward weights) the four run back to
 * back in the same process, median of --reps calls after one warm-up; the algorithm the rule in
 * lib/backend/onednn/kernels.ts (`convAlgorithm`) picks is starred. Each layer runs alone here,
 * its weights warm in cache; in a training step they are not, which is where F(2×2) gains most
 * (docs/performance.md). Rerun it on another CPU to check the rule there.
 */
import * as tf from '@tensorflow/tfjs';
import { loadAddon } from '../lib/backend/onednn';
import { CONV_ALGORITHM } from '../lib/backend/onednn/addon';
import { convAlgorithm } from '../lib/backend/onednn/kernels';
import { Rng } from '../lib/util/rng';

const SHAPES: Array<[batch: number, hw: number, channels: number]> = [
  [32, 32, 64], [32, 16, 128], [32, 8, 256], [32, 4, 512],
  [128, 32, 64], [128, 16, 128], [128, 8, 256], [64, 4, 512], [128, 4, 512],
  [128, 32, 16], [128, 16, 32], [128, 8, 64], [128, 4, 128],
  [384, 32, 16], [384, 16, 32], [384, 8, 64], [384, 4, 128],
];

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(name);
  if (i < 0) return dflt;
  const v = Number(process.argv[i + 1]);
  if (!Number.isInteger(v) || v < 1) throw new Error(`onednn-winograd: ${name} expects a positive integer, got '${process.argv[i + 1]}'`);
  return v;
}

function main(): void {
  const threads = arg('--threads', 1);
  const reps = arg('--reps', 5);
  const addon = loadAddon();
  addon.setThreads(threads);
  const info = addon.info();
  console.log(`oneDNN ${info.version} (${info.isa}), ${threads} thread${threads === 1 ? '' : 's'}, median of ${reps} calls; ms direct / oneDNN Winograd F(4×4) / our F(2×2) / our F(4×4), * = the rule's pick`);
  console.log('| N×H×W×C | tiles 2×2 | forward | backward data | backward weights |');
  console.log('|---|---|---|---|---|');
  const rng = new Rng(1);
  const median = (f: () => void): number => {
    f();
    const t: number[] = [];
    for (let i = 0; i < reps; i++) {
      const t0 = process.hrtime.bigint();
      f();
      t.push(Number(process.hrtime.bigint() - t0) / 1e6);
    }
    return t.sort((a, b) => a - b)[Math.floor(reps / 2)];
  };
  for (const [n, hw, c] of SHAPES) {
    const dims = [n, hw, hw, c, c, 3, 3, hw, hw, 1, 1, 1, 1, 1, 1];
    const act = () => rng.fillNormal(new Float32Array(n * hw * hw * c), 0, 1);
    const x = act();
    const dy = act();
    const w = rng.fillNormal(new Float32Array(9 * c * c), 0, 0.1);
    const y = new Float32Array(x.length);
    const dx = new Float32Array(x.length);
    const dw = new Float32Array(w.length);
    const picked = convAlgorithm(tf.backend_util.computeConv2DInfo([n, hw, hw, c], [3, 3, c, c], 1, 1, 'same'), {});
    const algorithms = [CONV_ALGORITHM.direct, CONV_ALGORITHM.onednnF4x4, CONV_ALGORITHM.oursF2x2, CONV_ALGORITHM.oursF4x4];
    const cells = ([[1, x, w, y], [2, dy, w, dx], [3, x, dy, dw]] as const).map(([kind, a, b, out]) =>
      algorithms.map((alg) => `${median(() => addon.conv(kind, a, b, out, dims, alg)).toFixed(1)}${alg === picked ? '*' : ''}`).join(' / '),
    );
    const tiles = n * Math.ceil(hw / 2) ** 2;
    console.log(`| ${n}×${hw}×${hw}×${c} | ${tiles} | ${cells.join(' | ')} |`);
  }
}

main();
