import * as fs from 'node:fs';

/** Metrics as JSON lines: one object per step or epoch, appended as training goes. */
export type LogRecord = { type: 'step' | 'epoch' | 'event'; step: number; epoch: number } & Record<string, unknown>;

export class JsonlLog {
  constructor(readonly file: string) {}

  append(record: LogRecord): void {
    fs.appendFileSync(this.file, JSON.stringify(record) + '\n');
  }

  /** Records read back; a torn last line (crash mid-write) is ignored, any other bad line is an error. */
  static read(file: string): LogRecord[] {
    if (!fs.existsSync(file)) return [];
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const out: LogRecord[] = [];
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      try {
        out.push(JSON.parse(line) as LogRecord);
      } catch {
        if (i < lines.length - 1 && lines.slice(i + 1).some((l) => l.trim() !== '')) {
          throw new Error(`${file}: line ${i + 1} is not valid JSON`);
        }
      }
    });
    return out;
  }

  /** Keeps only records up to global step `step` (used when resuming from a checkpoint). */
  truncateAfter(step: number): void {
    const kept = JsonlLog.read(this.file).filter((r) => r.step <= step && !(r.type === 'epoch' && r.step > step));
    const tmp = `${this.file}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, kept.map((r) => JSON.stringify(r) + '\n').join(''));
    fs.renameSync(tmp, this.file);
  }
}
