import type { LearningRates } from './optimizers';

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
    case 'step':
      return base * stepFactor(epoch, schedule.milestones, schedule.gamma ?? 0.1);
  }
}

/** Learning-rate factor at `epoch` of a step schedule: `gamma` per milestone passed (torch's MultiStepLR). */
export function stepFactor(epoch: number, milestones: readonly number[], gamma: number): number {
  let f = 1;
  for (const m of milestones) if (epoch >= m) f *= gamma;
  return f;
}
