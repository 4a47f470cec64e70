/**
 * The contract between `npm run bench` and its sections. Each file in bench/sections/ exports
 * `run(ctx)` and reports measurements through `ctx.report`; sections run in file-name order,
 * and a later section can read earlier measurements (e.g. the mask bench expresses its time
 * as a share of the training step measured before it).
 */
export interface Measurement {
  /** What was measured, e.g. "resnet18-cifar train". */
  name: string;
  backend: string;
  batch: number;
  /** Throughput on our side (images per second), when the measurement is a throughput. */
  imgPerSec?: number;
  /** Wall time of one iteration in milliseconds, when that is the natural unit. */
  ms?: number;
  /** The peer measured in the same run (e.g. "pytorch-cpu"), or null. */
  peer: string | null;
  peerImgPerSec: number | null;
  /** ours / peer, or null without a peer. */
  ratio: number | null;
  /** Anything else worth printing (threads, peak memory, share of a step, …). */
  extra?: Record<string, number | string>;
  /** The GPU adapter, when the backend runs on one (webgpu), e.g. "NVIDIA H100 80GB HBM3 — vendor nvidia, hopper, hardware". */
  device?: string;
}

export interface BenchContext {
  /** Backend name as reported by initBackend (e.g. "wasm"). */
  backend: string;
  threads: number;
  /** Quick mode: fewer repetitions and smaller batches (`--quick`). */
  quick: boolean;
  report(m: Measurement): void;
  /** Measurements reported so far in this run. */
  results: readonly Measurement[];
}

export type BenchSection = (ctx: BenchContext) => Promise<void>;

/** Median wall time (ms) of `reps` calls after `warmup` calls. */
export async function timeMedian(fn: () => unknown | Promise<unknown>, reps: number, warmup = 1): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = process.hrtime.bigint();
    await fn();
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)];
}
