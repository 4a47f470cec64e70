import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import type * as WasmPackage from '@tensorflow/tfjs-backend-wasm';
import { registerFusedBatchNorm } from './batchnorm';
import { conv2DBackpropFilter, conv2DBackpropInput } from './conv-grad';
import { FUSED_UPDATE_KERNELS, setWasmFusedUpdates } from './fused-update';
import { maxPoolGrad } from './maxpool-grad';
import { makeReverse } from './reverse';
import { registerThreadedWasm, threadedPoolSize } from './threaded';

/**
 * Prepares and activates the tfjs `wasm` backend. Everything wasm-specific (binary choice,
 * thread count, extra kernels) lives in this folder; the rest of lib/ only sees tfjs ops.
 *
 * - the threaded-SIMD binary with one XNNPACK thread per requested core (threaded.ts);
 * - Conv2DBackpropFilter (missing in tfjs-backend-wasm 4.22) as per-tap XNNPACK GEMMs on a
 *   padded grid or im2col, else one dilated forward convolution, chosen per shape
 *   (conv-grad.ts, conv-filter-gemm.ts), and a fast Conv2DBackpropInput as XNNPACK forward
 *   convolutions;
 * - a fused training BatchNorm(+ReLU) with its gradient, and its running-statistics update (batchnorm.ts);
 * - a MaxPoolGrad that replaces the stock one, which loses entries (maxpool-grad.ts);
 * - Reverse along the first axis as row copies (reverse.ts; other reverses stay stock);
 * - the fused SGD/Adam/EMA parameter updates (fused-update.ts), unless MIXMASK_FUSED_UPDATES=0
 *   (then lib/optim uses its tfjs ops: the "before" of bench/profile-step.ts).
 */
export interface WasmActivation {
  /** One line for the backend report, e.g. "SIMD, 2 threads; kernels: …". */
  detail: string;
  threads: number;
}

export interface WasmOptions {
  /** Worker threads for XNNPACK; default: available cores. Fixed at the first activation. */
  threads?: number;
}

const OWN_KERNELS = ['Conv2DBackpropFilter', 'Conv2DBackpropInput', 'MaxPoolGrad', 'Reverse (first axis)', 'MixMaskFusedBatchNormTrain', 'MixMaskBatchNormRunningStats'];

let threadedRegistered = false;
let kernelsInstalled = false;

function installKernels(): void {
  if (kernelsInstalled) return;
  for (const [kernelName, kernelFunc] of [
    ['Conv2DBackpropFilter', conv2DBackpropFilter],
    ['Conv2DBackpropInput', conv2DBackpropInput],
    ['MaxPoolGrad', maxPoolGrad],
  ] as const) {
    // Replace the stock kernel (if any) without the "already registered" warning.
    if (tf.getKernel(kernelName, 'wasm')) tf.unregisterKernel(kernelName, 'wasm');
    tf.registerKernel({ kernelName, backendName: 'wasm', kernelFunc: kernelFunc as unknown as tf.KernelFunc });
  }
  const stockReverse = tf.getKernel('Reverse', 'wasm');
  if (stockReverse) {
    tf.unregisterKernel('Reverse', 'wasm');
    tf.registerKernel({ ...stockReverse, kernelFunc: makeReverse(stockReverse.kernelFunc) });
  }
  registerFusedBatchNorm();
  setWasmFusedUpdates(fusedUpdatesWanted(process.env.MIXMASK_FUSED_UPDATES));
  kernelsInstalled = true;
}

/** MIXMASK_FUSED_UPDATES: unset, '' or '1' → on, '0' → off; anything else is an error. */
function fusedUpdatesWanted(value: string | undefined): boolean {
  const v = value?.trim() ?? '';
  if (v === '' || v === '1') return true;
  if (v === '0') return false;
  throw new Error(`MIXMASK_FUSED_UPDATES is '${value}', expected 0 or 1`);
}

function stockThreads(pkg: typeof WasmPackage): number {
  try {
    return pkg.getThreadsCount();
  } catch {
    return 1;
  }
}

export async function activateWasm(opts: WasmOptions = {}): Promise<WasmActivation> {
  // Loaded lazily: importing it registers a 'wasm' backend of higher priority than 'cpu'.
  const pkg = await import('@tensorflow/tfjs-backend-wasm');
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  const requested = opts.threads ?? cores;
  if (!Number.isInteger(requested) || requested < 1) throw new Error(`activateWasm: threads must be a positive integer, got ${requested}`);
  const engine = tf.engine();
  const alreadyStarted = engine.registry['wasm'] !== undefined;
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  // The threaded binary also needs SIMD; without it (or once a stock wasm backend already
  // runs in this process) the stock single-threaded start-up is kept.
  let restoreStock: (() => void) | null = null;
  if (!threadedRegistered && !alreadyStarted && simd && typeof SharedArrayBuffer === 'function') {
    restoreStock = registerThreadedWasm(requested, pkg);
    threadedRegistered = true;
  }
  installKernels();
  let fallback = '';
  if (!(await tf.setBackend('wasm'))) {
    if (!restoreStock) throw new Error('tf.setBackend("wasm") returned false');
    restoreStock();
    fallback = ' (threaded binary failed to start)';
    if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") returned false');
  }
  await tf.ready();
  const threads = threadedPoolSize() ?? stockThreads(pkg);
  const note = threads !== requested ? ` (${requested} requested; the pool is fixed at the first start)` : '';
  return {
    detail: `${simd ? 'SIMD' : 'no SIMD'}, ${threads} thread${threads === 1 ? '' : 's'}${note}${fallback}; kernels: ${[...OWN_KERNELS, ...FUSED_UPDATE_KERNELS.filter((k) => tf.getKernel(k, 'wasm'))].join(', ')}`,
    threads,
  };
}

/** Whether the tfjs wasm backend can load here: its package is installed and WebAssembly exists. */
export function wasmAvailable(): { ok: boolean; reason: string } {
  try {
    require.resolve('@tensorflow/tfjs-backend-wasm');
  } catch {
    return { ok: false, reason: '@tensorflow/tfjs-backend-wasm not installed' };
  }
  return typeof WebAssembly === 'object' ? { ok: true, reason: '' } : { ok: false, reason: 'no WebAssembly' };
}
