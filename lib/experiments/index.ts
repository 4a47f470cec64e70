/** Experiments composed from the trainer and the evaluators: a pretraining run with its kNN monitor, as the command line and the notebooks start it. */
export { defaultRunDir, runDatasets, startRun } from './run';
export type { RunDatasets, StartRunOptions } from './run';
export { torchCommand, torchEngineDir, shellLine, prepareTorchRun, runTorchEngine, torchEngineUnavailable, freePort } from './torch-engine';
export type { TorchLaunch, TorchRunOptions } from './torch-engine';
