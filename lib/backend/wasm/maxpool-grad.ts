import * as tf from '@tensorflow/tfjs';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { alloc, f32, Info } from './wasm-ops';

/**
 * MaxPoolGrad for the wasm backend. The stock 4.22 kernel drops gradient entries (seen with a
 * 3×3 stride-2 pad-1 pool on odd sizes for the second image of a batch), so the ImageNet stem
 * gets this one: dy goes to the first maximum of each window in row-major order, as on the
 * cpu backend and in PyTorch (ties are common after a ReLU, so the rule matters).
 */
export function maxPoolGrad(args: { inputs: tf.NamedTensorInfoMap; backend: tf.KernelBackend; attrs?: tf.NamedAttrMap }): Info {
  const backend = args.backend as BackendWasm;
  const { dy, input } = args.inputs as { dy: Info; input: Info };
  const attrs = args.attrs as unknown as { filterSize: number | [number, number]; strides: number | [number, number]; pad: unknown; dimRoundingMode?: unknown };
  const info = tf.backend_util.computePool2DInfo(
    input.shape as [number, number, number, number],
    attrs.filterSize,
    attrs.strides,
    1,
    attrs.pad as 'same',
    attrs.dimRoundingMode as 'floor' | undefined,
  );
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: C, outHeight: OH, outWidth: OW } = info;
  const { strideHeight: sh, strideWidth: sw, filterHeight: KH, filterWidth: KW } = info;
  const { top, left } = info.padInfo;
  const dx = alloc(backend, input.shape);
  const xs = f32(backend, input);
  const dys = f32(backend, dy);
  const dxs = f32(backend, dx);
  dxs.fill(0);
  const best = new Float32Array(C);
  const where = new Int32Array(C);
  for (let n = 0; n < N; n++) {
    for (let o = 0; o < OH; o++) {
      for (let p = 0; p < OW; p++) {
        best.fill(-Infinity);
        where.fill(-1);
        for (let kh = 0; kh < KH; kh++) {
          const h = o * sh + kh - top;
          if (h < 0 || h >= H) continue;
          for (let kw = 0; kw < KW; kw++) {
            const w = p * sw + kw - left;
            if (w < 0 || w >= W) continue;
            const base = ((n * H + h) * W + w) * C;
            for (let c = 0; c < C; c++) {
              const v = xs[base + c];
              if (v > best[c]) {
                best[c] = v;
                where[c] = base + c;
              }
            }
          }
        }
        const g = ((n * OH + o) * OW + p) * C;
        for (let c = 0; c < C; c++) if (where[c] >= 0) dxs[where[c]] += dys[g + c];
      }
    }
  }
  return dx;
}
