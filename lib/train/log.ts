import * as fs from 'node:fs';
import { appendJsonl, readJsonl } from '../io/jsonl';

/**
 * The run log, `log.jsonl`: one record per training step and one per epoch, appended as training
 * goes. This is its one schema; the plots and the reproduction script read it back through it.
 */
export interface StepRecord {
  type: 'step';
  /** 0-based epoch the step belongs to. */
  epoch: number;
  /** Global step, 1-based (the step just taken). */
  step: number;
  loss: number;
  /** The loss's terms by name (e.g. 'base', 'mix0.own'). */
  terms?: Record<string, number>;
  /** λ of the mixed view (null when the view method mixes nothing). */
  lambda?: number | null;
  lr?: number;
  imgPerSec?: number;
  /** Mean over dimensions of the per-dimension std of the L2-normalised embeddings (≈1/√d healthy, 0 collapsed). */
  embeddingStd?: number;
}

/** The epoch line: the epoch's mean step metrics, plus the kNN monitor when it ran. */
export interface EpochRecord extends Omit<StepRecord, 'type'> {
  type: 'epoch';
  knnTop1?: number;
  knnTop5?: number;
}

export type LogRecord = StepRecord | EpochRecord;

export class JsonlLog {
  constructor(readonly file: string) {}

  append(record: LogRecord): void {
    appendJsonl(this.file, record);
  }

  /** Records read back ([] when there is no log yet); a torn last line is skipped, any other bad line is an error. */
  static read(file: string): LogRecord[] {
    return readJsonl<LogRecord>(file);
  }

  /** Keeps only records up to global step `step` (used when resuming from a checkpoint). */
  truncateAfter(step: number): void {
    const kept = JsonlLog.read(this.file).filter((r) => r.step <= step);
    const tmp = `${this.file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, kept.map((r) => JSON.stringify(r) + '\n').join(''));
    fs.renameSync(tmp, this.file);
  }
}
