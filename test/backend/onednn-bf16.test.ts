import { test, before, after } from 'node:test';
import * as assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import { BackendCandidate, initBackend } from '../../lib/backend';
import { BF16_DETAIL, defaultAddonPath, installOnednnKernels, kernelStats, loadAddon, onednnCandidate, parsePrecision } from '../../lib/backend/onednn';
import { MlpHead, resnet18 } from '../../lib/models';
import { Rng } from '../../lib/util/rng';
import { type ConvCase, relError } from '../helpers';
import { lossAndGrads } from './train-step';
import { CONV_BN_EVAL_KERNEL, convBnEval } from '../../lib/backend/conv-bn-op';

/**
 * The bf16 mixed-precision mode of `wasm+onednn` (MIXMASK_PRECISION=bf16): every convolution
 * direction and the matmul in bf16 against the float32 `cpu` backend, within what rounding the
 * inputs to bf16 implies; that bf16 really changes the results; that fp32 is bit-for-bit what
 * it was once the switch is off; the refusal where the CPU lacks native bf16; the option's
 * parsing and report lines.
 *
 * The error bound. bf16 keeps 8 significant bits, so rounding (to nearest even) moves a value
 * by at most u = 2^-8 of itself; a product of two rounded inputs by at most 2u + u²; the f32
 * accumulation of K terms adds at most K·2^-24 of Σ|aᵢbᵢ| (and the f32 reference as much). So for
 * every output element,
 *     |bf16 − fp32| ≤ (2^-7 + 2^-16 + 2K·2^-24) · Σ|aᵢ||bᵢ|,
 * where Σ|aᵢ||bᵢ| is the same operation on |a| and |b| (computed on cpu). That bound is
 * rigorous (it cannot be loosened by luck, so it cannot hide a wrong kernel that is "close");
 * on top, the error over the whole tensor must look like rounding, not like a bug that the
 * worst-case bound tolerates: ‖bf16 − fp32‖₂ / ‖fp32‖₂ ≤ 2^-8 (random inputs measure ≈ 0.53·2^-8:
 * two independent roundings per product, errors of random sign, so no √K growth relative to
 * the output), and ≥ 2^-12 (fp32 gives ~1e-7: the inputs really were rounded).
 */
const built = fs.existsSync(defaultAddonPath());
const addonSkip = !built && !process.env.CI ? 'native/onednn addon not built (needs libdnnl-dev; node scripts/build-native.mjs)' : false;
function bf16Skip(): string | false {
  if (addonSkip) return addonSkip;
  const info = loadAddon().info();
  return info.bf16 ? false : `oneDNN reports ISA ${info.isa}, which has no native bf16 (needs avx512_core_bf16 or avx512_core_amx)`;
}
const skip = bf16Skip();

const OPTS = { winograd: true };
const U = 2 ** -8;
const rng = new Rng(4242);
function randn(n: number): Float32Array {
  return rng.fillNormal(new Float32Array(n), 0, 1);
}
const abs = (a: Float32Array) => a.map(Math.abs);

async function on(backend: 'wasm' | 'cpu', fn: () => tf.Tensor | tf.Tensor[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const outs = tf.tidy(fn);
  const list = Array.isArray(outs) ? outs : [outs];
  const data = list.map((t) => t.dataSync() as Float32Array);
  tf.dispose(list);
  return data;
}

function norm2(a: Float32Array, b?: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - (b ? b[i] : 0)) ** 2;
  return Math.sqrt(s);
}

/** The bf16 result `got` against the fp32 reference `want`, with `mag` = Σ|a||b| per element and K terms per sum. */
function checkBf16(what: string, got: Float32Array, want: Float32Array, mag: Float32Array, K: number): void {
  assert.equal(got.length, want.length, `${what}: length`);
  const coef = 2 ** -7 + 2 ** -16 + 2 * K * 2 ** -24;
  let worst = 0;
  let at = -1;
  for (let i = 0; i < got.length; i++) {
    const r = Math.abs(got[i] - want[i]) / (coef * mag[i] + 1e-30);
    if (!(r <= worst)) {
      worst = r;
      at = i;
    }
  }
  assert.ok(worst <= 1, `${what}: element ${at} is ${got[at]}, fp32 ${want[at]}, bound ${coef * mag[at]} (${worst.toFixed(2)}× the bound)`);
  const rel = norm2(got, want) / norm2(want);
  assert.ok(rel <= U, `${what}: ‖bf16 − fp32‖/‖fp32‖ = ${rel} > 2^-8`);
  assert.ok(rel >= 2 ** -12, `${what}: ‖bf16 − fp32‖/‖fp32‖ = ${rel}: as close as fp32, so bf16 did not run`);
}


// ResNet-18 layer shapes (scaled batch), odd sizes and pads. bf16 convolutions take oneDNN's own
// kernels or the im2col + matmul path (native/onednn/src/addon.cc): backward weights at ≤ 64
// output positions or 1×1 kernels, forward and backward data at ≤ 16 positions. Each path meets
// strides, odd sizes and asymmetric pads below; the test after them checks both paths ran.
const CASES: ConvCase[] = [
  { name: 'CIFAR stem 3×3 s1 pad 1, Ci 3 (oneDNN kernels)', n: 2, h: 32, w: 32, ci: 3, co: 64, k: 3, stride: 1, pad: 1 },
  { name: 'basic block 3×3 s1 pad 1, 64→64 at 16×16 (oneDNN kernels)', n: 2, h: 16, w: 16, ci: 64, co: 64, k: 3, stride: 1, pad: 1 },
  { name: 'basic block 3×3 s2 pad 1, 64→128, 16×16→8×8 (GEMM dW)', n: 2, h: 16, w: 16, ci: 64, co: 128, k: 3, stride: 2, pad: 1 },
  { name: '1×1 s2 downsample 64→128 (GEMM dW)', n: 2, h: 16, w: 16, ci: 64, co: 128, k: 1, stride: 2, pad: 0 },
  { name: '1×1 s1 bottleneck 64→96 at 12×12 (GEMM dW, 144 positions)', n: 2, h: 12, w: 12, ci: 64, co: 96, k: 1, stride: 1, pad: 0 },
  { name: 'layer4 3×3 s1 pad 1 at 4×4, 256→256 (GEMM all three)', n: 2, h: 4, w: 4, ci: 256, co: 256, k: 3, stride: 1, pad: 1 },
  { name: 'layer4 3×3 s2 8×8→4×4, 128→256 (GEMM all three)', n: 2, h: 8, w: 8, ci: 128, co: 256, k: 3, stride: 2, pad: 'same' },
  { name: '3×3 s2 pad 1, odd 9×11, 24→40 (GEMM dW)', n: 3, h: 9, w: 11, ci: 24, co: 40, k: 3, stride: 2, pad: 1 },
  { name: '3×3 s2 pad 1, odd 7×5 → 4×3, 24→40 (GEMM all three)', n: 3, h: 7, w: 5, ci: 24, co: 40, k: 3, stride: 2, pad: 1 },
  { name: "5×5 s2 'same', odd 11×9 (GEMM dW)", n: 2, h: 11, w: 9, ci: 4, co: 6, k: 5, stride: 2, pad: 'same' },
  { name: "5×5 s2 'same', odd 7×6 → 4×3 (GEMM all three)", n: 2, h: 7, w: 6, ci: 4, co: 6, k: 5, stride: 2, pad: 'same' },
  { name: '3×2 non-square, strides [2,1], explicit [[1,2],[0,1]] (GEMM dW)', n: 2, h: 9, w: 8, ci: 3, co: 5, k: [3, 2], stride: [2, 1], pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { name: '3×2 non-square, strides [2,1], explicit [[1,2],[0,1]], 5×3 → 3×3 (GEMM all three)', n: 2, h: 5, w: 3, ci: 3, co: 5, k: [3, 2], stride: [2, 1], pad: [[0, 0], [1, 2], [0, 1], [0, 0]] },
  { name: '3×3 s1 pad 3 (pad ≥ kernel), 3×4 → 7×8 (GEMM dW)', n: 2, h: 3, w: 4, ci: 5, co: 7, k: 3, stride: 1, pad: 3 },
  { name: '3×3 s2 pad 3 (pad ≥ kernel), 2×2 → 3×3 (GEMM all three)', n: 2, h: 2, w: 2, ci: 5, co: 7, k: 3, stride: 2, pad: 3 },
  { name: '3×3 s1 pad 3 (pad ≥ kernel), 5×6 → 9×10 (oneDNN kernels)', n: 2, h: 5, w: 6, ci: 3, co: 4, k: 3, stride: 1, pad: 3 },
];

before(async () => {
  if (skip) return;
  const r = await initBackend({ force: 'wasm+onednn', env: {}, precision: 'bf16', candidates: [onednnCandidate()] });
  assert.equal(r.precision, 'bf16');
  assert.ok(r.detail.includes(BF16_DETAIL), r.detail);
  assert.equal(loadAddon().info().precision, 'bf16');
  installOnednnKernels(loadAddon(), { ...OPTS, precision: 'bf16' });
});

after(() => {
  if (!skip) installOnednnKernels(loadAddon(), OPTS);
});

function convRun(c: ConvCase, xs: Float32Array, ws: Float32Array, dys: Float32Array, info: tf.backend_util.Conv2DInfo, [kh, kw]: [number, number]) {
  return () => {
    const x = tf.tensor4d(xs, [c.n, c.h, c.w, c.ci]);
    const w = tf.tensor4d(ws, [kh, kw, c.ci, c.co]);
    const dy = tf.tensor4d(dys, info.outShape);
    const attrs = { strides: c.stride, pad: c.pad, dataFormat: 'NHWC', dimRoundingMode: undefined };
    const dx = tf.engine().runKernel('Conv2DBackpropInput', { dy, filter: w }, { ...attrs, inputShape: x.shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
    const dw = tf.engine().runKernel('Conv2DBackpropFilter', { x, dy }, { ...attrs, filterShape: w.shape } as unknown as tf.NamedAttrMap) as tf.Tensor;
    return [tf.conv2d(x, w, c.stride as [number, number], c.pad as 'same'), dx, dw];
  };
}

for (const c of CASES) {
  test(`bf16 conv2d forward, dx and dW within bf16 rounding of the fp32 cpu backend: ${c.name}`, { skip }, async () => {
    const k: [number, number] = Array.isArray(c.k) ? c.k : [c.k, c.k];
    const info = tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.ci], [k[0], k[1], c.ci, c.co], c.stride as [number, number], 1, c.pad as 'same');
    const xs = randn(c.n * c.h * c.w * c.ci);
    const ws = randn(k[0] * k[1] * c.ci * c.co);
    const dys = randn(info.outShape.reduce((a, b) => a * b, 1));
    const calls = { ...kernelStats.calls };
    const before = tf.memory().numTensors;
    const got = await on('wasm', convRun(c, xs, ws, dys, info, k));
    const want = await on('cpu', convRun(c, xs, ws, dys, info, k));
    const mag = await on('cpu', convRun(c, abs(xs), abs(ws), abs(dys), info, k));
    await tf.setBackend('wasm');
    assert.equal(tf.memory().numTensors, before, 'tensors leaked');
    for (const name of ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter']) {
      assert.equal(kernelStats.calls[name], (calls[name] ?? 0) + 1, `${name} ran on oneDNN`);
    }
    const K = [k[0] * k[1] * c.ci, k[0] * k[1] * c.co, c.n * info.outHeight * info.outWidth];
    ['forward', 'dx', 'dW'].forEach((name, i) => checkBf16(name, got[i], want[i], mag[i], K[i]));
  });
}

// The evaluation-mode layer in bf16: the folded filter and x rounded to bf16, the shift, the
// residual and the ReLU in f32 — so the conv's bound holds with the folded filter's magnitudes
// (the ReLU only shrinks differences). 4×4 outputs take the GEMM and its epilogue, 16×16 oneDNN's
// kernel with the residual as a sum post-op.
for (const c of CASES.filter((e) => e.name.startsWith('basic block 3×3 s1') || e.name.startsWith('layer4 3×3 s1'))) {
  test(`bf16 evaluation-mode conv + BatchNorm + residual + ReLU within bf16 rounding of the fp32 composite on cpu: ${c.name}`, { skip }, async () => {
    const k = c.k as number;
    const out: [number, number, number, number] = [c.n, c.h, c.w, c.co];
    const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
    const xs = randn(size([c.n, c.h, c.w, c.ci]));
    const ws = randn(k * k * c.ci * c.co);
    const rs = randn(size(out));
    const bn = { scale: randn(c.co), offset: randn(c.co), mean: randn(c.co), variance: rng.fillUniform(new Float32Array(c.co), 0.2, 2) };
    const run = (relu: boolean) => () =>
      convBnEval(
        {
          x: tf.tensor4d(xs, [c.n, c.h, c.w, c.ci]),
          filter: tf.tensor4d(ws, [k, k, c.ci, c.co]),
          ...(Object.fromEntries(Object.entries(bn).map(([n, v]) => [n, tf.tensor1d(v)])) as { scale: tf.Tensor1D; offset: tf.Tensor1D; mean: tf.Tensor1D; variance: tf.Tensor1D }),
          residual: tf.tensor4d(rs, out),
        },
        { strides: 1, pad: c.pad as number, varianceEpsilon: 1e-5, relu },
      );
    // Σ|x|·|W·s| per output: the same conv on magnitudes, s = γ/√(σ² + ε).
    const s = bn.scale.map((g, o) => Math.abs(g) / Math.sqrt(bn.variance[o] + 1e-5));
    const absFolded = abs(ws).map((w, i) => w * s[i % c.co]);
    const mag = () => tf.conv2d(tf.tensor4d(abs(xs), [c.n, c.h, c.w, c.ci]), tf.tensor4d(absFolded, [k, k, c.ci, c.co]), 1, c.pad as number);
    const calls = kernelStats.calls[CONV_BN_EVAL_KERNEL] ?? 0;
    const [got, gotLinear] = [...(await on('wasm', run(true))), ...(await on('wasm', run(false)))];
    const [want, wantLinear, m] = [...(await on('cpu', run(true))), ...(await on('cpu', run(false))), ...(await on('cpu', mag))];
    await tf.setBackend('wasm');
    assert.equal(kernelStats.calls[CONV_BN_EVAL_KERNEL], calls + 2, 'ran on oneDNN');
    if (c.h === 4) assert.ok((kernelStats.impls[CONV_BN_EVAL_KERNEL] ?? []).some((i) => /^im2col\+/.test(i)), `the GEMM path ran: ${kernelStats.impls[CONV_BN_EVAL_KERNEL]}`);
    checkBf16('residual + relu', got, want, m, k * k * c.ci);
    checkBf16('residual', gotLinear, wantLinear, m, k * k * c.ci);
  });
}

test('bf16: AMX/AVX-512 BF16 implementations ran, and both paths (oneDNN kernel, im2col + matmul) ran in every direction', { skip }, () => {
  // Whether bf16 ran is what the ≥ 2^-12 checks above prove (oneDNN never converts silently: a
  // primitive built for bf16 operands computes on them, whatever its name, e.g. "gemm:jit" for
  // the odd 5×5 and 3×2 shapes); the names show the native kernels served the ResNet shapes.
  for (const name of ['Conv2D', 'Conv2DBackpropInput', 'Conv2DBackpropFilter']) {
    const impls = kernelStats.impls[name] ?? [];
    assert.ok(impls.some((s) => /bf16/.test(s)), `${name}: ${impls}`);
    assert.ok(impls.some((s) => s.startsWith('im2col+')) && impls.some((s) => !s.startsWith('im2col+')), `${name}: ${impls}`);
  }
});

test('bf16 BatchMatMul within bf16 rounding of cpu, every transpose combination and rank 2', { skip }, async () => {
  const cases: Array<[number, number, number, number]> = [
    [1, 32, 512, 512],
    [3, 5, 7, 9],
    [2, 64, 128, 40],
  ];
  for (const [B, M, K, N] of cases) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const as = randn(B * M * K);
        const bs = randn(B * K * N);
        const run = (a: Float32Array, b: Float32Array) => () => tf.matMul(tf.tensor3d(a, ta ? [B, K, M] : [B, M, K]), tf.tensor3d(b, tb ? [B, N, K] : [B, K, N]), ta, tb);
        const calls = kernelStats.calls['BatchMatMul'] ?? 0;
        const got = await on('wasm', run(as, bs));
        const want = await on('cpu', run(as, bs));
        const mag = await on('cpu', run(abs(as), abs(bs)));
        await tf.setBackend('wasm');
        assert.equal(kernelStats.calls['BatchMatMul'], calls + 1);
        checkBf16(`[${B},${M},${K},${N}] ta=${ta} tb=${tb}`, got[0], want[0], mag[0], K);
      }
    }
  }
  // Rank 2 with a transposed operand, as the projection head's gradient hands it over.
  const a2 = randn(48 * 64);
  const b2 = randn(48 * 40);
  const run2 = (a: Float32Array, b: Float32Array) => () => tf.matMul(tf.tensor2d(a, [48, 64]), tf.tensor2d(b, [48, 40]), true, false);
  const got = await on('wasm', run2(a2, b2));
  const want = await on('cpu', run2(a2, b2));
  const mag = await on('cpu', run2(abs(a2), abs(b2)));
  await tf.setBackend('wasm');
  checkBf16('rank 2, transposeA', got[0], want[0], mag[0], 48);
  assert.ok((kernelStats.impls['BatchMatMul'] ?? []).every((s) => /bf16/.test(s)), `${kernelStats.impls['BatchMatMul']}`);
});

test('switching bf16 off gives fp32 back bit for bit (and within 1e-5 of cpu); switching it on changes the results', { skip }, async () => {
  const addon = loadAddon();
  const c = CASES[2];
  const k: [number, number] = [3, 3];
  const info = tf.backend_util.computeConv2DInfo([c.n, c.h, c.w, c.ci], [3, 3, c.ci, c.co], c.stride as number, 1, c.pad as number);
  const xs = randn(c.n * c.h * c.w * c.ci);
  const ws = randn(9 * c.ci * c.co);
  const dys = randn(info.outShape.reduce((a, b) => a * b, 1));
  const as = randn(16 * 96);
  const bs = randn(96 * 24);
  const run = () => [...(convRun(c, xs, ws, dys, info, k)() as tf.Tensor[]), tf.matMul(tf.tensor2d(as, [16, 96]), tf.tensor2d(bs, [96, 24]))];
  try {
    installOnednnKernels(addon, OPTS); // default: fp32
    assert.equal(addon.info().precision, 'fp32');
    const fp32a = await on('wasm', run);
    installOnednnKernels(addon, { ...OPTS, precision: 'bf16' });
    const bf16 = await on('wasm', run);
    installOnednnKernels(addon, { ...OPTS, precision: 'fp32' });
    const fp32b = await on('wasm', run);
    const want = await on('cpu', run);
    await tf.setBackend('wasm');
    ['forward', 'dx', 'dW', 'matmul'].forEach((name, i) => {
      assert.deepEqual(fp32b[i], fp32a[i], `${name}: fp32 after bf16 differs from fp32 before`);
      assert.ok(relError(fp32b[i], want[i]) < 1e-5, `${name}: fp32 vs cpu rel err ${relError(fp32b[i], want[i])}`);
      const d = norm2(bf16[i], fp32a[i]) / norm2(fp32a[i]);
      assert.ok(d > 2 ** -12 && d < U, `${name}: bf16 vs fp32 ‖Δ‖/‖fp32‖ = ${d}`);
    });
  } finally {
    installOnednnKernels(addon, { ...OPTS, precision: 'bf16' });
  }
});

/** Rounds to bf16 (nearest even) and back, as oneDNN's f32→bf16 reorders do (no NaNs here). */
function roundBf16(v: Float32Array): Float32Array {
  const f = new Float32Array(v);
  const u = new Uint32Array(f.buffer);
  for (let i = 0; i < u.length; i++) u[i] = ((u[i] + 0x7fff + ((u[i] >>> 16) & 1)) >>> 0) & 0xffff0000;
  return f;
}

/**
 * The mixed-precision reference: the cpu backend's own float32 kernels, with the inputs of every
 * convolution direction and matmul rounded to bf16 first. Returns a function that restores them.
 */
function emulateBf16OnCpu(): () => void {
  type CpuBackend = { readSync(id: unknown): Float32Array; makeTensorInfo(shape: number[], dtype: 'float32', values: Float32Array): tf.TensorInfo; disposeIntermediateTensorInfo(t: tf.TensorInfo): void };
  const saved: tf.KernelConfig[] = [];
  const rounded: Array<[string, string[]]> = [
    ['Conv2D', ['x', 'filter']],
    ['Conv2DBackpropInput', ['dy', 'filter']],
    ['Conv2DBackpropFilter', ['x', 'dy']],
    ['BatchMatMul', ['a', 'b']],
  ];
  for (const [name, operands] of rounded) {
    const orig = tf.getKernel(name, 'cpu')!;
    saved.push(orig);
    tf.unregisterKernel(name, 'cpu');
    tf.registerKernel({
      ...orig,
      kernelFunc: ((args: { inputs: tf.NamedTensorInfoMap; backend: CpuBackend; attrs: tf.NamedAttrMap }) => {
        const copies: Record<string, tf.TensorInfo> = {};
        for (const op of operands) {
          const t = args.inputs[op]!;
          copies[op] = args.backend.makeTensorInfo(t.shape, 'float32', roundBf16(args.backend.readSync(t.dataId)));
        }
        const out = orig.kernelFunc({ ...args, inputs: { ...args.inputs, ...copies } } as never);
        for (const c of Object.values(copies)) args.backend.disposeIntermediateTensorInfo(c);
        return out;
      }) as unknown as tf.KernelFunc,
    });
  }
  return () => {
    for (const k of saved) {
      tf.unregisterKernel(k.kernelName, 'cpu');
      tf.registerKernel(k);
    }
  };
}

test('a ResNet-18 training step in bf16 is fp32 training with bf16-rounded convolution and matmul inputs (emulated on cpu): as far from fp32 as that emulation, and closer to it than to fp32', { skip }, async () => {
  // A training step at initialisation is ill-conditioned (train-mode BatchNorm over few values,
  // NT-Xent): perturbing the input by 2^-9 in float32 already moves this step's gradients by
  // ~13%, and bf16 rounding moves them by ~31%. So no tight bound on bf16 − fp32 exists; instead
  // the step is compared with its definition: the same step on cpu with every convolution and
  // matmul input rounded to bf16. Measured (1 thread): gradients ‖bf16 − fp32‖/‖fp32‖ = 0.31,
  // emulation − fp32 0.33, bf16 − emulation 0.16 (rounding flips where the two differ at float32
  // noise); loss bf16 1.9173, emulation 1.9198, fp32 1.9031. A wrong kernel breaks the first two
  // ratios by far; the BatchNorms (fp32 in both) are also part of the step.
  const shape: [number, number, number, number] = [8, 16, 16, 3];
  const x = new Rng(3).fillNormal(new Float32Array(8 * 16 * 16 * 3), 0, 1);
  const build = () => {
    const backbone = resnet18({ width: 16, seed: 5 });
    return { backbone, head: new MlpHead(backbone.featureDim, [64], 32, { seed: 6 }) };
  };
  const bf = await lossAndGrads('wasm', build, x, shape);
  const restore = emulateBf16OnCpu();
  let emu: Awaited<ReturnType<typeof lossAndGrads>>;
  try {
    emu = await lossAndGrads('cpu', build, x, shape);
  } finally {
    restore();
  }
  const fp = await lossAndGrads('cpu', build, x, shape);
  await tf.setBackend('wasm');
  const dev = (a: typeof bf, b: typeof bf) => {
    let num = 0;
    let den = 0;
    for (const [name, g] of b.grads) {
      num += norm2(a.grads.get(name)!, g) ** 2;
      den += norm2(g) ** 2;
    }
    return Math.sqrt(num / den);
  };
  const bfFp = dev(bf, fp);
  const emuFp = dev(emu, fp);
  const bfEmu = dev(bf, emu);
  const msg = `gradients: bf16−fp32 ${bfFp.toFixed(3)}, emulation−fp32 ${emuFp.toFixed(3)}, bf16−emulation ${bfEmu.toFixed(3)}; loss bf16 ${bf.loss}, emulation ${emu.loss}, fp32 ${fp.loss}`;
  assert.ok(Number.isFinite(bf.loss), msg);
  assert.ok(bfFp > 0.5 * emuFp && bfFp < 2 * emuFp, `bf16 is not as far from fp32 as the emulation: ${msg}`);
  assert.ok(bfEmu < 0.75 * bfFp, `bf16 is not closer to the emulation than to fp32: ${msg}`);
  assert.ok(Math.abs(bf.loss - emu.loss) < Math.abs(fp.loss - emu.loss), `loss: ${msg}`);
});

test('where oneDNN reports no native bf16 (DNNL_MAX_CPU_ISA=AVX512_CORE), the addon refuses bf16 naming the ISA, and the backend stays fp32 and says why', { skip: addonSkip }, () => {
  const backendDir = path.resolve(__dirname, '..', '..', 'lib', 'backend');
  const script = `
    const backend = require(${JSON.stringify(backendDir)});
    const onednn = require(${JSON.stringify(path.join(backendDir, 'onednn'))});
    (async () => {
      const out = {};
      const addon = onednn.loadAddon();
      out.info = addon.info();
      try { addon.setPrecision('bf16'); out.set = 'accepted'; } catch (e) { out.set = e.message; }
      out.after = addon.info().precision;
      const r = await backend.initBackend({ force: 'wasm+onednn', env: { MIXMASK_PRECISION: 'bf16' }, candidates: [onednn.onednnCandidate()] });
      out.precision = r.precision;
      out.detail = r.detail;
      try { onednn.installOnednnKernels(addon, { precision: 'bf16' }); out.install = 'accepted'; } catch (e) { out.install = e.message; }
      process.stdout.write(JSON.stringify(out));
    })().catch((e) => { process.stdout.write(JSON.stringify({ error: e.message })); });
  `;
  const res = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, DNNL_MAX_CPU_ISA: 'AVX512_CORE', MIXMASK_THREADS: '1' } });
  assert.equal(res.status, 0, res.stderr);
  const out = JSON.parse(res.stdout) as { info: { isa: string; bf16: boolean }; set: string; after: string; precision: string; detail: string; install: string; error?: string };
  assert.equal(out.error, undefined);
  if (out.info.isa !== 'avx512_core') {
    // DNNL_MAX_CPU_ISA only lowers the ISA: a CPU below AVX-512 reports its own (also without bf16).
    assert.equal(out.info.bf16, false, `${out.info.isa} reported with bf16`);
  }
  assert.equal(out.info.bf16, false);
  assert.match(out.set, new RegExp(`oneDNN reports ISA ${out.info.isa}, which has no native bf16`));
  assert.equal(out.after, 'fp32');
  assert.equal(out.precision, 'fp32');
  assert.match(out.detail, /bf16 asked for .* but unavailable, fp32 instead: .*no native bf16/);
  assert.match(out.install, /precision 'bf16' is not available: .*no native bf16/);
});

test('precision option and MIXMASK_PRECISION: fp32 by default, bad values are errors naming the value, a backend without bf16 says so', async () => {
  assert.equal(parsePrecision(undefined), 'fp32');
  assert.equal(parsePrecision(''), 'fp32');
  assert.equal(parsePrecision(' BF16 '), 'bf16');
  assert.throws(() => parsePrecision('fp16'), /MIXMASK_PRECISION is 'fp16', expected 'fp32' or 'bf16'/);
  const stub: BackendCandidate = { name: 'stub', check: async () => ({ ok: true, reason: '' }), activate: async () => ({ detail: 'stand-in', threads: 1 }) };
  await assert.rejects(initBackend({ env: { MIXMASK_PRECISION: 'half' }, candidates: [stub] }), /MIXMASK_PRECISION is 'half'/);
  await assert.rejects(initBackend({ env: {}, precision: 'fp8' as 'bf16', candidates: [stub] }), /option "precision" is 'fp8'/);
  const plain = await initBackend({ env: {}, candidates: [stub] });
  assert.equal(plain.precision, 'fp32');
  assert.equal(plain.detail, 'stand-in');
  const asked = await initBackend({ env: { MIXMASK_PRECISION: 'bf16' }, candidates: [stub] });
  assert.equal(asked.precision, 'fp32');
  assert.match(asked.detail, /bf16 asked for but stub has no bf16 mode .*: fp32/);
  // The option wins over the environment.
  const off = await initBackend({ env: { MIXMASK_PRECISION: 'bf16' }, precision: 'fp32', candidates: [stub] });
  assert.equal(off.detail, 'stand-in');
});
