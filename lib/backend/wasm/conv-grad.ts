import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { FilterGemmOptions, filterGradGemm, filterGradIm2col, planFilterGemm } from './conv-filter-gemm';
import { alloc, conv2d, f32, Geometry, geometry, heapF32, Info, offsetF32, release, releaseView, slice, transpose, view } from './wasm-ops';

/**
 * Convolution gradients for the wasm backend, expressed as forward convolutions (dx, and dW
 * where that is faster) or as XNNPACK GEMMs (dW, conv-filter-gemm.ts) so that they run on
 * XNNPACK (multi-threaded, SIMD) instead of the stock single-threaded loops.
 *
 * Notation: x [N,H,W,Ci], filter [KH,KW,Ci,Co] (HWIO), dy [N,OH,OW,Co]; forward
 *   y[n,o,p,co] = Σ x[n, o·sh + kh − top, p·sw + kw − left, ci] · w[kh,kw,ci,co]
 * with explicit pads taken from tfjs's own conv info (so 'same', 'valid', numbers and explicit
 * paddings all reduce to top/left offsets). Dilated forward convs are not supported here (tfjs
 * itself rejects dilation > 1 in the conv2d gradient).
 */

/** Images per dW convolution: bounds the transposed copies of x and dy held at once. */
let dwChunk = 64;
export function setConvFilterChunk(n: number): void {
  dwChunk = Math.max(1, Math.floor(n));
}

/**
 * Which dW algorithm runs: 'auto' picks per shape (`chooseFilterAlgorithm`); 'conv', 'gemm'
 * and 'im2col' force one (tests, bench/conv-grad.ts). `gemmChunk` and `gemmCoBlock` override
 * the GEMMs' images per chunk and (grid GEMM only) output channels per GEMM call.
 */
export type FilterAlgorithm = 'auto' | 'conv' | 'gemm' | 'im2col';
export type FilterChoice = { algo: 'conv' } | { algo: 'gemm'; opts: FilterGemmOptions } | { algo: 'im2col'; chunk: number };
let filterAlgorithm: FilterAlgorithm = 'auto';
let gemmChunk: number | null = null;
let gemmCoBlock: number | null = null;
export function setConvFilterAlgorithm(algo: FilterAlgorithm, opts: { gemmChunk?: number; gemmCoBlock?: number } = {}): void {
  filterAlgorithm = algo;
  gemmChunk = opts.gemmChunk !== undefined ? Math.max(1, Math.floor(opts.gemmChunk)) : null;
  gemmCoBlock = opts.gemmCoBlock !== undefined ? Math.max(1, Math.floor(opts.gemmCoBlock)) : null;
}

/**
 * Per-shape choice of the dW algorithm, from bench/conv-grad.ts on the ResNet-18/CIFAR layers
 * at batch 32, 1 thread, CPU time (GFLOP/s, dilated convolution → chosen):
 *  - 1×1 filters: grid GEMM (conv-filter-gemm.ts), 2.5–3× faster (4 → 10, 6 → 17): the
 *    convolution has one N-channel indirection pointer per output pixel, nothing to amortise it;
 *  - k×k filters on grids with little padding (P·Q ≤ 1.2·OH·OW: 32² and 16² outputs): grid
 *    GEMM, 1.1–1.35× faster (l1 32²: 17.6 → 22);
 *  - smaller outputs (8², 4²) with Co ≥ 128: the grid's padding cells (27 %, 56 %) cost more
 *    than it saves; im2col GEMMs, whose KH·KW copies of x cost 1/(2·Co) of the FLOPs, run
 *    1.1–1.4× faster than the convolution (4² 512: 21 → 26, s2 to 4²: 17 → 23);
 *  - anything else (small Co on small grids, untested): the convolution.
 * Chunks keep the GEMMs' reduction K at about 2048 so that the packed right operand (K × Co
 * floats) stays near L2 (XNNPACK's GEMM does not block the reduction; longer K measured
 * slower), and the im2col buffer under 16 MB.
 */
export function chooseFilterAlgorithm(g: Geometry): FilterChoice {
  const plan = planFilterGemm(g);
  const cells = g.OH * g.OW;
  const im2colChunk = Math.max(1, Math.min(g.N, Math.floor(2048 / cells), Math.floor(2 ** 22 / (g.KH * g.KW * g.Ci * cells))));
  const gridChunk = Math.max(1, Math.min(g.N, Math.round(2048 / plan.PQ)));
  let algo: 'conv' | 'gemm' | 'im2col';
  if (filterAlgorithm !== 'auto') algo = filterAlgorithm;
  else if (g.KH * g.KW === 1 || plan.waste <= 1.2) algo = 'gemm';
  else algo = g.Co >= 128 ? 'im2col' : 'conv';
  if (algo === 'conv') return { algo };
  if (algo === 'im2col') return { algo, chunk: gemmChunk ?? im2colChunk };
  // Splitting Co measured no faster on these layers: one block unless a test asks for more.
  return { algo, opts: { chunk: gemmChunk ?? gridChunk, coBlock: gemmCoBlock ?? g.Co } };
}

/**
 * Conv2DBackpropFilter: dW [KH,KW,Ci,Co] of a forward conv x [N,H,W,Ci] → dy [N,OH,OW,Co].
 */
export function conv2DBackpropFilter(args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }): Info {
  const backend = args.backend as BackendWasm;
  const { x, dy } = args.inputs as { x: Info; dy: Info };
  const attrs = args.attrs as unknown as { strides: [number, number]; pad: unknown; dataFormat: string; dimRoundingMode: unknown; filterShape: [number, number, number, number] };
  const g = geometry(x.shape as [number, number, number, number], attrs.filterShape, attrs);
  const choice = chooseFilterAlgorithm(g);
  if (choice.algo === 'gemm') return filterGradGemm(backend, x, dy, g, choice.opts);
  if (choice.algo === 'im2col') return filterGradIm2col(backend, x, dy, g, choice.chunk);
  return convFilterViaConv(backend, x, dy, g);
}

/**
 * dW[kh,kw,ci,co] = Σ_{n,o,p} x[n, o·sh+kh−top, p·sw+kw−left, ci] · dy[n,o,p,co]
 * is ONE forward convolution: input x transposed to [Ci,H,W,N] (Ci plays the batch, N the
 * channels), filter dy transposed to [OH,OW,N,Co], dilation = stride, output [Ci,KH,KW,Co].
 * Batch chunks are summed.
 */
export function convFilterViaConv(backend: BackendWasm, x: Info, dy: Info, g: Geometry): Info {
  const { N, H, W, Ci, OH, OW, Co, KH, KW, sh, sw, top, left } = g;

  // The window of the dilated conv spans (O−1)·s+1 input rows; pad the far side so that it
  // yields at least K rows, and crop any surplus afterwards (rows the forward never read).
  const bottom = Math.max(0, KH + (OH - 1) * sh - H - top);
  const right = Math.max(0, KW + (OW - 1) * sw - W - left);
  const outH = H + top + bottom - (OH - 1) * sh;
  const outW = W + left + right - (OW - 1) * sw;

  let acc: Info | null = null;
  for (let n0 = 0; n0 < N; n0 += dwChunk) {
    const nc = Math.min(dwChunk, N - n0);
    // Batch chunks of NHWC tensors are contiguous: alias them instead of copying.
    const xv = nc === N ? x : view(backend, x, n0 * H * W * Ci, [nc, H, W, Ci]);
    const dyv = nc === N ? dy : view(backend, dy, n0 * OH * OW * Co, [nc, OH, OW, Co]);
    const xt = transpose(backend, xv, [3, 1, 2, 0]);
    const dyt = transpose(backend, dyv, [1, 2, 0, 3]);
    if (xv !== x) releaseView(backend, xv);
    if (dyv !== dy) releaseView(backend, dyv);
    const part = conv2d(backend, xt, dyt, { top, bottom, left, right }, [sh, sw]);
    release(backend, xt, dyt);
    if (acc === null) {
      acc = part;
    } else {
      const a = f32(backend, acc);
      const b = f32(backend, part);
      for (let i = 0; i < a.length; i++) a[i] += b[i];
      release(backend, part);
    }
  }
  let res = acc!;
  if (outH !== KH || outW !== KW) {
    const cropped = slice(backend, res, [0, 0, 0, 0], [Ci, KH, KW, Co]);
    release(backend, res);
    res = cropped;
  }
  const out = transpose(backend, res, [1, 2, 0, 3]);
  release(backend, res);
  return out;
}

/**
 * dx by polyphase decomposition: the input rows h ≡ a (mod sh) only meet filter taps
 * k ≡ (a + top) (mod sh), so each of the sh·sw phases is a stride-1 convolution of dy with a
 * spatially flipped, channel-transposed sub-filter; no multiply touches an inserted zero. At
 * stride 1 there is a single phase whose output is dx itself.
 */
export function conv2DBackpropInput(args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }): Info {
  const backend = args.backend as BackendWasm;
  const { dy, filter } = args.inputs as { dy: Info; filter: Info };
  const attrs = args.attrs as unknown as { strides: [number, number]; pad: unknown; dataFormat: string; dimRoundingMode: unknown; inputShape: [number, number, number, number] };
  const g = geometry(attrs.inputShape, filter.shape as [number, number, number, number], attrs);
  const { N, H, W, Ci, OH, OW, Co, KH, KW, sh, sw, top, left } = g;

  // Filter with channels swapped, [KH,KW,Co,Ci]: each tap is then one contiguous block that
  // the sub-filters copy in flipped order.
  const wt = transpose(backend, filter, [0, 1, 3, 2]);
  const rowPhases = phases(H, OH, KH, sh, top);
  const colPhases = phases(W, OW, KW, sw, left);
  const single = sh === 1 && sw === 1;
  const dx = single ? null : alloc(backend, [N, H, W, Ci]);
  let result: Info | null = null;
  const tap = Co * Ci;

  for (const ph of rowPhases) {
    for (const pw of colPhases) {
      if (ph.count === 0 || pw.count === 0) continue;
      if (ph.taps === 0 || pw.taps === 0) {
        if (dx) zeroPhase(backend, dx, N, H, W, Ci, ph, pw, sh, sw);
        continue;
      }
      const sub = alloc(backend, [ph.taps, pw.taps, Co, Ci]);
      const heap = heapF32(backend);
      const src = offsetF32(backend, wt);
      const dst = offsetF32(backend, sub);
      for (let jh = 0; jh < ph.taps; jh++) {
        const kh = ph.r + sh * (ph.taps - 1 - jh);
        for (let jw = 0; jw < pw.taps; jw++) {
          const kw = pw.r + sw * (pw.taps - 1 - jw);
          const from = src + (kh * KW + kw) * tap;
          heap.copyWithin(dst + (jh * pw.taps + jw) * tap, from, from + tap);
        }
      }
      // Negative pads mean dy rows the phase never reads: crop them.
      let input = dy;
      const cropT = Math.max(0, -ph.padBefore);
      const cropB = Math.max(0, -ph.padAfter);
      const cropL = Math.max(0, -pw.padBefore);
      const cropR = Math.max(0, -pw.padAfter);
      if (cropT + cropB + cropL + cropR > 0) {
        input = slice(backend, dy, [0, cropT, cropL, 0], [N, OH - cropT - cropB, OW - cropL - cropR, Co]);
      }
      const out = conv2d(backend, input, sub, {
        top: Math.max(0, ph.padBefore),
        bottom: Math.max(0, ph.padAfter),
        left: Math.max(0, pw.padBefore),
        right: Math.max(0, pw.padAfter),
      });
      if (input !== dy) release(backend, input);
      release(backend, sub);
      if (dx === null) {
        result = out;
      } else {
        interleave(backend, out, dx, N, H, W, Ci, ph, pw, sh, sw);
        release(backend, out);
      }
    }
  }
  release(backend, wt);
  if (dx !== null) return dx;
  if (result === null) {
    // Only possible for degenerate shapes where no tap ever reaches the input.
    const z = alloc(backend, [N, H, W, Ci]);
    f32(backend, z).fill(0);
    return z;
  }
  return result;
}

interface Phase {
  /** First input row of the phase (rows a, a+s, …). */
  a: number;
  count: number;
  /** Filter taps k = r, r+s, … meet this phase. */
  r: number;
  taps: number;
  /** Padding of dy for the stride-1 correlation producing exactly `count` rows. */
  padBefore: number;
  padAfter: number;
}

function phases(H: number, OH: number, K: number, s: number, top: number): Phase[] {
  const out: Phase[] = [];
  for (let a = 0; a < s; a++) {
    const count = a < H ? Math.ceil((H - a) / s) : 0;
    const r = (a + top) % s;
    const taps = r < K ? Math.ceil((K - r) / s) : 0;
    // dx[a + s·i] = Σ_j dy[i + c − j] · w[r + s·j],  c = (a + top − r) / s
    const c = (a + top - r) / s;
    const padBefore = taps - 1 - c;
    const padAfter = count + taps - 1 - padBefore - OH;
    out.push({ a, count, r, taps, padBefore, padAfter });
  }
  return out;
}

/** Scatters a phase result [N, ph.count, pw.count, Ci] into dx rows a+s·i, columns b+s·j. */
function interleave(backend: BackendWasm, part: Info, dx: Info, N: number, H: number, W: number, Ci: number, ph: Phase, pw: Phase, sh: number, sw: number): void {
  const heap = heapF32(backend);
  let src = offsetF32(backend, part);
  const base = offsetF32(backend, dx);
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < ph.count; i++) {
      let dst = base + ((n * H + ph.a + sh * i) * W + pw.a) * Ci;
      const step = sw * Ci;
      for (let j = 0; j < pw.count; j++) {
        heap.copyWithin(dst, src, src + Ci);
        dst += step;
        src += Ci;
      }
    }
  }
}

function zeroPhase(backend: BackendWasm, dx: Info, N: number, H: number, W: number, Ci: number, ph: Phase, pw: Phase, sh: number, sw: number): void {
  const heap = heapF32(backend);
  const base = offsetF32(backend, dx);
  for (let n = 0; n < N; n++) {
    for (let i = 0; i < ph.count; i++) {
      let dst = base + ((n * H + ph.a + sh * i) * W + pw.a) * Ci;
      for (let j = 0; j < pw.count; j++) {
        heap.fill(0, dst, dst + Ci);
        dst += sw * Ci;
      }
    }
  }
}
