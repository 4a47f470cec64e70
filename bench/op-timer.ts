/**
 * Where a step's time goes op by op, without tf.profile (whose own bookkeeping would be counted):
 * while `timeOps` runs, every engine.runKernelFunc (one tfjs op: a registered kernel or a
 * customGrad scope) and every kernel function of the active backend is timed.
 *
 *   kernel  the kernel function itself (outermost call only: a kernel that runs other kernels
 *           directly, as lib/backend/wasm's do, counts as one);
 *   around  the rest of the op's runKernelFunc: tensor wrapping, saving inputs for the tape,
 *           scope and memory bookkeeping (nested ops excluded);
 *   outside the step's wall time not inside any op: building the backward pass, gradient
 *           functions' JavaScript, tidy, the optimiser's and the caller's JavaScript.
 */
import * as tf from '@tensorflow/tfjs';

export interface OpRow {
  /** The op's name, followed by its input shapes where timeOps was asked for them. */
  name: string;
  calls: number;
  kernelMs: number;
  aroundMs: number;
}

export interface OpTiming {
  wallMs: number;
  kernelMs: number;
  aroundMs: number;
  outsideMs: number;
  calls: number;
  /** Per op name, heaviest (kernel + around) first. */
  rows: OpRow[];
}

interface Frame {
  row: OpRow;
  t0: number;
  /** Time spent in nested ops (subtracted from this one's). */
  nested: number;
  kernel: number;
}

type EngineLike = {
  runKernelFunc: (params: { kernelName?: string; inputs?: Record<string, { shape: number[] } | null> }) => unknown;
  state: { activeScope?: { name: string } | null };
};

/** Runs `fn` once with every op timed (see the file comment); `byShape`: one row per (op, input shapes). */
export async function timeOps(fn: () => Promise<unknown> | unknown, opts: { byShape?: boolean } = {}): Promise<OpTiming> {
  const engine = tf.engine() as unknown as EngineLike;
  const rows = new Map<string, OpRow>();
  const stack: Frame[] = [];
  let kernelDepth = 0;
  const now = () => performance.now();

  const original = engine.runKernelFunc;
  const ownProperty = Object.prototype.hasOwnProperty.call(engine, 'runKernelFunc');
  engine.runKernelFunc = function (this: EngineLike, params) {
    const op = params.kernelName ?? engine.state.activeScope?.name ?? 'customGrad';
    const name = opts.byShape ? `${op} ${JSON.stringify(Object.values(params.inputs ?? {}).map((t) => t?.shape ?? null))}` : op;
    const row = rows.get(name) ?? { name, calls: 0, kernelMs: 0, aroundMs: 0 };
    rows.set(name, row);
    const frame: Frame = { row, t0: now(), nested: 0, kernel: 0 };
    stack.push(frame);
    try {
      return original.call(this, params);
    } finally {
      stack.pop();
      const total = now() - frame.t0;
      row.calls++;
      row.kernelMs += frame.kernel;
      row.aroundMs += total - frame.nested - frame.kernel;
      if (stack.length > 0) stack[stack.length - 1].nested += total;
    }
  };
  const configs = tf.getKernelsForBackend(tf.getBackend());
  const kernelFuncs = configs.map((c) => c.kernelFunc);
  for (const c of configs) {
    const f = c.kernelFunc;
    (c as { kernelFunc: tf.KernelFunc }).kernelFunc = (args) => {
      if (kernelDepth > 0 || stack.length === 0) return f(args);
      kernelDepth++;
      const t0 = now();
      try {
        return f(args);
      } finally {
        kernelDepth--;
        stack[stack.length - 1].kernel += now() - t0;
      }
    };
  }
  const t0 = now();
  try {
    await fn();
  } finally {
    if (ownProperty) engine.runKernelFunc = original;
    else delete (engine as Partial<EngineLike>).runKernelFunc; // back to the prototype's
    configs.forEach((c, i) => ((c as { kernelFunc: tf.KernelFunc }).kernelFunc = kernelFuncs[i]));
  }
  const wallMs = now() - t0;
  const list = [...rows.values()].sort((a, b) => b.kernelMs + b.aroundMs - (a.kernelMs + a.aroundMs));
  const kernelMs = list.reduce((s, r) => s + r.kernelMs, 0);
  const aroundMs = list.reduce((s, r) => s + r.aroundMs, 0);
  return { wallMs, kernelMs, aroundMs, outsideMs: wallMs - kernelMs - aroundMs, calls: list.reduce((s, r) => s + r.calls, 0), rows: list };
}

/** Adds `b` into `a` (several profiled steps), returning `a`. */
export function addTimings(a: OpTiming, b: OpTiming): OpTiming {
  const rows = new Map(a.rows.map((r) => [r.name, { ...r }]));
  for (const r of b.rows) {
    const x = rows.get(r.name) ?? { name: r.name, calls: 0, kernelMs: 0, aroundMs: 0 };
    x.calls += r.calls;
    x.kernelMs += r.kernelMs;
    x.aroundMs += r.aroundMs;
    rows.set(r.name, x);
  }
  return {
    wallMs: a.wallMs + b.wallMs,
    kernelMs: a.kernelMs + b.kernelMs,
    aroundMs: a.aroundMs + b.aroundMs,
    outsideMs: a.outsideMs + b.outsideMs,
    calls: a.calls + b.calls,
    rows: [...rows.values()].sort((p, q) => q.kernelMs + q.aroundMs - (p.kernelMs + p.aroundMs)),
  };
}

/** `t` divided by `n` steps. */
export function perStep(t: OpTiming, n: number): OpTiming {
  return {
    wallMs: t.wallMs / n,
    kernelMs: t.kernelMs / n,
    aroundMs: t.aroundMs / n,
    outsideMs: t.outsideMs / n,
    calls: t.calls / n,
    rows: t.rows.map((r) => ({ name: r.name, calls: r.calls / n, kernelMs: r.kernelMs / n, aroundMs: r.aroundMs / n })),
  };
}

/** Rows of a `byShape` timing merged per op name. */
export function byOpName(t: OpTiming): OpTiming {
  const rows = new Map<string, OpRow>();
  for (const r of t.rows) {
    const name = r.name.split(' ')[0];
    const x = rows.get(name) ?? { name, calls: 0, kernelMs: 0, aroundMs: 0 };
    x.calls += r.calls;
    x.kernelMs += r.kernelMs;
    x.aroundMs += r.aroundMs;
    rows.set(name, x);
  }
  return { ...t, rows: [...rows.values()].sort((p, q) => q.kernelMs + q.aroundMs - (p.kernelMs + p.aroundMs)) };
}
