import * as tf from '@tensorflow/tfjs-core';
import { LstmConfigError } from './errors';
import { FUSED_BACKENDS } from './fused-cell';
import { WGSL_BACKENDS } from './wgsl-cell';

/**
 * Which time loop the LSTM runs (see lstm-direction.ts):
 *   'fused'   library-owned kernels: on cpu and wasm one kernel per step for the gate math
 *             (fused-cell.ts) plus tfjs's matrix product; on webgpu one WGSL dispatch per step, recurrent
 *             product included (wgsl-cell.ts, wgsl-direction.ts).
 *   'generic' tfjs ops only (about 10 kernels per step forward, 16 per training step), which every
 *             backend has: what tfjs-node / tfjs-node-gpu and webgl run.
 */
export type LstmKernelPath = 'fused' | 'generic';
export type LstmKernelPathChoice = 'auto' | 'generic';

let choice: LstmKernelPathChoice = 'auto';

const FUSED: readonly string[] = [...FUSED_BACKENDS, ...WGSL_BACKENDS];

/**
 * 'generic' forces the generic-ops loop on every backend, so it can be tested and benchmarked (and its
 * kernels counted) on a CPU host; 'auto' (the default) takes the fused kernels where they exist.
 */
export function setLstmKernelPath(next: LstmKernelPathChoice): void {
  if (next !== 'auto' && next !== 'generic') throw new LstmConfigError('kernelPath', "'auto' or 'generic'", next);
  choice = next;
}

/** The loop the LSTM runs on `backend` (default: the active one) under the current choice. */
export function lstmKernelPath(backend: string = tf.getBackend()): LstmKernelPath {
  return choice === 'auto' && FUSED.includes(backend) ? 'fused' : 'generic';
}
