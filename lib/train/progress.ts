import { inNotebook } from '../util/tslab';

/**
 * Progress of long work: a one-line bar on the terminal (redrawn in place on a TTY, a line every
 * few percent otherwise, so CI logs stay short) and a live-updating block in a tslab notebook.
 */
export interface ProgressInfo {
  /** What runs, e.g. "moco-v2 + mixmask". */
  title: string;
  epoch: number;
  epochs: number;
  step: number;
  stepsPerEpoch: number;
  /** Named values to show (loss, λ, lr, img/s, kNN …). */
  values: Record<string, number | string>;
  /** Seconds left, estimated. */
  etaSeconds: number | null;
}

export interface ProgressSink {
  update(p: ProgressInfo): void;
  done(message: string): void;
}

export function formatValue(v: number | string): string {
  if (typeof v === 'string') return v;
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  return a !== 0 && (a < 1e-3 || a >= 1e5) ? v.toExponential(2) : v.toFixed(a >= 100 ? 1 : 4).replace(/\.?0+$/, '');
}

function formatEta(s: number | null): string {
  if (s === null || !Number.isFinite(s)) return '';
  const m = Math.floor(s / 60);
  return m >= 60 ? `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m` : m > 0 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.round(s)}s`;
}

function bar(fraction: number, width = 24): string {
  const filled = Math.round(Math.max(0, Math.min(1, fraction)) * width);
  return '█'.repeat(filled) + '░'.repeat(width - filled);
}

export function progressLine(p: ProgressInfo): string {
  const total = p.epochs * p.stepsPerEpoch;
  const done = p.epoch * p.stepsPerEpoch + p.step;
  const vals = Object.entries(p.values).map(([k, v]) => `${k} ${formatValue(v)}`).join(' · ');
  const eta = formatEta(p.etaSeconds);
  return `${p.title} | epoch ${p.epoch + 1}/${p.epochs} ${bar(done / Math.max(1, total))} ${p.step}/${p.stepsPerEpoch} | ${vals}${eta ? ` | ETA ${eta}` : ''}`;
}

export class TerminalProgress implements ProgressSink {
  private lastPrinted = -1;

  constructor(private readonly stream: NodeJS.WriteStream = process.stderr) {}

  update(p: ProgressInfo): void {
    const line = progressLine(p);
    if (this.stream.isTTY) {
      const cols = this.stream.columns ?? 160;
      this.stream.write(`\r${line.length > cols - 1 ? line.slice(0, cols - 2) + '…' : line.padEnd(cols - 1)}`);
      return;
    }
    const total = p.epochs * p.stepsPerEpoch;
    const percent = Math.floor((100 * (p.epoch * p.stepsPerEpoch + p.step)) / Math.max(1, total));
    if (percent >= this.lastPrinted + 5 || p.step === p.stepsPerEpoch) {
      this.lastPrinted = percent;
      this.stream.write(`${line}\n`);
    }
  }

  done(message: string): void {
    this.stream.write(this.stream.isTTY ? `\n${message}\n` : `${message}\n`);
  }
}

interface TslabDisplay {
  html(s: string): void;
}

/** A live block in the notebook, redrawn at most every `intervalMs`. */
export class NotebookProgress implements ProgressSink {
  private readonly display: TslabDisplay;
  private lastDraw = 0;

  constructor(private readonly intervalMs = 1000) {
    // Loaded only inside the kernel, where tslab is already in memory.
    // eslint-disable-next-line @typescript-eslint/no-var-requires
    this.display = (require('tslab') as { newDisplay(): TslabDisplay }).newDisplay();
  }

  update(p: ProgressInfo, force = false): void {
    const now = Date.now();
    if (!force && now - this.lastDraw < this.intervalMs && p.step !== p.stepsPerEpoch) return;
    this.lastDraw = now;
    const total = p.epochs * p.stepsPerEpoch;
    const done = p.epoch * p.stepsPerEpoch + p.step;
    const pct = (100 * done) / Math.max(1, total);
    const cells = Object.entries(p.values).map(([k, v]) => `<td style="padding:0 12px 0 0"><b>${k}</b> ${formatValue(v)}</td>`).join('');
    this.display.html(
      `<div style="font-family:monospace"><div>${escape(p.title)} — epoch ${p.epoch + 1}/${p.epochs}, step ${p.step}/${p.stepsPerEpoch}` +
        `${p.etaSeconds !== null ? `, ETA ${formatEta(p.etaSeconds)}` : ''}</div>` +
        `<div style="background:#eee;width:100%;max-width:600px;height:10px"><div style="background:#3b82f6;height:10px;width:${pct.toFixed(1)}%"></div></div>` +
        `<table><tr>${cells}</tr></table></div>`,
    );
  }

  done(message: string): void {
    this.display.html(`<div style="font-family:monospace">${escape(message)}</div>`);
  }
}

/** The terminal bar, or the live notebook block when running inside tslab. */
export function defaultProgress(): ProgressSink {
  return inNotebook() ? new NotebookProgress() : new TerminalProgress();
}

/** Discards progress (tests). */
export const silentProgress: ProgressSink = { update() {}, done() {} };

function escape(s: string): string {
  return s.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[c]!);
}
