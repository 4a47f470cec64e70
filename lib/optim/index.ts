/**
 * Optimisers (SGD, Adam with PyTorch's semantics), learning-rate schedules and the target
 * networks' EMA: what training and evaluation both step parameters with.
 */
export { Sgd, Adam, makeOptimizer } from './optimizers';
export type { Optimizer, NamedVariables, LearningRates, SgdOptions, ParamGroup, AdamOptions, OptimizerConfig } from './optimizers';
export { learningRate, learningRates, fixedRateParams, stepFactor } from './schedule';
export type { ScheduleConfig } from './schedule';
export { emaUpdate, byolTargetMomentum } from './ema';
