import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { alloc, call, f32, Geometry, heapF32, Info, offsetF32, release, releaseView, transpose, view } from './wasm-ops';

/**
 * dW as one plain matrix product per filter tap, on XNNPACK's fully-connected GEMM.
 *
 *   dW[kh,kw,ci,co] = Σ_{n,o,p} x[n, o·sh+kh−top, p·sw+kw−left, ci] · dy[n,o,p,co]
 *
 * x is split into its sh·sw stride phases x_ab[n,i,j] = x[n, sh·i+a, sw·j+b]; tap (kh,kw) reads
 * one phase, shifted by (dh,dw) rows/columns: x_ab[n, o+dh, p+dw]. Every phase and dy are laid
 * out on one flat grid of P×Q cells per image (dy at cell (o,p), the phase at (i+R0, j+C0), zeros
 * around), so that the shift is a constant flat offset `off`. With the phase stored channel-major
 * as X[ci][q] (q the flat cell, K = n·P·Q cells per channel) and dy as D[q][co]:
 *
 *   dW[kh,kw] = X[:, off : off+K] · D        ([Ci,K] × [K,Co]: the sum over q runs over n,o,p)
 *
 * The left operand is a mere view of X starting at `off` with row stride K: row ci then reads
 * the first `off` cells of row ci+1 at its end, but those meet dy cells q ≥ K − off, which are
 * padding (zero) whenever the grid satisfies the bounds in `axisPlan`. So no per-tap copy, no
 * transpose, the right operand D is the same for all taps (XNNPACK packs it once: tfjs caches
 * the operator on its tensor id), and the reduction of every GEMM call is K long — against N
 * channels per indirection pointer when dW is phrased as one forward convolution.
 *
 * Padding cells cost FLOPs (P·Q / (OH·OW) − 1; 6 % at 32×32, 56 % at 4×4): grids share pad
 * cells between neighbouring rows and images (a read past the end of a row lands in the zero
 * columns at the start of the next one), which keeps P·Q at about (OH+1)·(OW+1).
 */

/** One spatial axis: which phase and which shift each tap reads, and the padded length. */
interface AxisPlan {
  /** Phase indices that some tap reads, ascending. */
  phases: number[];
  /** Per used phase: rows of x in it, ceil((H − a)/s). */
  counts: number[];
  /** Per tap k: index into `phases`, and its cell shift dk + R0 (≥ 0). */
  tapPhase: number[];
  tapShift: number[];
  /** Leading zero rows (−min dk), and the padded length of one image along this axis. */
  R0: number;
  P: number;
}

function axisPlan(H: number, OH: number, K: number, s: number, pad: number): AxisPlan {
  const a: number[] = [];
  const d: number[] = [];
  for (let k = 0; k < K; k++) {
    const t = k - pad;
    const ak = ((t % s) + s) % s;
    a.push(ak);
    d.push((t - ak) / s);
  }
  const dMin = Math.min(...d);
  const dMax = Math.max(...d);
  const R0 = -dMin; // pad ≥ 0, so the first tap has d ≤ 0
  const phases = [...new Set(a)].sort((x, y) => x - y);
  const counts = phases.map((ph) => (ph < H ? Math.ceil((H - ph) / s) : 0));
  // Bounds for the flat-offset trick: dy must fit (P ≥ OH), the phase must fit after its R0
  // leading zero rows, and a tap's read o + d + R0 must stay below P + R0 (reads at rows
  // P … P+R0−1 land in the next image's leading zero rows).
  const P = Math.max(OH, OH + dMax, R0 + Math.max(...counts));
  return { phases, counts, tapPhase: a.map((ak) => phases.indexOf(ak)), tapShift: d.map((dk) => dk + R0), R0, P };
}

export interface FilterGemmPlan {
  rows: AxisPlan;
  cols: AxisPlan;
  /** Cells per image on the padded grid. */
  PQ: number;
  /** Largest tap offset: zero cells appended after the last channel of each phase. */
  offMax: number;
  /** Multiply-adds spent per useful one (padding cells of the grid). */
  waste: number;
}

export function planFilterGemm(g: Geometry): FilterGemmPlan {
  const rows = axisPlan(g.H, g.OH, g.KH, g.sh, g.top);
  const cols = axisPlan(g.W, g.OW, g.KW, g.sw, g.left);
  const Q = cols.P;
  const offMax = Math.max(...rows.tapShift) * Q + Math.max(...cols.tapShift);
  return { rows, cols, PQ: rows.P * Q, offMax, waste: (rows.P * Q) / (g.OH * g.OW) };
}

export interface FilterGemmOptions {
  /** Images per chunk: bounds the reduction length K = chunk·P·Q of one GEMM. */
  chunk: number;
  /** Output channels per GEMM: bounds the packed right operand (K × coBlock floats). */
  coBlock: number;
}

/**
 * Adds (or, with `first`, writes) the filter gradient of images [n0, n0+nc) into `out`
 * ([KH,KW,Ci,Co], float32 on the heap).
 */
export function filterGradGemmChunk(backend: BackendWasm, x: Info, dy: Info, g: Geometry, plan: FilterGemmPlan, n0: number, nc: number, coBlock: number, out: Info, first: boolean): void {
  const { H, W, Ci, OH, OW, Co, KH, KW, sh, sw } = g;
  const { rows, cols, PQ, offMax } = plan;
  const Q = cols.P;
  const K = nc * PQ;
  const block = Ci * K + offMax;
  const nPhases = rows.phases.length * cols.phases.length;
  const nb = Math.min(coBlock, Co);
  const nBlocks = Math.ceil(Co / nb);

  // x of these images, channel-major [Ci, nc, H, W] (C++ transpose), then scattered into the
  // phase grids. Alias the chunk instead of copying it (batch chunks of NHWC are contiguous).
  const xv = nc === g.N ? x : view(backend, x, n0 * H * W * Ci, [nc, H, W, Ci]);
  const xt = transpose(backend, xv, [3, 0, 1, 2]);
  if (xv !== x) releaseView(backend, xv);
  const X = alloc(backend, [nPhases * block]);
  // dy on the grid, split into blocks of output channels [nBlocks][K][nb] (the last block may
  // be narrower). When the grid has no padding cells and there is one block, it is dy itself (a
  // view, so that the operator tfjs caches on the right operand's id goes when we release it).
  const dyOff = n0 * OH * OW * Co;
  const gridIsDy = rows.P === OH && Q === OW && nBlocks === 1;
  const D = gridIsDy ? view(backend, dy, dyOff, [K, Co]) : alloc(backend, nBlocks === 1 ? [K, Co] : [K * Co]);

  const heap = heapF32(backend);
  const xtBase = offsetF32(backend, xt);
  const XBase = offsetF32(backend, X);
  heap.fill(0, XBase, XBase + nPhases * block);
  for (let pr = 0; pr < rows.phases.length; pr++) {
    const a = rows.phases[pr];
    const ca = rows.counts[pr];
    for (let pc = 0; pc < cols.phases.length; pc++) {
      const b = cols.phases[pc];
      const cb = cols.counts[pc];
      const blockBase = XBase + (pr * cols.phases.length + pc) * block;
      for (let ci = 0; ci < Ci; ci++) {
        for (let n = 0; n < nc; n++) {
          const src0 = xtBase + (ci * nc + n) * H * W;
          const dst0 = blockBase + ci * K + n * PQ + rows.R0 * Q + cols.R0;
          for (let i = 0; i < ca; i++) {
            const src = src0 + (sh * i + a) * W + b;
            const dst = dst0 + i * Q;
            if (sw === 1) {
              heap.copyWithin(dst, src, src + cb);
            } else {
              for (let j = 0; j < cb; j++) heap[dst + j] = heap[src + sw * j];
            }
          }
        }
      }
    }
  }
  release(backend, xt);
  if (!gridIsDy) {
    const DBase = offsetF32(backend, D);
    const dyBase = offsetF32(backend, dy) + dyOff;
    heap.fill(0, DBase, DBase + K * Co);
    if (nBlocks === 1) {
      // Whole rows of dy (OW pixels × Co) are contiguous on the grid too.
      const rowLen = OW * Co;
      for (let n = 0; n < nc; n++) {
        for (let o = 0; o < OH; o++) {
          const src = dyBase + (n * OH + o) * rowLen;
          heap.copyWithin(DBase + (n * PQ + o * Q) * Co, src, src + rowLen);
        }
      }
    } else {
      for (let j = 0; j < nBlocks; j++) {
        const c0 = j * nb;
        const w = Math.min(nb, Co - c0);
        const bBase = DBase + K * c0;
        for (let n = 0; n < nc; n++) {
          for (let o = 0; o < OH; o++) {
            for (let p = 0; p < OW; p++) {
              const src = dyBase + ((n * OH + o) * OW + p) * Co + c0;
              heap.copyWithin(bBase + (n * PQ + o * Q + p) * w, src, src + w);
            }
          }
        }
      }
    }
  }

  const tap = Ci * Co;
  for (let j = 0; j < nBlocks; j++) {
    const c0 = j * nb;
    const w = Math.min(nb, Co - c0);
    const B = nBlocks === 1 ? D : view(backend, D, K * c0, [K, w]);
    for (let kh = 0; kh < KH; kh++) {
      for (let kw = 0; kw < KW; kw++) {
        const phase = rows.tapPhase[kh] * cols.phases.length + cols.tapPhase[kw];
        const off = rows.tapShift[kh] * Q + cols.tapShift[kw];
        const A = view(backend, X, phase * block + off, [Ci, K]);
        const part = call(backend, 'BatchMatMul', { a: A, b: B }, { transposeA: false, transposeB: false });
        releaseView(backend, A);
        // Views of the heap only after the allocation of `part` (it may grow the heap).
        const h = heapF32(backend);
        const src = offsetF32(backend, part);
        const dst = offsetF32(backend, out) + (kh * KW + kw) * tap + c0;
        if (w === Co) {
          if (first) h.copyWithin(dst, src, src + tap);
          else for (let i = 0; i < tap; i++) h[dst + i] += h[src + i];
        } else {
          for (let ci = 0; ci < Ci; ci++) {
            const s0 = src + ci * w;
            const d0 = dst + ci * Co;
            if (first) h.copyWithin(d0, s0, s0 + w);
            else for (let i = 0; i < w; i++) h[d0 + i] += h[s0 + i];
          }
        }
        release(backend, part);
      }
    }
    if (B !== D) releaseView(backend, B);
  }
  if (gridIsDy) releaseView(backend, D);
  else release(backend, D);
  release(backend, X);
}

/** dW [KH,KW,Ci,Co] by per-tap GEMMs. */
export function filterGradGemm(backend: BackendWasm, x: Info, dy: Info, g: Geometry, opts: FilterGemmOptions): Info {
  const plan = planFilterGemm(g);
  const out = alloc(backend, [g.KH, g.KW, g.Ci, g.Co]);
  if (g.N === 0) {
    f32(backend, out).fill(0);
    return out;
  }
  for (let n0 = 0; n0 < g.N; n0 += opts.chunk) {
    filterGradGemmChunk(backend, x, dy, g, plan, n0, Math.min(opts.chunk, g.N - n0), opts.coBlock, out, n0 === 0);
  }
  return out;
}

/**
 * dW by per-tap GEMMs on an explicit im2col of x: for each tap, x at the positions that tap
 * reads, channel-major [Ci, nc·OH·OW] (zeros where it reads padding), times dy [nc·OH·OW, Co]
 * (a view of dy itself). No padding cells enter the reduction, at the cost of KH·KW copies of
 * x: the better trade on small outputs (8², 4²), where the shared grid wastes 27–56 %.
 */
export function filterGradIm2col(backend: BackendWasm, x: Info, dy: Info, g: Geometry, chunk: number): Info {
  const { N, H, W, Ci, OH, OW, Co, KH, KW, sh, sw, top, left } = g;
  const out = alloc(backend, [KH, KW, Ci, Co]);
  if (N === 0) {
    f32(backend, out).fill(0);
    return out;
  }
  const tap = Ci * Co;
  for (let n0 = 0; n0 < N; n0 += chunk) {
    const nc = Math.min(chunk, N - n0);
    const K = nc * OH * OW;
    const xv = nc === N ? x : view(backend, x, n0 * H * W * Ci, [nc, H, W, Ci]);
    const xt = transpose(backend, xv, [3, 0, 1, 2]);
    if (xv !== x) releaseView(backend, xv);
    const cols = alloc(backend, [KH * KW * Ci * K]);
    const B = view(backend, dy, n0 * OH * OW * Co, [K, Co]);
    const heap = heapF32(backend);
    const xtBase = offsetF32(backend, xt);
    const colBase = offsetF32(backend, cols);
    for (let kh = 0; kh < KH; kh++) {
      for (let kw = 0; kw < KW; kw++) {
        // Output columns p whose input column p·sw + kw − left lies inside x.
        const pLo = Math.max(0, Math.ceil((left - kw) / sw));
        const pHi = Math.min(OW, Math.floor((W - 1 + left - kw) / sw) + 1);
        let dst = colBase + (kh * KW + kw) * Ci * K;
        for (let ci = 0; ci < Ci; ci++) {
          for (let n = 0; n < nc; n++) {
            const plane = xtBase + (ci * nc + n) * H * W;
            for (let o = 0; o < OH; o++) {
              const h = o * sh + kh - top;
              if (h < 0 || h >= H || pHi <= pLo) {
                heap.fill(0, dst, dst + OW);
              } else {
                const src = plane + h * W + kw - left;
                for (let p = 0; p < pLo; p++) heap[dst + p] = 0;
                for (let p = pLo; p < pHi; p++) heap[dst + p] = heap[src + p * sw];
                for (let p = pHi; p < OW; p++) heap[dst + p] = 0;
              }
              dst += OW;
            }
          }
        }
      }
    }
    release(backend, xt);
    for (let t = 0; t < KH * KW; t++) {
      const A = view(backend, cols, t * Ci * K, [Ci, K]);
      const part = call(backend, 'BatchMatMul', { a: A, b: B }, { transposeA: false, transposeB: false });
      releaseView(backend, A);
      const h = heapF32(backend);
      const src = offsetF32(backend, part);
      const dst = offsetF32(backend, out) + t * tap;
      if (n0 === 0) h.copyWithin(dst, src, src + tap);
      else for (let i = 0; i < tap; i++) h[dst + i] += h[src + i];
      release(backend, part);
    }
    releaseView(backend, B);
    release(backend, cols);
  }
  return out;
}
