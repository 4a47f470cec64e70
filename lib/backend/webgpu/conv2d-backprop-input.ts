import * as tf from '@tensorflow/tfjs';
import { type ConvGradAttrs, type Kernel, type KernelArgs, type WebgpuBackendLike, type WebgpuProgram, ints, replaceKernel, tuning } from './program';

/**
 * Conv2DBackpropInput (dx) as a stride-aware (polyphase) implicit GEMM. An input pixel
 * (ih, iw) receives dy[oh, ow] through tap (kh, kw) only where oh·s − padTop + kh = ih, so the
 * pixels of one phase (ih mod sh, iw mod sw) all use the same taps: per phase,
 *   dx[m, n] = Σ_k A[m, k] · B[k, n],  m = (b, i, j) the phase's pixels,  n = ci,
 *   k = (tap of the phase, co),  A = dy at (i + dh, j + dw) (0 outside),  B = W[kh, kw, ci, co],
 * with no product wasted on taps that cannot reach the pixel (a 3×3 stride-2 layer does 9/4
 * taps per pixel on average instead of 9). One dispatch covers all phases (workgroups in z).
 * Each workgroup of 64 invocations computes a tile of dx (4×4 per invocation: 32 pixels × 32
 * channels, or taller and narrower for few channels) from slices of A and Bᵀ staged in workgroup
 * memory, as vec4 along co.
 *
 * tfjs's default (WEBGPU_USE_NAIVE_CONV2D_TRANSPOSE) is a direct loop per dx element; its matmul
 * version visits every tap for every pixel. Both stay the fallback for NCHW and non-float32.
 */
/** Tile shapes: dx rows (pixels) × channels per workgroup, and vec4s of K per staged row. */
export interface InputTile {
  TM: number;
  TN: number;
  TK4: number;
}

/** A tile that keeps few input channels from idling most of the workgroup. */
export function chooseInputTile(inChannels: number): InputTile {
  if (inChannels <= 8) return { TM: 128, TN: 8, TK4: 4 };
  if (inChannels <= 16) return { TM: 64, TN: 16, TK4: 8 };
  return { TM: 32, TN: 32, TK4: 8 };
}

class InputGemmProgram implements WebgpuProgram {
  variableNames = ['dy', 'W'];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout = { x: [3], y: [1, 2], z: [0] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  variableComponents: number[];
  uniforms =
    'inH : i32, inW : i32, inC : i32, outH : i32, outW : i32, outC : i32, KH : i32, KW : i32, strideH : i32, strideW : i32, padTop : i32, padLeft : i32, batch : i32,';
  /** dy and W read as vec4 along co (Cout a multiple of 4), else as scalars. */
  private readonly vec4: boolean;
  private readonly tile: InputTile;

  /**
   * Workgroups: x over channel tiles, y over pixel tiles, z over phases × chunks of pixel tiles
   * (more pixel tiles than `maxY`, e.g. ImageNet-sized inputs at large batches, go on in z).
   */
  constructor(info: tf.backend_util.Conv2DInfo, maxY: number) {
    this.outputShape = info.inShape;
    this.tile = chooseInputTile(info.inChannels);
    const { TM, TN, TK4 } = this.tile;
    this.workgroupSize = [TN / 4, TM / 4, 1];
    const phases = info.strideHeight * info.strideWidth;
    const maxPixels = info.batchSize * Math.ceil(info.inHeight / info.strideHeight) * Math.ceil(info.inWidth / info.strideWidth);
    const pixelTiles = Math.ceil(maxPixels / TM);
    const rows = Math.min(pixelTiles, maxY);
    this.dispatch = [Math.ceil(info.inChannels / TN), rows, phases * Math.ceil(pixelTiles / rows)];
    this.vec4 = info.outChannels % 4 === 0;
    this.variableComponents = this.vec4 ? [4, 4] : [1, 1];
    this.shaderKey = `mixmaskConv2DInputGemm_${this.vec4 ? 'vec4' : 'scalar'}_${TM}_${TN}_${TK4}`;
  }

  getUserCode(): string {
    const { TM, TN, TK4 } = this.tile;
    // The 64 invocations stage rows row0, row0 + STEP, … of A (TM rows) and Bᵀ (TN rows), one
    // vec4 of K each: QA rows of A, QB of Bᵀ (some invocations idle when TN·TK4 < 64).
    const STEP = 64 / TK4;
    const QA = TM / STEP;
    const QB = Math.max(1, TN / STEP);
    // Vec4: what depends on the staged row (the pixel of A, the channel of Bᵀ) is decoded once,
    // what depends on k (tap, co) once per K-slice; integer division is slow on some adapters.
    const HOISTED_SETUP = `
        var pixel : array<vec4<i32>, ${QA}>; // (image offset, oh + dh, ow + dw, valid) per staged row
        var wRow : array<i32, ${QB}>; // ci·Cout per staged row, or -1 past Cin
        for (var q = 0; q < ${QA}; q++) {
          let m = m0 + row0 + ${STEP} * q;
          let img = m / max(phase.pixelsPerImage, 1);
          let p = m - img * phase.pixelsPerImage;
          let i = p / max(phase.cols, 1);
          pixel[q] = vec4<i32>(img * uniforms.outH, i + phase.dh, p - i * phase.cols + phase.dw, select(0, 1, m < phase.pixels));
        }
        for (var q = 0; q < ${QB}; q++) {
          let r = row0 + ${STEP} * q;
          let n = n0 + r;
          wRow[q] = select(-1, n * uniforms.outC, r < ${TN} && n < uniforms.inC);
        }`;
    const HOISTED_STAGE = `
          let co = k % uniforms.outC;
          let tap = k / uniforms.outC;
          let jh = tap / max(phase.tapsW, 1);
          let jw = tap - jh * phase.tapsW;
          let inK = k < phase.K;
          let wTap = ((phase.kh0 + jh * uniforms.strideH) * uniforms.KW + phase.kw0 + jw * uniforms.strideW) * uniforms.inC * uniforms.outC + co;
          for (var q = 0; q < ${QA}; q++) {
            let r = row0 + ${STEP} * q;
            let px = pixel[q];
            let oh = px.y - jh;
            let ow = px.z - jw;
            var a = vec4<f32>(0.0);
            if (inK && px.w == 1 && oh >= 0 && oh < uniforms.outH && ow >= 0 && ow < uniforms.outW) {
              a = dy[(((px.x + oh) * uniforms.outW + ow) * uniforms.outC + co) / 4];
            }
            As[r * ${TK4} + k4] = a;
          }
          for (var q = 0; q < ${QB}; q++) {
            let r = row0 + ${STEP} * q;
            if (r < ${TN}) {
              var b = vec4<f32>(0.0);
              if (inK && wRow[q] >= 0) {
                b = W[(wTap + wRow[q]) / 4];
              }
              Bs[r * ${TK4} + k4] = b;
            }
          }`;
    const GENERIC_STAGE = `
          for (var r = row0; r < ${TM}; r += ${STEP}) {
            As[r * ${TK4} + k4] = loadA(m0 + r, k);
          }
          for (var r = row0; r < ${TN}; r += ${STEP}) {
            Bs[r * ${TK4} + k4] = loadB(n0 + r, k);
          }`;
    // A[m, k…k+3] and B[n, k…k+3] (Bᵀ), k = (tap, co) with co a multiple of 4 in the vec4 variant.
    const loads = this.vec4
      ? ''
      : `
      fn scalarA(m : i32, k : i32) -> f32 {
        if (m >= phase.pixels || k >= phase.K) { return 0.0; }
        let co = k % uniforms.outC;
        let t = k / uniforms.outC;
        let jh = t / phase.tapsW;
        let jw = t - jh * phase.tapsW;
        let img = m / phase.pixelsPerImage;
        let p = m - img * phase.pixelsPerImage;
        let i = p / phase.cols;
        let oh = i + phase.dh - jh;
        let ow = p - i * phase.cols + phase.dw - jw;
        if (oh < 0 || oh >= uniforms.outH || ow < 0 || ow >= uniforms.outW) { return 0.0; }
        return dy[((img * uniforms.outH + oh) * uniforms.outW + ow) * uniforms.outC + co];
      }
      fn scalarB(n : i32, k : i32) -> f32 {
        if (n >= uniforms.inC || k >= phase.K) { return 0.0; }
        let co = k % uniforms.outC;
        let t = k / uniforms.outC;
        let jh = t / phase.tapsW;
        let kh = phase.kh0 + jh * uniforms.strideH;
        let kw = phase.kw0 + (t - jh * phase.tapsW) * uniforms.strideW;
        return W[((kh * uniforms.KW + kw) * uniforms.inC + n) * uniforms.outC + co];
      }
      fn loadA(m : i32, k : i32) -> vec4<f32> {
        return vec4<f32>(scalarA(m, k), scalarA(m, k + 1), scalarA(m, k + 2), scalarA(m, k + 3));
      }
      fn loadB(n : i32, k : i32) -> vec4<f32> {
        return vec4<f32>(scalarB(n, k), scalarB(n, k + 1), scalarB(n, k + 2), scalarB(n, k + 3));
      }`;
    return `
      struct Phase {
        ph : i32, pw : i32,
        rows : i32, cols : i32, pixelsPerImage : i32, pixels : i32,
        kh0 : i32, kw0 : i32, tapsH : i32, tapsW : i32, K : i32,
        dh : i32, dw : i32,
      };
      var<private> phase : Phase;
      var<workgroup> As : array<vec4<f32>, ${TM * TK4}>;
      var<workgroup> Bs : array<vec4<f32>, ${TN * TK4}>;
      var<workgroup> tileCount : i32;

      fn taps(p : i32, pad : i32, stride : i32, size : i32) -> vec2<i32> {
        let first = (p + pad) % stride;
        return vec2<i32>(first, select(0, (size - first + stride - 1) / stride, first < size));
      }
      ${loads}

      fn main() {
        let phases = uniforms.strideH * uniforms.strideW;
        let z = i32(workgroupId.z) % phases;
        phase.ph = z / uniforms.strideW;
        phase.pw = z - phase.ph * uniforms.strideW;
        phase.rows = max(0, (uniforms.inH - phase.ph + uniforms.strideH - 1) / uniforms.strideH);
        phase.cols = max(0, (uniforms.inW - phase.pw + uniforms.strideW - 1) / uniforms.strideW);
        phase.pixelsPerImage = phase.rows * phase.cols;
        phase.pixels = uniforms.batch * phase.pixelsPerImage;
        let th = taps(phase.ph, uniforms.padTop, uniforms.strideH, uniforms.KH);
        let tw = taps(phase.pw, uniforms.padLeft, uniforms.strideW, uniforms.KW);
        phase.kh0 = th.x;
        phase.tapsH = th.y;
        phase.kw0 = tw.x;
        phase.tapsW = tw.y;
        phase.K = phase.tapsH * phase.tapsW * uniforms.outC;
        phase.dh = (phase.ph + uniforms.padTop - phase.kh0) / uniforms.strideH;
        phase.dw = (phase.pw + uniforms.padLeft - phase.kw0) / uniforms.strideW;

        let li = i32(localIndex);
        let tx = i32(localId.x);
        let ty = i32(localId.y);
        let n0 = i32(workgroupId.x) * ${TN};
        let m0 = (i32(workgroupId.y) + (i32(workgroupId.z) / phases) * i32(numWorkgroups.y)) * ${TM};
        if (li == 0) {
          tileCount = select(0, (phase.K + ${4 * TK4 - 1}) / ${4 * TK4}, m0 < phase.pixels);
        }
        let tiles = workgroupUniformLoad(&tileCount);
        let k4 = li % ${TK4};
        let row0 = li / ${TK4};
        var acc : array<vec4<f32>, 4>;
        ${this.vec4 ? HOISTED_SETUP : ''}
        for (var t = 0; t < tiles; t++) {
          let k = t * ${4 * TK4} + k4 * 4;
          ${this.vec4 ? HOISTED_STAGE : GENERIC_STAGE}
          workgroupBarrier();
          for (var q = 0; q < ${TK4}; q++) {
            let b0 = Bs[(tx * 4) * ${TK4} + q];
            let b1 = Bs[(tx * 4 + 1) * ${TK4} + q];
            let b2 = Bs[(tx * 4 + 2) * ${TK4} + q];
            let b3 = Bs[(tx * 4 + 3) * ${TK4} + q];
            for (var i = 0; i < 4; i++) {
              let a = As[(ty * 4 + i) * ${TK4} + q];
              acc[i] += vec4<f32>(dot(a, b0), dot(a, b1), dot(a, b2), dot(a, b3));
            }
          }
          workgroupBarrier();
        }
        for (var i = 0; i < 4; i++) {
          let m = m0 + ty * 4 + i;
          if (m < phase.pixels) {
            let img = m / phase.pixelsPerImage;
            let p = m - img * phase.pixelsPerImage;
            let r = p / phase.cols;
            let ih = phase.ph + r * uniforms.strideH;
            let iw = phase.pw + (p - r * phase.cols) * uniforms.strideW;
            let base = ((img * uniforms.inH + ih) * uniforms.inW + iw) * uniforms.inC;
            for (var j = 0; j < 4; j++) {
              let n = n0 + tx * 4 + j;
              if (n < uniforms.inC) {
                result[base + n] = acc[i][j];
              }
            }
          }
        }
      }
    `;
  }
}

/**
 * Few input channels (the stem's Cin = 3): a 32-wide channel tile would be mostly idle, so each
 * invocation computes all Cin (≤ 4) values of one dx pixel, visiting only the taps of its phase,
 * as vec4 dot products along co (Cout a multiple of 4).
 */
export const DIRECT_MAX_IN_CHANNELS = 4;

class InputDirectProgram implements WebgpuProgram {
  variableNames = ['dy', 'W'];
  outputShape: number[];
  shaderKey = 'mixmaskConv2DInputDirect';
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number] = [64, 1, 1];
  variableComponents = [4, 4];
  uniforms = 'inH : i32, inW : i32, inC : i32, outH : i32, outW : i32, outC : i32, KH : i32, KW : i32, strideH : i32, strideW : i32, padTop : i32, padLeft : i32, batch : i32,';

  constructor(info: tf.backend_util.Conv2DInfo) {
    this.outputShape = info.inShape;
    this.dispatchLayout = { x: [0, 1, 2, 3] };
    this.dispatch = [Math.ceil((info.batchSize * info.inHeight * info.inWidth) / 64), 1, 1];
  }

  getUserCode(): string {
    return `
      fn main(index : i32) {
        let pixels = uniforms.batch * uniforms.inH * uniforms.inW;
        if (index >= pixels) { return; }
        let img = index / (uniforms.inH * uniforms.inW);
        let p = index - img * uniforms.inH * uniforms.inW;
        let ih = p / uniforms.inW;
        let iw = p - ih * uniforms.inW;
        let co4s = uniforms.outC / 4;
        var acc = vec4<f32>(0.0);
        for (var kh = (ih + uniforms.padTop) % uniforms.strideH; kh < uniforms.KH; kh += uniforms.strideH) {
          let oh = (ih + uniforms.padTop - kh) / uniforms.strideH;
          if (ih + uniforms.padTop - kh < 0) { break; }
          if (oh >= uniforms.outH) { continue; }
          for (var kw = (iw + uniforms.padLeft) % uniforms.strideW; kw < uniforms.KW; kw += uniforms.strideW) {
            let ow = (iw + uniforms.padLeft - kw) / uniforms.strideW;
            if (iw + uniforms.padLeft - kw < 0) { break; }
            if (ow >= uniforms.outW) { continue; }
            let dyBase = ((img * uniforms.outH + oh) * uniforms.outW + ow) * co4s;
            let wBase = (kh * uniforms.KW + kw) * uniforms.inC * co4s;
            for (var c = 0; c < co4s; c++) {
              let d = dy[dyBase + c];
              for (var ci = 0; ci < uniforms.inC; ci++) {
                acc[ci] += dot(d, W[wBase + ci * co4s + c]);
              }
            }
          }
        }
        for (var ci = 0; ci < uniforms.inC; ci++) {
          result[index * uniforms.inC + ci] = acc[ci];
        }
      }
    `;
  }
}

interface InputAttrs extends ConvGradAttrs {
  inputShape: [number, number, number, number];
}

let stock: Kernel | null = null;

function conv2DBackpropInput(args: KernelArgs): tf.TensorInfo | tf.TensorInfo[] {
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const attrs = args.attrs as unknown as InputAttrs;
  if (attrs.dataFormat === 'NCHW' || dy.dtype !== 'float32' || filter.dtype !== 'float32') return stock!(args);
  const info = tf.backend_util.computeConv2DInfo(
    attrs.inputShape, filter.shape as [number, number, number, number], attrs.strides, 1, attrs.pad, attrs.dimRoundingMode, false, 'channelsLast',
  );
  const backend = args.backend as WebgpuBackendLike;
  const uniforms = ints(
    info.inHeight, info.inWidth, info.inChannels, info.outHeight, info.outWidth, info.outChannels, info.filterHeight, info.filterWidth,
    info.strideHeight, info.strideWidth, info.padInfo.top, info.padInfo.left, info.batchSize,
  );
  const direct = info.inChannels <= DIRECT_MAX_IN_CHANNELS && info.outChannels % 4 === 0;
  const maxY = tuning.maxWorkgroupsY ?? backend.device.limits.maxComputeWorkgroupsPerDimension;
  return backend.runWebGPUProgram(direct ? new InputDirectProgram(info) : new InputGemmProgram(info, maxY), [dy, filter], 'float32', uniforms);
}

export function installConv2DBackpropInput(): void {
  if (!stock) stock = replaceKernel('Conv2DBackpropInput', conv2DBackpropInput);
}
