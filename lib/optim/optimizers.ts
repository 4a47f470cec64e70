import * as tf from '@tensorflow/tfjs';

/**
 * The optimisers and schedules of the paper's tables, written out so that their state has
 * stable names in checkpoints and their weight decay follows PyTorch (L2 added to the gradient,
 * before momentum / Adam moments), which tfjs's built-in optimisers do not offer.
 */
export type NamedVariables = Array<[string, tf.Variable]>;

/** One learning rate for every parameter, or one per parameter state name (see `fixedRateParams`). */
export type LearningRates = number | ((param: string) => number);

export interface Optimizer {
  /** Applies one update with learning rate `lr`; `grads` maps tfjs variable names to gradients. */
  step(grads: tf.NamedTensorMap, lr: LearningRates): void;
  /** Slot tensors with stable names (for checkpoints). */
  namedState(): Array<[string, tf.Tensor]>;
  /** The scalar state (e.g. Adam's step count). */
  scalars(): Record<string, number>;
  loadScalars(s: Record<string, number>): void;
  dispose(): void;
}

export interface SgdOptions {
  momentum: number;
  weightDecay: number;
  nesterov?: boolean;
}

/** torch.optim.SGD: v ← μ·v + (g + wd·w); w ← w − lr·v (or Nesterov's g + μ·v). */
export class Sgd implements Optimizer {
  private readonly velocity = new Map<string, tf.Variable>();

  constructor(private readonly vars: NamedVariables, readonly opts: SgdOptions) {
    checkNonNegative('momentum', opts.momentum);
    checkNonNegative('weightDecay', opts.weightDecay);
    for (const [name, v] of vars) this.velocity.set(name, zeroSlot(v));
  }

  step(grads: tf.NamedTensorMap, lr: LearningRates): void {
    const { momentum, weightDecay, nesterov } = this.opts;
    const lrOf = rateOf(lr);
    tf.tidy(() => {
      for (const [name, w] of this.vars) {
        const g0 = grads[w.name];
        if (!g0) continue; // a parameter outside this step's graph (e.g. an unused head)
        const g = weightDecay > 0 ? tf.add(g0, tf.mul(w, weightDecay)) : g0;
        const vel = this.velocity.get(name)!;
        const v = tf.add(tf.mul(vel, momentum), g);
        vel.assign(v);
        const update = nesterov ? tf.add(g, tf.mul(v, momentum)) : v;
        w.assign(tf.sub(w, tf.mul(update, lrOf(name))));
      }
    });
  }

  namedState(): Array<[string, tf.Tensor]> {
    return [...this.velocity].map(([n, v]) => [`velocity.${n}`, v]);
  }

  scalars(): Record<string, number> {
    return {};
  }

  loadScalars(): void {}

  dispose(): void {
    for (const v of this.velocity.values()) v.dispose();
  }
}

export interface AdamOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  /** L2 penalty added to the gradient, as torch.optim.Adam's weight_decay. */
  weightDecay: number;
}

/** torch.optim.Adam with L2 weight decay and bias correction. */
export class Adam implements Optimizer {
  private readonly m = new Map<string, tf.Variable>();
  private readonly v = new Map<string, tf.Variable>();
  private t = 0;

  constructor(private readonly vars: NamedVariables, readonly opts: AdamOptions) {
    checkNonNegative('weightDecay', opts.weightDecay);
    for (const [name, w] of vars) {
      this.m.set(name, zeroSlot(w));
      this.v.set(name, zeroSlot(w));
    }
  }

  step(grads: tf.NamedTensorMap, lr: LearningRates): void {
    const lrOf = rateOf(lr);
    const b1 = this.opts.beta1 ?? 0.9;
    const b2 = this.opts.beta2 ?? 0.999;
    const eps = this.opts.eps ?? 1e-8;
    this.t += 1;
    const c1 = 1 - b1 ** this.t;
    const c2 = 1 - b2 ** this.t;
    tf.tidy(() => {
      for (const [name, w] of this.vars) {
        const g0 = grads[w.name];
        if (!g0) continue;
        const g = this.opts.weightDecay > 0 ? tf.add(g0, tf.mul(w, this.opts.weightDecay)) : g0;
        const m = this.m.get(name)!;
        const v = this.v.get(name)!;
        m.assign(tf.add(tf.mul(m, b1), tf.mul(g, 1 - b1)));
        v.assign(tf.add(tf.mul(v, b2), tf.mul(tf.square(g), 1 - b2)));
        const denom = tf.add(tf.sqrt(tf.div(v, c2)), eps);
        w.assign(tf.sub(w, tf.mul(tf.div(m, denom), lrOf(name) / c1)));
      }
    });
  }

  namedState(): Array<[string, tf.Tensor]> {
    return [...[...this.m].map(([n, t]) => [`m.${n}`, t] as [string, tf.Tensor]), ...[...this.v].map(([n, t]) => [`v.${n}`, t] as [string, tf.Tensor])];
  }

  scalars(): Record<string, number> {
    return { t: this.t };
  }

  loadScalars(s: Record<string, number>): void {
    this.t = s.t ?? 0;
  }

  dispose(): void {
    for (const t of [...this.m.values(), ...this.v.values()]) t.dispose();
  }
}

export type OptimizerConfig =
  | ({ kind: 'sgd'; lr: number } & SgdOptions)
  | ({ kind: 'adam'; lr: number } & AdamOptions);

export function makeOptimizer(cfg: OptimizerConfig, vars: NamedVariables): Optimizer {
  if (!(cfg.lr > 0)) throw new Error(`optimizer: lr must be > 0, got ${cfg.lr}`);
  if (cfg.kind === 'sgd') return new Sgd(vars, cfg);
  if (cfg.kind === 'adam') return new Adam(vars, cfg);
  throw new Error(`optimizer: kind must be 'sgd' or 'adam', got ${JSON.stringify((cfg as { kind: unknown }).kind)}`);
}

/** Learning-rate schedules as pure functions of progress. */
export type ScheduleConfig = (
  | { kind: 'constant' }
  /** Cosine decay to 0 over the run, after `warmupEpochs` of linear warm-up. */
  | { kind: 'cosine'; warmupEpochs?: number }
  /** Multiply by `gamma` (0.1) at each milestone epoch, as torch's MultiStepLR. */
  | { kind: 'step'; milestones: number[]; gamma?: number; warmupEpochs?: number }
) & {
  /**
   * Modules (top-level names such as 'predictor') that keep the base rate for the whole run: no
   * warm-up, no decay. SimSiam's predictor, as its authors train it (`--fix-pred-lr`).
   */
  fixedLrModules?: string[];
};

/**
 * The parameters (state names, 'module.…') that `schedule.fixedLrModules` exempts from the
 * schedule; a module that owns none of `params` is an error naming it and the modules there are.
 */
export function fixedRateParams(schedule: ScheduleConfig, params: readonly string[]): Set<string> {
  const modules = schedule.fixedLrModules ?? [];
  const owners = [...new Set(params.map((p) => p.split('.')[0]))];
  for (const m of modules) {
    if (!owners.includes(m)) throw new Error(`schedule.fixedLrModules: '${m}' is not a trainable module here; expected one of ${owners.join(', ')}`);
  }
  return new Set(params.filter((p) => modules.includes(p.split('.')[0])));
}

/** Per-parameter rates: `scheduled` for most, `base` for the parameters in `fixed`. */
export function learningRates(scheduled: number, base: number, fixed: ReadonlySet<string>): LearningRates {
  return fixed.size === 0 ? scheduled : (param) => (fixed.has(param) ? base : scheduled);
}

/** Learning rate at `epoch` (fractional: epoch + step/stepsPerEpoch) of `epochs`. */
export function learningRate(base: number, schedule: ScheduleConfig, epoch: number, epochs: number): number {
  const warmup = schedule.kind === 'constant' ? 0 : schedule.warmupEpochs ?? 0;
  if (warmup > 0 && epoch < warmup) return (base * (epoch + 1e-9)) / warmup;
  switch (schedule.kind) {
    case 'constant':
      return base;
    case 'cosine': {
      const progress = Math.min(1, (epoch - warmup) / Math.max(1e-9, epochs - warmup));
      return base * 0.5 * (1 + Math.cos(Math.PI * progress));
    }
    case 'step': {
      const passed = schedule.milestones.filter((m) => epoch >= m).length;
      return base * (schedule.gamma ?? 0.1) ** passed;
    }
  }
}

/** EMA of online into target parameters: target ← m·target + (1 − m)·online. */
export function emaUpdate(target: NamedVariables, online: NamedVariables, m: number): void {
  if (target.length !== online.length) throw new Error(`emaUpdate: ${target.length} target vs ${online.length} online parameters`);
  tf.tidy(() => {
    target.forEach(([name, t], i) => {
      const [oname, o] = online[i];
      if (name !== oname) throw new Error(`emaUpdate: parameter ${i} is "${name}" in the target but "${oname}" online`);
      t.assign(tf.add(tf.mul(t, m), tf.mul(o, 1 - m)));
    });
  });
}

/** BYOL's target decay, increased from base to 1 with a cosine over training. */
export function byolMomentum(base: number, step: number, totalSteps: number): number {
  return 1 - (1 - base) * (Math.cos((Math.PI * step) / Math.max(1, totalSteps)) + 1) / 2;
}

function rateOf(lr: LearningRates): (param: string) => number {
  return typeof lr === 'number' ? () => lr : lr;
}

/** A zero-initialised optimiser slot (the tidy frees the temporary zeros; variables survive it). */
function zeroSlot(like: tf.Variable): tf.Variable {
  return tf.tidy(() => tf.variable(tf.zerosLike(like), false));
}

function checkNonNegative(name: string, v: number): void {
  if (!(v >= 0)) throw new Error(`optimizer: ${name} must be ≥ 0, got ${v}`);
}
