import * as fs from 'node:fs';
import * as path from 'node:path';
import * as tf from '@tensorflow/tfjs';
import type * as WasmPackage from '@tensorflow/tfjs-backend-wasm';

/**
 * Starts tfjs's threaded-SIMD wasm binary under Node with an explicit thread count.
 *
 * Stock tfjs 4.22 refuses threads in Node, for three reasons this loader works around without
 * patching the package:
 *  1. the flag WASM_HAS_MULTITHREAD_SUPPORT is forced false when IS_NODE: we skip tfjs's own
 *     `init()` and call the Emscripten factory from wasm-out/ ourselves;
 *  2. tfjs hands Emscripten the pthread worker and the main script as Blob URLs, which Node's
 *     worker_threads rejects: we point `locateFile` at a real worker file (pthread-worker.ts)
 *     and `mainScriptUrlOrBlob` at the real main script;
 *  3. the C++ side caps the XNNPACK pool at min(requested, 8, logical cores / 2), which is 1 on
 *     a 2-core machine: the core count is a wasm import (`emscripten_num_logical_cores`), read
 *     once by a static initialiser, so our `instantiateWasm` hook answers 2·threads for it
 *     (the cap of 8 stays: the binary pre-creates 8 pthread workers).
 * The BackendWasm class and all of tfjs's wasm kernels are reused unchanged.
 */
export interface ThreadedModule {
  cwrap: (name: string, ret: string | null, args: string[]) => (...a: unknown[]) => unknown;
  PThread: { runningWorkers: WorkerLike[]; unusedWorkers: WorkerLike[] };
  HEAPU8: Uint8Array;
  tfjs?: Record<string, unknown>;
}
interface WorkerLike {
  unref(): void;
  terminate(): unknown;
}

const WASM_OUT = path.join(path.dirname(require.resolve('@tensorflow/tfjs-backend-wasm/package.json')), 'wasm-out');
const MAIN_SCRIPT = path.join(WASM_OUT, 'tfjs-backend-wasm-threaded-simd.js');
const BINARY = path.join(WASM_OUT, 'tfjs-backend-wasm-threaded-simd.wasm');
const WORKER = path.join(__dirname, 'pthread-worker.js');

let requestedThreads = 0;
let loaded: ThreadedModule | null = null;

async function loadModule(threads: number): Promise<ThreadedModule> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const factory = require(MAIN_SCRIPT) as (config: Record<string, unknown>) => Promise<ThreadedModule>;
  const bytes = fs.readFileSync(BINARY);
  // Emscripten adds process-wide handlers that rethrow every uncaught error and rejection;
  // they would change how the host program fails, so they are removed once it has started.
  const before = {
    uncaughtException: new Set(process.listeners('uncaughtException')),
    unhandledRejection: new Set(process.listeners('unhandledRejection')),
  };
  let failed: (e: unknown) => void = () => undefined;
  const failure = new Promise<never>((_, reject) => {
    failed = reject;
  });
  const started = factory({
    locateFile: (file: string) => (file.endsWith('.worker.js') ? WORKER : path.join(WASM_OUT, file)),
    mainScriptUrlOrBlob: MAIN_SCRIPT,
    instantiateWasm(
      imports: { env: Record<string, unknown> },
      receive: (instance: WebAssembly.Instance, module: WebAssembly.Module) => void,
    ) {
      imports.env.emscripten_num_logical_cores = () => 2 * threads;
      WebAssembly.instantiate(bytes, imports as unknown as WebAssembly.Imports).then(
        (r) => receive(r.instance, r.module),
        (e: unknown) => failed(e),
      );
      return {};
    },
  });
  // Emscripten never settles its promise when an async instantiation fails: race the failure.
  const module = await Promise.race([started, failure]);
  for (const l of process.listeners('uncaughtException')) {
    if (!before.uncaughtException.has(l)) process.removeListener('uncaughtException', l);
  }
  for (const l of process.listeners('unhandledRejection')) {
    if (!before.unhandledRejection.has(l)) process.removeListener('unhandledRejection', l);
  }
  // Same bridge that tfjs's init() builds.
  module.tfjs = {
    init: module.cwrap('init', null, []),
    initWithThreadsCount: module.cwrap('init_with_threads_count', null, ['number']),
    getThreadsCount: module.cwrap('get_threads_count', 'number', []),
    registerTensor: module.cwrap('register_tensor', null, ['number', 'number', 'number']),
    disposeData: module.cwrap('dispose_data', null, ['number']),
    dispose: module.cwrap('dispose', null, []),
  };
  return module;
}

/**
 * Replaces tfjs's 'wasm' backend factory by one that starts the threaded binary with `threads`
 * threads. Only effective before the backend is first initialised (threads are fixed for the
 * life of the process).
 */
export function registerThreadedWasm(threads: number, pkg: typeof WasmPackage): () => void {
  requestedThreads = threads;
  const stock = tf.engine().registryFactory['wasm'];
  tf.removeBackend('wasm');
  tf.registerBackend(
    'wasm',
    async () => {
      loaded = await loadModule(requestedThreads);
      pkg.setThreadsCount(requestedThreads);
      // The constructor creates the XNNPACK pthreadpool (threads − 1 workers + this thread).
      const backend = new pkg.BackendWasm(loaded as unknown as ConstructorParameters<typeof pkg.BackendWasm>[0]);
      // Emscripten pre-spawns 8 workers; keep those the pool uses, end the idle rest (each is a
      // V8 isolate), and let the busy ones not hold the process open at exit.
      for (const w of loaded.PThread.unusedWorkers.splice(0)) void w.terminate();
      for (const w of loaded.PThread.runningWorkers) w.unref();
      return backend;
    },
    2,
  );
  // Puts tfjs's own (single-threaded in Node) factory back, should ours fail to start.
  return () => {
    tf.removeBackend('wasm');
    if (stock) tf.registerBackend('wasm', stock.factory, stock.priority);
  };
}

/** Threads of the live XNNPACK pool, or null before the threaded backend started. */
export function threadedPoolSize(): number | null {
  if (!loaded) return null;
  return (loaded.tfjs!.getThreadsCount as () => number)();
}
