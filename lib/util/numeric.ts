/**
 * Max relative error of `a` against the reference `b`: max|a − b| / max(max|b|, tiny). The
 * measure the kernel tests hold to < 1e-5, and the one the kernel benches print.
 */
export function relError(a: Float32Array | number[], b: Float32Array | number[]): number {
  if (a.length !== b.length) throw new Error(`relError: lengths differ (${a.length} vs ${b.length})`);
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-30);
}
