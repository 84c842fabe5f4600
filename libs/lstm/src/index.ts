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
export type { LstmState, ForwardOptions, ForwardResult } from './relu-lstm';
export * from './backend';
export * from './safetensors';
export * from './keras-weights';
