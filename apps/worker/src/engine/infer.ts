/**
 * One inference inside the engine: the model of a completed train job or registered version (from the LRU cache, else its
 * `model.safetensors`) or an inline state dict, one forward pass over `inputs [B, T, I]` from the
 * optional initial state, and the outputs and final state as nested arrays. Every tensor made here
 * is disposed before returning; cached models stay until evicted.
 */
import { SequenceModel } from '@relu-lstm/lstm';
import { ARTIFACTS, inlineModelOf } from '@relu-lstm/jobs';
import { toJobError } from './errors';
import { forwardArrays } from './forward';
import { loadModel, modelGone, sequenceModelOptions, type ModelCache } from './models';
import type { InferRequest, TerminalMessage } from './protocol';
import { inferOutputs } from './result-spill';
import type { EngineContext } from './train';

export async function runInfer(req: InferRequest, ctx: EngineContext, cache: ModelCache): Promise<TerminalMessage> {
  const p = req.payload;
  let model: SequenceModel | null = null;
  let owned = false;
  try {
    if (req.modelSource !== null) {
      const source = req.modelSource;
      const info = (await ctx.artifacts.list(source.storeId)).find((a) => a.name === ARTIFACTS.model);
      if (!info) throw modelGone(source);
      const key = `${source.storeId}@${info.size}:${info.modifiedAt}`;
      ({ model, owned } = await loadModel({ cache, artifacts: ctx.artifacts, source, key }));
    } else {
      const inline = inlineModelOf(p)!;
      model = new SequenceModel(sequenceModelOptions(inline.config, 0));
      owned = true;
      model.loadStateDict(inline.stateDict);
    }
    const result = await forwardArrays(model, p, inferOutputs);
    return { kind: 'inferred', runId: req.runId, result };
  } catch (e) {
    return { kind: 'failed', runId: req.runId, error: toJobError(e) };
  } finally {
    if (owned) model?.dispose();
  }
}
