/**
 * The small command-line reader the project's commands share (train, eval, export, import):
 * `--name value` options and `--flag` switches, each validated with a message that names the
 * option and the value it got.
 */
export class Args {
  readonly help: boolean;
  private readonly values = new Map<string, string>();
  private readonly switches = new Set<string>();

  /** `options` take a value; `flags` are switches. Anything else is an error. */
  constructor(argv: readonly string[], spec: { options: readonly string[]; flags?: readonly string[] }) {
    let help = false;
    for (let i = 0; i < argv.length; i++) {
      const a = argv[i];
      if (a === '--help' || a === '-h') help = true;
      else if (spec.flags?.includes(a)) this.switches.add(a);
      else if (spec.options.includes(a)) {
        const v = argv[i + 1];
        if (v === undefined || v.startsWith('--')) throw new Error(`${a} needs a value`);
        this.values.set(a, v);
        i++;
      } else throw new Error(a.startsWith('-') ? `unknown option ${a}` : `unexpected argument '${a}'`);
    }
    this.help = help;
  }

  flag(name: string): boolean {
    return this.switches.has(name);
  }

  has(name: string): boolean {
    return this.values.has(name);
  }

  string(name: string): string | undefined {
    return this.values.get(name);
  }

  /** The value, or an error saying it is required (with a hint of what is expected). */
  required(name: string, hint = ''): string {
    const v = this.values.get(name);
    if (v === undefined) throw new Error(`${name}${hint ? ` ${hint}` : ''} is required`);
    return v;
  }

  int(name: string, min: number): number | undefined {
    const v = this.values.get(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) throw new Error(`${name} must be an integer ≥ ${min}, got '${v}'`);
    return n;
  }

  /** A finite number within [min, max] (defaults: > 0). */
  number(name: string, range: { min?: number; max?: number } = {}): number | undefined {
    const v = this.values.get(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    const ok = Number.isFinite(n) && (range.min === undefined ? n > 0 : n >= range.min) && (range.max === undefined || n <= range.max);
    if (!ok) {
      const what = range.min === undefined ? '> 0' : range.max === undefined ? `≥ ${range.min}` : `in [${range.min}, ${range.max}]`;
      throw new Error(`${name} must be a number ${what}, got '${v}'`);
    }
    return n;
  }

  oneOf<T extends string>(name: string, options: readonly T[]): T | undefined {
    const v = this.values.get(name);
    if (v === undefined) return undefined;
    if (!options.includes(v as T)) throw new Error(`${name} must be one of ${options.join(', ')}, got '${v}'`);
    return v as T;
  }
}

/**
 * Runs a command's main when the file is executed directly: exit code from main, or 1 with the
 * error's message (no stack trace: the messages are written for users).
 */
export function runCli(command: string, module: NodeModule, main: () => Promise<number>): void {
  if (require.main !== module) return;
  main().then(
    (code) => process.exit(code),
    (e) => {
      console.error(`${command}: ${e instanceof Error ? e.message : String(e)}`);
      process.exit(1);
    },
  );
}

/**
 * An AbortSignal raised by the first Ctrl-C (SIGINT) or SIGTERM — a job scheduler's stop, or
 * `kill` of a background run, whose SIGINT the shell ignores — so that long work stops after
 * the current step with a checkpoint; a second signal exits at once.
 */
export function stopSignal(message: string): AbortSignal {
  const abort = new AbortController();
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => {
      if (abort.signal.aborted) process.exit(sig === 'SIGINT' ? 130 : 143);
      console.error(`\n${sig === 'SIGINT' ? 'interrupt' : 'terminate'}: ${message} (signal again to exit at once)`);
      abort.abort();
      process.once(sig, () => process.exit(sig === 'SIGINT' ? 130 : 143));
    });
  }
  return abort.signal;
}
