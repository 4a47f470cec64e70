/**
 * MixMask in TypeScript: the library the notebooks, scripts and tests compose, in one import.
 * Each part is a namespace (names such as `Sgd`, `RunConfig` or `ProgressInfo` exist in more
 * than one); the backbones, the backend chooser, the random source and a few utilities are also
 * at the top level.
 *
 * Its layers, lowest first (a file imports only from its own layer or lower ones, and no two
 * files or folders import each other; test/architecture.test.ts checks both):
 *   util, io → backend (its shared files, then onednn / wasm / webgpu, then backend/index)
 *   → models, optim → data, masks, losses, frameworks → train, eval, interop
 *   → presets, experiments → plot → notebook → this index.
 */
export * as tf from '@tensorflow/tfjs';
export { initBackend, ensureBackend, backendReport, formatBackendReport, defaultCandidates, nativeModuleCandidate } from './backend';
export type { BackendReport, BackendAttempt, BackendCandidate, InitBackendOptions, BackendName } from './backend';
export * from './models';
export { Rng } from './util/rng';
export type { RngState } from './util/rng';
export { mapLimit } from './util/concurrency';
export { inNotebook } from './util/tslab';
export { relError } from './util/numeric';
export * as stats from './util/stats';
export * as io from './io';
export * as optim from './optim';
export * as data from './data';
export * as masks from './masks';
export * as losses from './losses';
export * as frameworks from './frameworks';
export * as train from './train';
export * as evaluation from './eval';
export * as interop from './interop';
export * as presets from './presets';
export * as experiments from './experiments';
export * as plot from './plot';
export * as notebook from './notebook';
