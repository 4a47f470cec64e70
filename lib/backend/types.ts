/**
 * What every backend candidate offers the chooser in ./index.ts. It lives here, below both the
 * candidates (./onednn, ./wasm, ./webgpu) and the chooser, so that neither imports the other's file.
 */
export interface BackendCandidate {
  name: string;
  /**
   * Whether this backend can run here; never throws, never crashes the process. `forced` says
   * the user asked for exactly this one (a candidate may then accept what it would skip).
   */
  check(ctx?: { forced: boolean }): Promise<{ ok: boolean; reason: string }>;
  /**
   * Loads and activates it in this process; returns a one-line description and its thread count.
   * `precision` 'bf16' asks for mixed precision: a candidate that has such a mode returns the
   * precision it runs at (and says in `detail` why, if not bf16); one that returns none has no
   * such mode (the chooser then says so).
   */
  activate(opts: { threads: number; precision?: 'fp32' | 'bf16' }): Promise<{ detail: string; threads: number; precision?: 'fp32' | 'bf16' }>;
}
