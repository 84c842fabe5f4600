import * as tf from '@tensorflow/tfjs-core';
import { LstmConfigError } from './errors';
import { FUSED_BACKENDS } from './fused-cell';

/**
 * Which time loop the LSTM runs (see lstm-direction.ts):
 *   'fused'   one library-owned kernel per step for the gate math (fused-cell.ts), plus tfjs's matrix
 *             product; only on the backends it is registered for (cpu, wasm).
 *   'generic' tfjs ops only (about 10 kernels per step forward, 16 per training step), which every
 *             backend has: what tfjs-node / tfjs-node-gpu and webgl run.
 */
export type LstmKernelPath = 'fused' | 'generic';
export type LstmKernelPathChoice = 'auto' | 'generic';

let choice: LstmKernelPathChoice = 'auto';

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
  return choice === 'auto' && (FUSED_BACKENDS as readonly string[]).includes(backend) ? 'fused' : 'generic';
}
