import type { OnednnAddon } from './addon';

/**
 * The precision of the `wasm+onednn` convolutions and matmuls.
 *
 * - 'fp32' (default): everything float32.
 * - 'bf16': mixed precision on CPUs with native bf16 (AVX-512 BF16 or AMX, as oneDNN reports
 *   it): convolutions (forward, backward data, backward weights) and matmuls read bfloat16
 *   copies of their inputs and write float32 outputs; weights, gradients, the optimiser and
 *   BatchNorm (statistics included) stay float32. This is what
 *   `torch.autocast('cpu', dtype=torch.bfloat16)` does for the same layers.
 */
export type OnednnPrecision = 'fp32' | 'bf16';

export const PRECISION_ENV = 'MIXMASK_PRECISION';

/** MIXMASK_PRECISION (or an option) as a precision: unset or empty is fp32; anything else but fp32/bf16 is an error. */
export function parsePrecision(value: string | undefined, source = PRECISION_ENV): OnednnPrecision {
  const v = value?.trim().toLowerCase();
  if (v === undefined || v === '' || v === 'fp32') return 'fp32';
  if (v === 'bf16') return 'bf16';
  throw new Error(`${source} is '${value}', expected 'fp32' or 'bf16'`);
}

/** What the backend report says about precision (the line the issue asks for). */
export const BF16_DETAIL = 'bf16 convolutions and matmuls, fp32 weights and BatchNorm';

/**
 * Puts the addon in `want` precision. Returns null when that worked, else why not (the addon
 * then stays fp32): an addon built before the switch existed, or a CPU without native bf16
 * (the addon's own error names the ISA oneDNN reports).
 */
export function applyPrecision(addon: OnednnAddon, want: OnednnPrecision): string | null {
  if (typeof addon.setPrecision !== 'function') {
    return want === 'fp32' ? null : 'the oneDNN addon was built before bf16 support (rebuild it: node scripts/build-native.mjs)';
  }
  try {
    addon.setPrecision(want);
    return null;
  } catch (e) {
    addon.setPrecision('fp32');
    return (e as Error).message;
  }
}
