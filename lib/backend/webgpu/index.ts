import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type { BackendCandidate } from '../types';
import { installWebgpuKernels, WEBGPU_KERNELS } from './kernels';
import { setTuning } from './program';
import { type AdapterSummary, describeAdapter, probeDawn, summariseAdapter } from './probe';

export { classifyDawnFailure, describeAdapter, probeDawn, summariseAdapter } from './probe';
export type { AdapterSummary, ProbeResult } from './probe';
export { installWebgpuKernels, WEBGPU_KERNELS } from './kernels';

/**
 * `webgpu`: @tensorflow/tfjs-backend-webgpu on Dawn's Node binding (npm `webgpu`), i.e. Vulkan
 * on Linux (NVIDIA with any CUDA version, AMD, Intel), Metal on macOS. Both packages are
 * optional dependencies. Dawn is first started in a child process (probe.ts); only a hardware
 * adapter is chosen on its own, a software one (Mesa's llvmpipe) is reported and skipped unless
 * this backend is forced, which is how CI exercises the GPU code path on a CPU.
 *
 * Under Node nothing can wait for the GPU synchronously, so `dataSync()` works only on values
 * already read with `await tensor.data()`; code that may run here reads asynchronously.
 */
export interface WebgpuCandidateOptions {
  /** dawn.node to load (default MIXMASK_DAWN_NODE or the one in node_modules/webgpu). */
  dawnNodePath?: string;
  /** Flags for Dawn's create(), e.g. ['backend=opengles'] (default: MIXMASK_DAWN_FLAGS, space-separated). */
  flags?: string[];
  /** Probe timeout in ms. */
  timeoutMs?: number;
  /** Environment of the probe (default process.env). */
  env?: NodeJS.ProcessEnv;
  /**
   * Our training kernels (./kernels.ts) instead of tfjs's own (default: yes, unless
   * MIXMASK_WEBGPU_KERNELS=stock, which the benches use to measure what they replace).
   */
  trainingKernels?: boolean;
}

/** The adapter of the active webgpu backend, once activated. */
let activeAdapter: AdapterSummary | null = null;

export function webgpuAdapter(): AdapterSummary | null {
  return tf.getBackend() === 'webgpu' ? activeAdapter : null;
}

/** Where npm put dawn.node for this platform, or null when `webgpu` is not installed. */
export function defaultDawnNodePath(env: NodeJS.ProcessEnv = process.env): string | null {
  if (env.MIXMASK_DAWN_NODE) return env.MIXMASK_DAWN_NODE;
  let pkg: string;
  try {
    pkg = require.resolve('webgpu/package.json');
  } catch {
    return null;
  }
  const arch = process.platform === 'darwin' ? 'universal' : process.arch;
  return path.join(path.dirname(pkg), 'dist', `${process.platform}-${arch}`, 'dawn.node');
}

function parseFlags(value: string | undefined): string[] {
  return (value ?? '').split(/\s+/).filter((f) => f !== '');
}

const REQUEST = { powerPreference: 'high-performance' };

interface DawnModule {
  create(flags: string[]): GpuLike;
  globals: Record<string, unknown>;
}
interface GpuLike {
  requestAdapter(opts?: Record<string, unknown>): Promise<unknown>;
  getPreferredCanvasFormat(): string;
}

/** The GPU object handed to tfjs as navigator.gpu, kept for the life of the process. */
let installedGpu: GpuLike | null = null;

function installNavigatorGpu(dawnNodePath: string, flags: string[]): void {
  if (installedGpu) return;
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const dawn = require(dawnNodePath) as DawnModule;
  // tfjs-backend-webgpu uses the browser's globals (GPUBufferUsage, GPUMapMode, …) and finds
  // the API as navigator.gpu; both must exist before it is imported, as it registers itself then.
  for (const [k, v] of Object.entries(dawn.globals)) {
    if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  }
  const gpu = dawn.create(flags);
  requestAdapterStorageBindings(gpu);
  const g = globalThis as unknown as { navigator?: object };
  if (g.navigator === undefined) g.navigator = {};
  Object.defineProperty(g.navigator, 'gpu', { value: gpu, configurable: true, enumerable: true, writable: true });
  installedGpu = gpu;
}

interface AdapterLike {
  limits: { maxStorageBuffersPerShaderStage: number };
  requestDevice(d?: { requiredLimits?: Record<string, number> }): Promise<unknown>;
}

/**
 * tfjs-backend-webgpu 4.22 asks for its device with some of the adapter's limits but not
 * maxStorageBuffersPerShaderStage, so the device gets WebGPU's default 8 where the adapter offers
 * more (16 on Mesa's llvmpipe): our multi-output dispatches (./multi-output.ts, e.g. the
 * multi-tensor optimiser updates) would fit half as many tensors. Adapters from `gpu` ask for it.
 */
function requestAdapterStorageBindings(gpu: GpuLike): void {
  const requestAdapter = gpu.requestAdapter.bind(gpu);
  gpu.requestAdapter = async (opts) => {
    const adapter = (await requestAdapter(opts)) as AdapterLike | null;
    if (!adapter) return adapter;
    const requestDevice = adapter.requestDevice.bind(adapter);
    const maxStorageBuffersPerShaderStage = adapter.limits.maxStorageBuffersPerShaderStage;
    adapter.requestDevice = (d = {}) => requestDevice({ ...d, requiredLimits: { ...d.requiredLimits, maxStorageBuffersPerShaderStage } });
    return adapter;
  };
}

/**
 * Under Node a read of GPU data cannot block, and tfjs's fallback needs a browser's
 * OffscreenCanvas; replace its "OffscreenCanvas is not defined" with what to do instead.
 */
function guardSyncReads(backend: tf.KernelBackend): void {
  const b = backend as unknown as {
    readSync(dataId: object): unknown;
    tensorMap: { get(dataId: object): { values: unknown; dtype: string } | undefined };
    mixmaskGuarded?: boolean;
  };
  if (b.mixmaskGuarded) return;
  const readSync = b.readSync.bind(b);
  b.readSync = (dataId: object) => {
    const d = b.tensorMap.get(dataId);
    if (d && d.values == null && d.dtype !== 'string' && d.dtype !== 'complex64') {
      throw new Error('webgpu: a synchronous read (dataSync, arraySync, bufferSync, print) cannot wait for the GPU under Node; use `await tensor.data()` (or `await tensor.array()`)');
    }
    return readSync(dataId);
  };
  b.mixmaskGuarded = true;
}

export function webgpuCandidate(opts: WebgpuCandidateOptions = {}): BackendCandidate {
  const env = opts.env ?? process.env;
  const flags = opts.flags ?? parseFlags(env.MIXMASK_DAWN_FLAGS);
  let probed: AdapterSummary | null = null;
  let dawnPath: string | null = null;
  return {
    name: 'webgpu',
    async check(ctx) {
      try {
        require.resolve('@tensorflow/tfjs-backend-webgpu');
      } catch {
        return { ok: false, reason: '@tensorflow/tfjs-backend-webgpu not installed (optional dependency)' };
      }
      dawnPath = opts.dawnNodePath ?? defaultDawnNodePath(env);
      if (dawnPath === null) return { ok: false, reason: 'not installed (optional dependency webgpu)' };
      if (!fs.existsSync(dawnPath)) return { ok: false, reason: `no Dawn binding for ${process.platform}-${process.arch} (${dawnPath} is missing)` };
      const res = probeDawn(dawnPath, { flags, request: REQUEST, timeoutMs: opts.timeoutMs, env });
      if (!res.ok) return res;
      if (res.adapter.software && !ctx?.forced) {
        return { ok: false, reason: `only a software adapter (${describeAdapter(res.adapter)}): slower than the CPU backends; used only when forced (MIXMASK_BACKEND=webgpu)` };
      }
      probed = res.adapter;
      return { ok: true, reason: describeAdapter(res.adapter) };
    },
    async activate() {
      if (dawnPath === null) throw new Error('webgpu: activate() before a successful check()');
      installNavigatorGpu(dawnPath, flags);
      // Importing registers the 'webgpu' backend (a no-op after the first time).
      await import('@tensorflow/tfjs-backend-webgpu');
      const training = opts.trainingKernels ?? env.MIXMASK_WEBGPU_KERNELS !== 'stock';
      installWebgpuKernels({ training });
      // A software adapter runs one workgroup per CPU core: its reductions are split less.
      setTuning({ software: probed?.software ?? false });
      if (!(await tf.setBackend('webgpu'))) throw new Error('tf.setBackend("webgpu") returned false (see the warning above)');
      await tf.ready();
      const backend = tf.backend();
      guardSyncReads(backend);
      const info = (backend as unknown as { adapterInfo?: { vendor?: string; architecture?: string } }).adapterInfo;
      // The backend keeps only vendor and architecture; the probe saw the rest of the same adapter.
      activeAdapter = probed ?? summariseAdapter(info ?? {});
      const dawn = flags.length > 0 ? `Dawn (${flags.join(' ')})` : 'Dawn';
      return { detail: `${dawn}, adapter ${describeAdapter(activeAdapter)}; kernels: ${WEBGPU_KERNELS.join(', ')}${training ? '' : ' (training kernels: tfjs\'s own)'}`, threads: 1 };
    },
  };
}
