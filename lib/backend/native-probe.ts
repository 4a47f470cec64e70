import { spawnSync } from 'node:child_process';

/**
 * Loads a native tfjs backend module in a child process first, so that a binding that throws,
 * aborts or segfaults while loading (missing libtensorflow, wrong CUDA, bad glibc) is reported
 * as a reason instead of taking the user's process or notebook kernel down with it.
 */
export interface ProbeOutcome {
  ok: boolean;
  /** Why it cannot be used (when !ok), or what was found (when ok). */
  reason: string;
}

const PROBE_SCRIPT = `
const modulePath = process.argv[1];
try {
  const tf = require(modulePath);
  const t = tf.matMul(tf.ones([2, 2]), tf.ones([2, 2]));
  t.dataSync();
  process.stdout.write(JSON.stringify({ ok: true, backend: tf.getBackend() }));
} catch (e) {
  process.stdout.write(JSON.stringify({ ok: false, error: String((e && e.message) || e) }));
}
`;

const CUDA_LIB = /lib(cudart|cublas|cublasLt|cudnn|cufft|curand|cusolver|cusparse)\.so[.\d]*/g;

export function probeNativeModule(resolvedPath: string, opts: { requireGpu: boolean; timeoutMs?: number }): ProbeOutcome {
  const res = spawnSync(process.execPath, ['-e', PROBE_SCRIPT, resolvedPath], {
    encoding: 'utf8',
    timeout: opts.timeoutMs ?? 120_000,
    // Level 0 makes TensorFlow log the devices it creates, which is how a GPU is seen.
    env: { ...process.env, TF_CPP_MIN_LOG_LEVEL: '0' },
  });
  const stderr = res.stderr ?? '';
  if (res.error) return { ok: false, reason: `probe failed to run: ${res.error.message}` };
  if (res.signal) return { ok: false, reason: `crashed while loading (${res.signal})` };
  let parsed: { ok: boolean; error?: string; backend?: string } | null = null;
  try {
    parsed = JSON.parse(res.stdout);
  } catch {
    const tail = stderr.trim().split('\n').slice(-1)[0] ?? '';
    return { ok: false, reason: `exited with code ${res.status} while loading${tail ? `: ${tail}` : ''}` };
  }
  if (!parsed!.ok) return { ok: false, reason: classifyLoadError(parsed!.error ?? 'unknown error', stderr) };
  if (opts.requireGpu) {
    const missing = cudaLibsMissing(stderr);
    if (missing.length > 0) {
      return { ok: false, reason: `CUDA libraries not found (${missing.join(', ')}); tfjs-node-gpu needs CUDA 11.2 and cuDNN 8.1` };
    }
    const gpus = stderr.match(/device:GPU:\d+/g);
    if (!gpus) return { ok: false, reason: 'loaded, but TensorFlow sees no GPU' };
    return { ok: true, reason: `${new Set(gpus).size} GPU(s) visible` };
  }
  return { ok: true, reason: `loaded (tfjs backend '${parsed!.backend}')` };
}

export function classifyLoadError(message: string, stderr = ''): string {
  const cuda = [...new Set([...`${message}\n${stderr}`.matchAll(CUDA_LIB)].map((m) => m[0]))];
  if (cuda.length > 0) return `CUDA libraries not found (${cuda.join(', ')}); tfjs-node-gpu needs CUDA 11.2 and cuDNN 8.1`;
  if (/tfjs_binding\.node|napi-v\d/.test(message)) {
    return 'installed without its native binding (its install script could not download libtensorflow)';
  }
  if (/libtensorflow/.test(message)) return `libtensorflow could not be loaded: ${firstLine(message)}`;
  return `failed to load: ${firstLine(message)}`;
}

function cudaLibsMissing(stderr: string): string[] {
  const lines = stderr.split('\n').filter((l) => /Could not load dynamic library/.test(l));
  return [...new Set(lines.flatMap((l) => [...l.matchAll(CUDA_LIB)].map((m) => m[0])))];
}

function firstLine(s: string): string {
  const line = s.split('\n')[0];
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}
