/**
 * Entry point of the Emscripten pthread workers of tfjs's threaded-SIMD wasm binary, as a real
 * file: Node's worker_threads refuses the Blob URL that tfjs builds for it (ERR_WORKER_PATH).
 *
 * The package ships the worker's source only as a string (`wasmWorkerContents`). It expects
 * CommonJS `require` and `__filename` in scope, so it runs through `new Function` with them as
 * parameters. The string holds the two characters `\n` inside string literals that a template
 * literal has already turned into real newlines; they are escaped back first (tfjs does the
 * same before making its Blob).
 */
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { wasmWorkerContents } = require('@tensorflow/tfjs-backend-wasm/wasm-out/tfjs-backend-wasm-threaded-simd.worker.js') as {
  wasmWorkerContents: string;
};

new Function('require', '__filename', wasmWorkerContents.replace(/\n/g, '\\n'))(require, __filename);
