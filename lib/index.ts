/** MixMask in TypeScript: the library the notebooks, scripts and tests compose. */
export * as tf from '@tensorflow/tfjs';
export { initBackend, backendReport, formatBackendReport, defaultCandidates, nativeModuleCandidate } from './backend';
export type { BackendReport, BackendAttempt, BackendCandidate, InitBackendOptions, BackendName } from './backend';
export * from './models';
export { Rng } from './util/rng';
export type { RngState } from './util/rng';
export * as plot from './plot';
export * as masks from './masks';
export * as data from './data';
export * as evaluation from './eval';
export * as interop from './interop';
export * as notebook from './notebook';
