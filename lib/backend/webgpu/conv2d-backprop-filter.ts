import * as tf from '@tensorflow/tfjs';
import { type ConvGradAttrs, type Kernel, type KernelArgs, type WebgpuBackendLike, type WebgpuProgram, ints, replaceKernel, tuning } from './program';

/**
 * Conv2DBackpropFilter (dW) as an implicit-im2col GEMM:
 *   dW[m, n] = Σ_k A[k, m] · B[k, n],  m = (kh·KW + kw)·Cin + ci,  n = cout,  k = (b·OH + oh)·OW + ow
 * with A[k, m] = x[b, oh·sh − padTop + kh, ow·sw − padLeft + kw, ci] (0 outside the image) read
 * from x on the fly, and B = dy seen as [N·OH·OW, Cout]. Each 8×8 workgroup computes a 32×32
 * tile of dW (4×4 per invocation) from 32-deep slices of A and B staged in workgroup memory.
 *
 * Split-K: the K axis (N·OH·OW, long for small filters such as the stem's) is cut into S chunks,
 * one per workgroup in z, writing partial tiles [S, M, N]; a second pass sums them in a fixed
 * order (WGSL has no float atomics), so the result is deterministic. S is chosen so that the
 * dispatch has about `tuning.targetWorkgroups` workgroups; with S = 1 the GEMM writes dW itself.
 *
 * tfjs's own kernel (kept as the fallback for NCHW and non-float32 inputs) runs one invocation per
 * filter element, each looping over N·OH·OW: no shared memory, no parallelism along K.
 */
export const TILE = 32;
const MIN_CHUNK = 256;

export interface SplitK {
  splits: number;
  /** K elements per split, a multiple of TILE. */
  chunk: number;
}

/** How many K-chunks a [M, N] output with a K-long reduction is cut into. */
export function chooseSplitK(M: number, N: number, K: number, targetWorkgroups = tuning.targetWorkgroups): SplitK {
  const tiles = Math.ceil(M / TILE) * Math.ceil(N / TILE);
  const wanted = Math.max(1, Math.min(Math.ceil(targetWorkgroups / tiles), Math.floor(K / MIN_CHUNK)));
  const chunk = Math.ceil(K / wanted / TILE) * TILE;
  return { splits: Math.ceil(K / chunk), chunk };
}

class FilterGemmProgram implements WebgpuProgram {
  variableNames = ['x', 'dy'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [2], y: [1], z: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [8, 8, 1];
  variableComponents: number[];
  uniforms = 'M : i32, N : i32, K : i32, chunk : i32, tilesPerChunk : i32, inH : i32, inW : i32, inC : i32, outW : i32, outHW : i32, KW : i32, strideH : i32, strideW : i32, padTop : i32, padLeft : i32,';
  /** x and dy read as vec4 (Cin and Cout multiples of 4), else as scalars. */
  private readonly vec4: boolean;

  constructor(M: number, N: number, inC: number, split: SplitK, outputShape: number[]) {
    this.outputShape = outputShape;
    this.dispatch = [Math.ceil(N / TILE), Math.ceil(M / TILE), split.splits];
    this.vec4 = inC % 4 === 0 && N % 4 === 0;
    this.variableComponents = this.vec4 ? [4, 4] : [1, 1];
    this.shaderKey = `mixmaskConv2DFilterGemm_${this.vec4 ? 'vec4' : 'scalar'}`;
  }

  /**
   * Stages the K-rows [k0, k0 + 32) of A and B: 32 × 8 vec4 each, As[r·8 + c] = A[k0 + r, m0 + 4c … 4c + 3].
   * Vec4: each invocation loads 4 vec4 of x and 4 of dy; scalar: 16 floats of each.
   */
  private staging(): string {
    const aAt = `
                let img = k / uniforms.outHW;
                let p = k - img * uniforms.outHW;
                let oh = p / uniforms.outW;
                let ow = p - oh * uniforms.outW;
                let ih = oh * uniforms.strideH + rowOff;
                let iw = ow * uniforms.strideW + colOff;
                inside = ih >= 0 && ih < uniforms.inH && iw >= 0 && iw < uniforms.inW;
                xi = ((img * uniforms.inH + ih) * uniforms.inW + iw) * uniforms.inC + ci;`;
    if (this.vec4) {
      return `
        let c4 = li % 8;
        let row0 = li / 8;
        let m = m0 + c4 * 4;
        let ci = m % uniforms.inC;
        let tap = m / uniforms.inC;
        let kh = tap / uniforms.KW;
        let rowOff = kh - uniforms.padTop;
        let colOff = tap - kh * uniforms.KW - uniforms.padLeft;
        let n = n0 + c4 * 4;
        for (var t = 0; t < uniforms.tilesPerChunk; t++) {
          let k0 = kStart + t * ${TILE};
          for (var r = row0; r < ${TILE}; r += 8) {
            let k = k0 + r;
            var a = vec4<f32>(0.0);
            var b = vec4<f32>(0.0);
            if (k < kEnd) {
              if (m < uniforms.M) {
                var inside = false;
                var xi = 0;${aAt}
                if (inside) {
                  a = x[xi / 4];
                }
              }
              if (n < uniforms.N) {
                b = dy[(k * uniforms.N + n) / 4];
              }
            }
            As[r * 8 + c4] = a;
            Bs[r * 8 + c4] = b;
          }
          workgroupBarrier();
          PRODUCT
          workgroupBarrier();
        }`;
    }
    return `
        let col = li % ${TILE};
        let row0 = li / ${TILE};
        let m = m0 + col;
        let ci = m % uniforms.inC;
        let tap = m / uniforms.inC;
        let kh = tap / uniforms.KW;
        let rowOff = kh - uniforms.padTop;
        let colOff = tap - kh * uniforms.KW - uniforms.padLeft;
        let n = n0 + col;
        for (var t = 0; t < uniforms.tilesPerChunk; t++) {
          let k0 = kStart + t * ${TILE};
          for (var r = row0; r < ${TILE}; r += 2) {
            let k = k0 + r;
            var a = 0.0;
            var b = 0.0;
            if (k < kEnd) {
              if (m < uniforms.M) {
                var inside = false;
                var xi = 0;${aAt}
                if (inside) {
                  a = x[xi];
                }
              }
              if (n < uniforms.N) {
                b = dy[k * uniforms.N + n];
              }
            }
            As[r * 8 + col / 4][col % 4] = a;
            Bs[r * 8 + col / 4][col % 4] = b;
          }
          workgroupBarrier();
          PRODUCT
          workgroupBarrier();
        }`;
  }

  getUserCode(): string {
    const product = `for (var r = 0; r < ${TILE}; r++) {
            let av = As[r * 8 + ty];
            let bv = Bs[r * 8 + tx];
            acc[0] += av.x * bv;
            acc[1] += av.y * bv;
            acc[2] += av.z * bv;
            acc[3] += av.w * bv;
          }`;
    return `
      var<workgroup> As : array<vec4<f32>, ${TILE * 8}>;
      var<workgroup> Bs : array<vec4<f32>, ${TILE * 8}>;

      fn main() {
        let li = i32(localIndex);
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let n0 = i32(workgroupId.x) * ${TILE};
        let m0 = i32(workgroupId.y) * ${TILE};
        let kStart = i32(workgroupId.z) * uniforms.chunk;
        let kEnd = min(kStart + uniforms.chunk, uniforms.K);
        var acc : array<vec4<f32>, 4>;
        ${this.staging().replace('PRODUCT', product)}
        let base = i32(workgroupId.z) * uniforms.M * uniforms.N;
        for (var i = 0; i < 4; i++) {
          let mo = m0 + ty * 4 + i;
          if (mo < uniforms.M) {
            for (var j = 0; j < 4; j++) {
              let no = n0 + tx * 4 + j;
              if (no < uniforms.N) {
                result[base + mo * uniforms.N + no] = acc[i][j];
              }
            }
          }
        }
      }
    `;
  }
}

/** Sums [S, size] partials over S, in order. */
export class SumSplitsProgram implements WebgpuProgram {
  variableNames = ['partials'];
  outputShape: number[];
  shaderKey = 'mixmaskSumSplits';
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [64, 1, 1];
  uniforms = 'splits : i32,';
  size = true;

  constructor(outputShape: number[]) {
    this.outputShape = outputShape;
    this.dispatchLayout = { x: outputShape.map((_, i) => i) };
    const size = outputShape.reduce((a, b) => a * b, 1);
    this.dispatch = [Math.ceil(size / 64), 1, 1];
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        if (index < uniforms.size) {
          var s = 0.0;
          for (var i = 0; i < uniforms.splits; i++) {
            s += partials[i * uniforms.size + index];
          }
          result[index] = s;
        }
      }
    `;
  }
}

interface FilterAttrs extends ConvGradAttrs {
  filterShape: [number, number, number, number];
}

let stock: Kernel | null = null;

/** dW of `x` and `dy` with an explicit split (tests use it to reach both paths). */
export function conv2DBackpropFilterGemm(backend: WebgpuBackendLike, x: tf.TensorInfo, dy: tf.TensorInfo, attrs: FilterAttrs, split?: SplitK): tf.TensorInfo {
  const info = tf.backend_util.computeConv2DInfo(
    x.shape as [number, number, number, number], attrs.filterShape, attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast',
  );
  const M = info.filterHeight * info.filterWidth * info.inChannels;
  const N = info.outChannels;
  const K = info.batchSize * info.outHeight * info.outWidth;
  const s = split ?? chooseSplitK(M, N, K);
  const uniforms = ints(
    M, N, K, s.chunk, s.chunk / TILE, info.inHeight, info.inWidth, info.inChannels, info.outWidth, info.outHeight * info.outWidth,
    info.filterWidth, info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left,
  );
  if (s.splits === 1) return backend.runWebGPUProgram(new FilterGemmProgram(M, N, info.inChannels, s, attrs.filterShape), [x, dy], 'float32', uniforms);
  const partials = backend.runWebGPUProgram(new FilterGemmProgram(M, N, info.inChannels, s, [s.splits, M, N]), [x, dy], 'float32', uniforms);
  try {
    return backend.runWebGPUProgram(new SumSplitsProgram(attrs.filterShape), [partials], 'float32', ints(s.splits));
  } finally {
    backend.disposeData(partials.dataId);
  }
}

function conv2DBackpropFilter(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const attrs = args.attrs as unknown as FilterAttrs;
  if (attrs.dataFormat === 'NCHW' || x.dtype !== 'float32' || dy.dtype !== 'float32') return stock!(args);
  return conv2DBackpropFilterGemm(args.backend as WebgpuBackendLike, x, dy, attrs);
}

export function installConv2DBackpropFilter(): void {
  if (!stock) stock = replaceKernel('Conv2DBackpropFilter', conv2DBackpropFilter);
}
