import * as fs from 'node:fs';
import * as path from 'node:path';

/**
 * The optional native addon of native/onednn (oneDNN convolutions and matmul, our Winograd and
 * training BatchNorm, on NHWC float32; optionally bf16 convolutions and matmuls). Built by scripts/build-native.mjs when
 * libdnnl-dev is installed; absent otherwise, in which case native/onednn/build-status.json says why.
 */
/** The convolution algorithms of native/onednn's `conv` (its `algorithm` argument). */
export const CONV_ALGORITHM = {
  /** oneDNN's direct kernels. */
  direct: 0,
  /** oneDNN's Winograd F(4×4, 3×3). */
  onednnF4x4: 1,
  /** Ours, Winograd F(2×2, 3×3): 16 transformed weight matrices, the products as one batched oneDNN matmul. */
  oursF2x2: 2,
  /** Ours, Winograd F(4×4, 3×3): the same plan with 36 (points 0, ±3/4, ±3/2). */
  oursF4x4: 3,
} as const;
export type ConvAlgorithmCode = (typeof CONV_ALGORITHM)[keyof typeof CONV_ALGORITHM];

export interface OnednnAddon {
  /**
   * kind 1: (x, w, y) forward; 2: (dy, w, dx) backward data; 3: (x, dy, dW) backward weights.
   * dims = [N, H, W, Ci, Co, KH, KW, OH, OW, sh, sw, top, bottom, left, right]; returns the
   * oneDNN implementation that ran (ours start with `wino_2x3:ours+` or `wino_4x3:ours+`, then
   * the matmul's). `algorithm`: CONV_ALGORITHM's codes (false / true: direct / F(4×4, 3×3)); where it
   * does not apply (not 3×3 stride 1; bf16) the convolution runs direct. Forward only: y = act(conv(x) + bias) with bias (Co values,
   * or null) and relu, in the same primitive.
   */
  conv(kind: 1 | 2 | 3, a: Float32Array, b: Float32Array, out: Float32Array, dims: number[], algorithm?: ConvAlgorithmCode | boolean, bias?: Float32Array | null, relu?: boolean): string;
  /**
   * Evaluation-mode conv + BatchNorm: y = act(conv(x, w·s) + (offset − mean·s) [+ residual]),
   * s = scale/√(variance + eps) (contract in lib/backend/conv-bn-op.ts); dims as conv's.
   */
  convBn(
    x: Float32Array,
    w: Float32Array,
    scale: Float32Array,
    offset: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    eps: number,
    residual: Float32Array | null,
    y: Float32Array,
    dims: number[],
    algorithm: ConvAlgorithmCode | boolean,
    relu: boolean,
  ): string;
  /** out[b] = op(a[b])·op(b[b]); dims = [B, M, K, N, transposeA, transposeB] (0/1). */
  matmul(a: Float32Array, b: Float32Array, out: Float32Array, dims: number[]): string;
  /** out = a + b elementwise (b and out at least a's length). */
  add(a: Float32Array, b: Float32Array, out: Float32Array): void;
  /** With a residual: y = act(BN(x) + residual) (contract in lib/backend/batchnorm-op.ts); two passes over x. */
  bnForward(x: Float32Array, scale: Float32Array, offset: Float32Array, y: Float32Array, mean: Float32Array, variance: Float32Array, rows: number, C: number, eps: number, relu: boolean, residual?: Float32Array): void;
  /**
   * With dResidual: the residual's gradient, dy·[y > 0] (or dy without ReLU), is written there.
   * Without one, given the forward's offset, the ReLU mask is recomputed from x as bnForward
   * computed y (y is then not read).
   */
  bnBackward(
    dy: Float32Array,
    x: Float32Array,
    y: Float32Array,
    mean: Float32Array,
    variance: Float32Array,
    scale: Float32Array,
    dx: Float32Array,
    dScale: Float32Array,
    dOffset: Float32Array,
    rows: number,
    C: number,
    eps: number,
    relu: boolean,
    dResidual?: Float32Array,
    offset?: Float32Array,
  ): void;
  /** One tensor's fused SGD step (lib/backend/wasm/fused-update.ts's NativeUpdateLoops). */
  sgd(w: Float32Array, g: Float32Array, v: Float32Array, w2: Float32Array, v2: Float32Array, lr: number, momentum: number, weightDecay: number, nesterov: boolean): void;
  /** out = m·target + k·online. */
  ema(target: Float32Array, online: Float32Array, out: Float32Array, m: number, k: number): void;
  setThreads(n: number): number;
  /**
   * 'bf16': convolutions (all three directions) and matmul read bf16 copies of their inputs and
   * write f32 outputs; BatchNorm stays f32. Throws, naming the ISA oneDNN reports, where that ISA
   * has no native bf16 (needs avx512_core_bf16, avx512_core_amx or later). Default 'fp32'.
   */
  setPrecision(precision: 'fp32' | 'bf16'): string;
  /** bf16: whether oneDNN reports an ISA with native bf16; precision: the one in force. */
  info(): { version: string; isa: string; bf16: boolean; precision: 'fp32' | 'bf16'; threads: number; cachedPrimitives: number };
  clearCache(): void;
}

const ADDON_RELATIVE = path.join('native', 'onednn', 'build', 'Release', 'mixmask_onednn.node');
const STATUS_RELATIVE = path.join('native', 'onednn', 'build-status.json');

/** The repository root (the folder holding native/onednn), found from this file's location. */
function projectRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 8; i++) {
    if (fs.existsSync(path.join(dir, 'native', 'onednn', 'binding.gyp'))) return dir;
    const up = path.dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  // lib/backend/onednn → root (ts sources); dist/lib/backend/onednn → root (compiled).
  return path.resolve(__dirname, __dirname.includes(`${path.sep}dist${path.sep}`) ? '../../../..' : '../../..');
}

/** Where the addon is looked for: MIXMASK_ONEDNN_ADDON, else native/onednn/build/Release. */
export function defaultAddonPath(env: NodeJS.ProcessEnv = process.env): string {
  const override = env.MIXMASK_ONEDNN_ADDON?.trim();
  return override ? path.resolve(override) : path.join(projectRoot(), ADDON_RELATIVE);
}

/** The reason the build script recorded (e.g. "libdnnl-dev is not installed"), if any. */
export function buildStatusReason(): string | null {
  try {
    const s = JSON.parse(fs.readFileSync(path.join(projectRoot(), STATUS_RELATIVE), 'utf8')) as { ok?: boolean; reason?: string };
    return s.ok ? null : (s.reason ?? null);
  } catch {
    return null;
  }
}

const loaded = new Map<string, OnednnAddon>();

export function loadAddon(addonPath: string = defaultAddonPath()): OnednnAddon {
  const cached = loaded.get(addonPath);
  if (cached) return cached;
  const mod = { exports: {} as OnednnAddon };
  process.dlopen(mod, addonPath);
  loaded.set(addonPath, mod.exports);
  return mod.exports;
}
