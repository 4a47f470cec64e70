import * as tf from '@tensorflow/tfjs';
import { FUSED_ADAM_UPDATE, FUSED_SGD_UPDATE, adamUpdate, hasFusedUpdate, sgdUpdate } from '../backend/fused-update-op';

/**
 * The optimisers of the paper's tables, written out so that their state has
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

/** Parameters sharing one base learning rate (torch.optim's param_groups). */
export interface ParamGroup {
  params: tf.Variable[];
  lr: number;
}

/**
 * torch.optim.SGD: v ← μ·v + (g + wd·w); w ← w − lr·v (or Nesterov's g + μ·v), no dampening.
 * Built on named variables (the trainer passes each step its rates) or, as torch's, on parameter
 * groups with a base rate each, scaled by `lrFactor` when a step is given no rate (the
 * evaluators' step schedule sets it). Defaults: momentum 0.9, no weight decay.
 */
export class Sgd implements Optimizer {
  readonly momentum: number;
  readonly weightDecay: number;
  readonly nesterov: boolean;
  /** Multiplies every group's base rate in a step given no rate. */
  lrFactor = 1;
  private readonly vars: NamedVariables;
  /** Base rate of each state name, for parameter groups. */
  private readonly baseRate = new Map<string, number>();
  private readonly velocity = new Map<string, tf.Variable>();

  constructor(params: NamedVariables | ParamGroup[], opts: Partial<SgdOptions> = {}) {
    this.momentum = opts.momentum ?? 0.9;
    this.weightDecay = opts.weightDecay ?? 0;
    this.nesterov = opts.nesterov ?? false;
    checkNonNegative('momentum', this.momentum);
    checkNonNegative('weightDecay', this.weightDecay);
    this.vars = isNamed(params) ? [...params] : this.fromGroups(params);
    for (const [name, v] of this.vars) this.velocity.set(name, zeroSlot(v));
  }

  private fromGroups(groups: ParamGroup[]): NamedVariables {
    const vars: NamedVariables = [];
    groups.forEach((g, i) => {
      checkNonNegative(`groups[${i}].lr`, g.lr);
      for (const p of g.params) {
        if (this.baseRate.has(p.name)) throw new Error(`optimizer: variable ${p.name} is in two parameter groups`);
        this.baseRate.set(p.name, g.lr);
        vars.push([p.name, p]);
      }
    });
    return vars;
  }

  /** Every variable, in order (the varList for tf.variableGrads). */
  variables(): tf.Variable[] {
    return this.vars.map(([, v]) => v);
  }

  /** One update; `lr` defaults to each group's base rate × `lrFactor`. Does not dispose `grads`. */
  step(grads: tf.NamedTensorMap, lr?: LearningRates): void {
    if (lr === undefined && this.baseRate.size === 0) throw new Error('optimizer: Sgd.step needs a learning rate when built without parameter groups');
    const lrOf = lr === undefined ? (name: string) => this.baseRate.get(name)! * this.lrFactor : rateOf(lr);
    const { momentum, weightDecay, nesterov } = this;
    // A parameter outside this step's graph (e.g. an unused head) has no gradient: not updated.
    const live = this.vars.filter(([, w]) => grads[w.name]);
    tf.tidy(() => {
      if (hasFusedUpdate(FUSED_SGD_UPDATE)) {
        // One kernel call for every parameter (the backend may batch them into few dispatches).
        const out = sgdUpdate(live.map(([name, w]) => ({ w, g: grads[w.name], v: this.velocity.get(name)!, lr: lrOf(name) })), { momentum, weightDecay, nesterov });
        live.forEach(([name, w], k) => {
          this.velocity.get(name)!.assign(out[k].v);
          w.assign(out[k].w);
        });
        return;
      }
      for (const [name, w] of live) {
        const g0 = grads[w.name];
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
    const live = this.vars.filter(([, w]) => grads[w.name]);
    tf.tidy(() => {
      if (hasFusedUpdate(FUSED_ADAM_UPDATE)) {
        const out = adamUpdate(
          live.map(([name, w]) => ({ w, g: grads[w.name], m: this.m.get(name)!, v: this.v.get(name)!, lr: lrOf(name) })),
          { beta1: b1, beta2: b2, eps, weightDecay: this.opts.weightDecay, step: this.t },
        );
        live.forEach(([name, w], k) => {
          this.m.get(name)!.assign(out[k].m);
          this.v.get(name)!.assign(out[k].v);
          w.assign(out[k].w);
        });
        return;
      }
      for (const [name, w] of live) {
        const g0 = grads[w.name];
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

function isNamed(params: NamedVariables | ParamGroup[]): params is NamedVariables {
  return (params as unknown[]).every((p) => Array.isArray(p));
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
