/**
 * One inference inside the engine: the model of a completed train job or registered version (from the LRU cache, else its
 * `model.safetensors`) or an inline state dict, one forward pass over `inputs [B, T, I]` from the
 * optional initial state, and the outputs and final state as nested arrays. Every tensor made here
 * is disposed before returning; cached models stay until evicted.
 */
import { SequenceModel } from '@relu-lstm/lstm';
import { ARTIFACTS, inlineModelOf } from '@relu-lstm/jobs';
import * as tf from '@tensorflow/tfjs-core';
import { toJobError } from './errors';
import { ModelCache, modelFromStored, modelGone, readStoredModel, sequenceModelOptions } from './models';
import type { InferRequest, TerminalMessage } from './protocol';
import { inferOutputs } from './result-spill';
import type { EngineContext } from './train';

export async function runInfer(req: InferRequest, ctx: EngineContext, cache: ModelCache): Promise<TerminalMessage> {
  const p = req.payload;
  let model: SequenceModel | null = null;
  let owned = false;
  const tensors: tf.Tensor[] = [];
  try {
    if (req.modelSource !== null) {
      const id = req.modelSource.storeId;
      const info = (await ctx.artifacts.list(id)).find((a) => a.name === ARTIFACTS.model);
      if (!info) throw modelGone(req.modelSource);
      const key = `${id}@${info.size}:${info.modifiedAt}`;
      model = cache.get(key) ?? null;
      if (model === null) {
        const stored = await readStoredModel(ctx.artifacts, req.modelSource);
        try {
          model = modelFromStored(stored);
        } finally {
          tf.dispose(Object.values(stored.stateDict));
        }
        owned = !cache.put(key, model);
      }
    } else {
      const inline = inlineModelOf(p)!;
      model = new SequenceModel(sequenceModelOptions(inline.config, 0));
      owned = true;
      model.loadStateDict(inline.stateDict);
    }

    const x = tf.tensor3d(p.inputs, undefined, 'float32');
    tensors.push(x);
    // `[L*D, B or 1, H]`; the LSTM broadcasts a batch-1 state itself.
    let state: { h0: tf.Tensor3D; c0: tf.Tensor3D } | undefined;
    if (p.initialState) {
      state = {
        h0: tf.tensor3d(p.initialState.h0, undefined, 'float32'),
        c0: tf.tensor3d(p.initialState.c0, undefined, 'float32'),
      };
      tensors.push(state.h0, state.c0);
    }
    const out = model.predict(x, state, p.lengths ? { lengths: p.lengths } : {});
    tensors.push(out.y, out.hN, out.cN);
    const y = out.y.rank === 2 ? tf.expandDims(out.y, 1) : out.y;
    if (y !== out.y) tensors.push(y);
    const [outputs, hN, cN] = await Promise.all([inferOutputs(y as tf.Tensor3D), out.hN.array(), out.cN.array()]);
    return { kind: 'inferred', runId: req.runId, result: { outputs, hN, cN } };
  } catch (e) {
    return { kind: 'failed', runId: req.runId, error: toJobError(e) };
  } finally {
    tf.dispose(tensors);
    if (owned) model?.dispose();
  }
}
