import * as os from 'node:os';
import * as tf from '@tensorflow/tfjs';
import { probeNativeModule } from './native-probe';
import type { BackendCandidate } from './types';
import { onednnCandidate, parsePrecision, PRECISION_ENV, uninstallOnednnKernels } from './onednn';
import { activateWasm, wasmAvailable } from './wasm';
import { webgpuCandidate } from './webgpu';

export type { BackendCandidate } from './types';

/**
 * Chooses the best tfjs backend this machine can run, in order:
 *   tfjs-node-gpu (loads and sees a GPU) → webgpu (Dawn finds a hardware adapter) → tfjs-node
 *   → wasm+onednn → wasm → cpu
 * and reports why each better one was skipped. Force one with the `force` option or the
 * MIXMASK_BACKEND environment variable; a forced backend that cannot run is an error.
 * Call it once at start-up, before any tensor is created.
 */
export type BackendName = 'tfjs-node-gpu' | 'webgpu' | 'tfjs-node' | 'wasm+onednn' | 'wasm' | 'cpu';

export interface BackendAttempt {
  name: string;
  status: 'chosen' | 'skipped' | 'failed' | 'not tried';
  reason: string;
}

export interface BackendReport {
  /** Candidate that runs (e.g. 'wasm'). */
  name: string;
  /** tfjs's own backend name (e.g. 'wasm', 'tensorflow', 'cpu'). */
  tfBackend: string;
  detail: string;
  /** Threads the backend computes with. */
  threads: number;
  forcedBy: 'option' | 'env' | null;
  /** 'bf16' only where bf16 was asked for and the backend runs it (wasm+onednn on a CPU with native bf16). */
  precision: 'fp32' | 'bf16';
  attempts: BackendAttempt[];
  versions: Record<string, string>;
}

export interface InitBackendOptions {
  /** Use exactly this backend (error if it cannot run). Overrides MIXMASK_BACKEND. */
  force?: string;
  /** Threads for the CPU backends; default MIXMASK_THREADS or the number of cores. */
  threads?: number;
  /** Environment to read MIXMASK_BACKEND / MIXMASK_THREADS from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The chain to try, best first (default `defaultCandidates()`); tests inject their own. */
  candidates?: BackendCandidate[];
  /**
   * 'bf16': mixed precision where the chosen backend has it (wasm+onednn with native bf16);
   * elsewhere fp32, and the report says why. Default MIXMASK_PRECISION, else 'fp32'.
   */
  precision?: 'fp32' | 'bf16';
}

/** A native tfjs package (tfjs-node, tfjs-node-gpu): probed in a child process, then required. */
export function nativeModuleCandidate(name: string, moduleId: string, opts: { requireGpu: boolean }): BackendCandidate {
  let resolved: string | null = null;
  return {
    name,
    async check() {
      try {
        resolved = require.resolve(moduleId);
      } catch {
        return { ok: false, reason: 'not installed' };
      }
      return probeNativeModule(resolved, opts);
    },
    async activate() {
      require(resolved ?? require.resolve(moduleId));
      if (!(await tf.setBackend('tensorflow'))) {
        throw new Error(`${moduleId} loaded but registered no 'tensorflow' backend with this copy of @tensorflow/tfjs`);
      }
      // libtensorflow sizes its own thread pools from the core count.
      const cores = os.availableParallelism?.() ?? os.cpus().length;
      return { detail: opts.requireGpu ? 'libtensorflow with CUDA' : 'libtensorflow (CPU)', threads: cores };
    },
  };
}

export function defaultCandidates(): BackendCandidate[] {
  return [
    nativeModuleCandidate('tfjs-node-gpu', '@tensorflow/tfjs-node-gpu', { requireGpu: true }),
    webgpuCandidate(),
    nativeModuleCandidate('tfjs-node', '@tensorflow/tfjs-node', { requireGpu: false }),
    onednnCandidate(),
    {
      name: 'wasm',
      async check() {
        return wasmAvailable();
      },
      async activate({ threads }) {
        // Plain wasm even if an earlier initBackend in this process installed the oneDNN kernels.
        uninstallOnednnKernels();
        return activateWasm({ threads });
      },
    },
    {
      name: 'cpu',
      async check() {
        return { ok: true, reason: '' };
      },
      async activate() {
        if (!(await tf.setBackend('cpu'))) throw new Error('tf.setBackend("cpu") returned false');
        // Its first-use banner advertises tfjs-node; our report already says why cpu runs.
        (tf.backend() as unknown as { firstUse?: boolean }).firstUse = false;
        return { detail: 'plain JavaScript (slow: convolution gradients take minutes at ResNet scale)', threads: 1 };
      },
    },
  ];
}

let current: BackendReport | null = null;

/** The report of the last successful initBackend, or null. */
export function backendReport(): BackendReport | null {
  return current;
}

export async function initBackend(opts: InitBackendOptions = {}): Promise<BackendReport> {
  const env = opts.env ?? process.env;
  const candidates = opts.candidates ?? defaultCandidates();
  const names = candidates.map((c) => c.name);
  const envForce = env.MIXMASK_BACKEND?.trim() || undefined;
  const force = opts.force ?? envForce;
  const forcedBy = opts.force !== undefined ? 'option' : envForce !== undefined ? 'env' : null;
  if (force !== undefined && !names.includes(force)) {
    const source = forcedBy === 'env' ? 'MIXMASK_BACKEND' : 'option "force"';
    throw new Error(`${source} is '${force}', expected one of: ${names.join(', ')}`);
  }
  const threads = opts.threads ?? parseThreads(env.MIXMASK_THREADS);
  const precision = opts.precision !== undefined ? parsePrecision(opts.precision, 'option "precision"') : parsePrecision(env[PRECISION_ENV]);

  const attempts: BackendAttempt[] = [];
  let activeThreads = 1;
  let activePrecision: 'fp32' | 'bf16' = 'fp32';
  for (const candidate of candidates) {
    if (force !== undefined && candidate.name !== force) {
      attempts.push({ name: candidate.name, status: 'skipped', reason: `not forced (${force} was)` });
      continue;
    }
    if (attempts.some((a) => a.status === 'chosen')) {
      attempts.push({ name: candidate.name, status: 'not tried', reason: '' });
      continue;
    }
    const check = await safeCheck(candidate, force === candidate.name);
    if (!check.ok) {
      attempts.push({ name: candidate.name, status: 'skipped', reason: check.reason });
      continue;
    }
    try {
      const active = await candidate.activate({ threads, precision });
      activeThreads = active.threads;
      activePrecision = active.precision ?? 'fp32';
      // A candidate without a precision mode ignores the request: say so rather than run fp32 silently.
      const note = precision === 'bf16' && active.precision === undefined ? `; bf16 asked for but ${candidate.name} has no bf16 mode (only wasm+onednn on a CPU with native bf16): fp32` : '';
      attempts.push({ name: candidate.name, status: 'chosen', reason: (active.detail || check.reason) + note });
    } catch (e) {
      attempts.push({ name: candidate.name, status: 'failed', reason: `failed to activate: ${(e as Error).message}` });
    }
  }

  const chosen = attempts.find((a) => a.status === 'chosen');
  if (!chosen) {
    const why = attempts.map((a) => `${a.name}: ${a.reason}`).join('; ');
    throw new Error(force !== undefined ? `backend '${force}' was forced but cannot run: ${why}` : `no tfjs backend could start: ${why}`);
  }
  current = {
    name: chosen.name,
    tfBackend: tf.getBackend(),
    detail: chosen.reason,
    threads: activeThreads,
    forcedBy,
    precision: activePrecision,
    attempts,
    versions: { node: process.versions.node, tfjs: tf.version.tfjs, cores: String(os.availableParallelism?.() ?? os.cpus().length) },
  };
  return current;
}

/**
 * The backend computations run on: the one initBackend chose, or — when nothing chose one yet —
 * the best that works here, chosen now and announced with one line on stderr. Entry points that
 * compute (training, evaluation) call it, so a notebook that forgot initBackend() never trains on
 * tfjs's plain-JavaScript fallback without a word. Once initBackend ran, switching between the
 * backends it prepared (tf.setBackend, as the cross-backend tests do) is left alone.
 */
export async function ensureBackend(log: (line: string) => void = (l) => console.error(l)): Promise<BackendReport> {
  if (current !== null) return current;
  const report = await initBackend();
  log(`no backend was chosen (initBackend() not called): ${formatBackendReport(report).split('\n')[0]}`);
  return report;
}

async function safeCheck(c: BackendCandidate, forced: boolean): Promise<{ ok: boolean; reason: string }> {
  try {
    return await c.check({ forced });
  } catch (e) {
    return { ok: false, reason: `check failed: ${(e as Error).message}` };
  }
}

/** MIXMASK_THREADS as a thread count (unset or empty: every core); anything else is an error. */
export function parseThreads(value: string | undefined): number {
  const cores = os.availableParallelism?.() ?? os.cpus().length;
  if (value === undefined || value.trim() === '') return cores;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`MIXMASK_THREADS is '${value}', expected a positive integer`);
  return n;
}

/** Human-readable report: which backend runs and why each better one was skipped. */
export function formatBackendReport(r: BackendReport): string {
  const forced = r.forcedBy === 'env' ? ' (forced by MIXMASK_BACKEND)' : r.forcedBy === 'option' ? ' (forced)' : '';
  const lines = [`backend: ${r.name}${forced} — ${r.detail}`];
  const width = Math.max(...r.attempts.map((a) => a.name.length));
  for (const a of r.attempts) lines.push(`  ${a.name.padEnd(width)}  ${a.status.padEnd(9)} ${a.reason}`.trimEnd());
  lines.push(`  node ${r.versions.node}, tfjs ${r.versions.tfjs}, ${r.versions.cores} cores`);
  return lines.join('\n');
}
