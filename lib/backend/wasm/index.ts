import * as tf from '@tensorflow/tfjs';

/**
 * Prepares and activates the tfjs `wasm` backend. Everything wasm-specific (binary choice,
 * thread count, extra kernels) lives in this folder; the rest of lib/ only sees tfjs ops.
 */
export interface WasmActivation {
  /** One line for the backend report, e.g. "SIMD, 1 thread". */
  detail: string;
  threads: number;
}

export interface WasmOptions {
  /** Worker threads for XNNPACK; default: available cores. */
  threads?: number;
}

export async function activateWasm(_opts: WasmOptions = {}): Promise<WasmActivation> {
  await import('@tensorflow/tfjs-backend-wasm');
  if (!(await tf.setBackend('wasm'))) throw new Error('tf.setBackend("wasm") returned false');
  await tf.ready();
  const simd = await tf.env().getAsync('WASM_HAS_SIMD_SUPPORT');
  return { detail: `${simd ? 'SIMD' : 'no SIMD'}, 1 thread`, threads: 1 };
}
