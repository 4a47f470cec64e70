/** Pretraining: the trainer, its run config, checkpoints, the run log, progress display, run-folder locks. */
export { Trainer, runTitle, NonFiniteLossError, CHECKPOINT_FILE } from './trainer';
export type { TrainerOptions, TrainSummary, MonitorResult } from './trainer';
export { storedRunConfig, readRunConfig } from './config';
export type { RunConfig, Profile } from './config';
export { CHECKPOINT_FORMAT, saveCheckpoint, loadCheckpoint, assignFromCheckpoint, loadBackbone, tensorsToSafe } from './checkpoint';
export type { Checkpoint, CheckpointMeta } from './checkpoint';
export { JsonlLog } from './log';
export type { LogRecord, StepRecord, EpochRecord } from './log';
export { TerminalProgress, NotebookProgress, defaultProgress, silentProgress, progressLine, formatValue } from './progress';
export type { ProgressInfo, ProgressSink } from './progress';
export { InterruptedError, interruptible } from './interrupt';
export { RunLock, RunLockedError, LOCK_FILE } from './lock';
export type { LockHolder } from './lock';
