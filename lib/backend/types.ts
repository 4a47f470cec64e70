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
  /** Loads and activates it in this process; returns a one-line description and its thread count. */
  activate(opts: { threads: number }): Promise<{ detail: string; threads: number }>;
}
