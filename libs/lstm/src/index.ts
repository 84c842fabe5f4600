/**
 * @relu-lstm/lstm: a ReLU-LSTM (LSTM with configurable activations) for TensorFlow.js.
 * Gate order (i, f, g, o) and shapes as in torch.nn.LSTM.
 */
export * from './errors';
export * from './config';
export * from './rng';
export * from './tensor-like';
export * from './activations';
export { ReluLstm } from './relu-lstm';
export { setLstmKernelPath, lstmKernelPath } from './kernel-path';
export type { LstmKernelPath, LstmKernelPathChoice } from './kernel-path';
export type { LstmState, ForwardOptions, ForwardResult } from './relu-lstm';
export * from './backend';
export { probeWebgpu, type WebgpuAdapter, type WebgpuProbe } from './webgpu';
export * from './safetensors';
export * from './keras-weights';
export * from './layers-export';
// The model configuration (names, rules, option types; also `@relu-lstm/lstm/config`, without tfjs) is config.ts.
// Training: sequence model (LSTM + linear head), losses, optimizers, clipping, fit, resumable state.
export { SequenceModel, HEAD_WEIGHT, HEAD_BIAS } from './sequence-model';
export type { PredictResult } from './sequence-model';
export { computeLoss, validateTargets, oneHot } from './losses';
export {
  resolveOptimizerConfig,
  createOptimizer,
  disposeOptimizer,
  readOptimizerSlots,
  writeOptimizerSlots,
} from './optimizers';
export type { OptimizerConfig, ResolvedOptimizerConfig, OptimizerSlot, OptimizerSlots } from './optimizers';
export { globalNorm, clipByGlobalNorm } from './clip';
export type { ClipResult } from './clip';
export { fit } from './fit';
export type { FitOptions, FitProgress, FitResult } from './fit';
export type { FitData, DataArray, NestedArray } from './dataset';
export {
  restoreModel,
  trainingStateToJSON,
  trainingStateFromJSON,
  encodeTrainingState,
  decodeTrainingState,
} from './training-state';
export type {
  TrainingState,
  TrainingStateJSON,
  StoredTensor,
  StoredTensorJSON,
  FitSettings,
  FitPosition,
  EpochRecord,
} from './training-state';
export { sineForecast, addingProblem, toNestedArray } from './synthetic';
export type { ShapedArray, SyntheticDataset, SineForecastOptions, AddingProblemOptions } from './synthetic';
