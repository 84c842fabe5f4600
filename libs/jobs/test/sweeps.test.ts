/** Expanding a sweep's search into trials, and ranking them (pure logic). */
import {
  MAX_SWEEP_TRIALS,
  SweepRequestSchema,
  SweepSizeError,
  expandTrials,
  medianStops,
  rankTrials,
  withParams,
} from '@relu-lstm/jobs';

const base = { model: { hiddenSize: 4 }, training: { epochs: 1 } };

describe('expandTrials', () => {
  it('a grid is the cartesian product of its values, each set at its dotted path', () => {
    const trials = expandTrials({
      base,
      search: { grid: { 'training.learningRate': [0.1, 0.2], 'model.hiddenSize': [8, 16, 32] } },
    });
    expect(trials).toHaveLength(6);
    expect(trials[5].spec).toEqual({ model: { hiddenSize: 32 }, training: { epochs: 1, learningRate: 0.2 } });
    expect(new Set(trials.map((t) => JSON.stringify(t.params))).size).toBe(6);
    expect(base.model.hiddenSize).toBe(4); // the base is not touched
  });

  it(`refuses a grid past ${MAX_SWEEP_TRIALS} trials`, () => {
    const values = Array.from({ length: 11 }, (_, i) => i + 1);
    expect(() => expandTrials({ base, search: { grid: { a: values, b: values } } })).toThrow(SweepSizeError);
  });

  it('random search: the same seed gives the same trials, within the space', () => {
    const req = SweepRequestSchema.parse({
      base,
      maxConcurrent: 2,
      search: {
        random: {
          seed: 7,
          trials: 20,
          space: { learningRate: { min: 1e-4, max: 1e-1, log: true }, hiddenSize: [8, 16], optimizer: ['adam', 'sgd'] },
        },
      },
    });
    const a = expandTrials(req);
    expect(expandTrials(req)).toEqual(a);
    expect(a).toHaveLength(20);
    for (const t of a) {
      const lr = t.params['training.learningRate'] as number;
      expect(lr).toBeGreaterThanOrEqual(1e-4);
      expect(lr).toBeLessThanOrEqual(1e-1);
      expect([8, 16]).toContain(t.params['model.hiddenSize']);
      expect(['adam', 'sgd']).toContain(t.params['training.optimizer']);
    }
    if (!('random' in req.search)) throw new Error('expected a random search');
    const other = expandTrials({ ...req, search: { random: { ...req.search.random, seed: 8 } } });
    expect(other).not.toEqual(a);
  });

  it('withParams creates the objects on a path', () => {
    expect(withParams({}, { 'a.b.c': 1 })).toEqual({ a: { b: { c: 1 } } });
  });
});

describe('rankTrials', () => {
  it('ranks completed trials by the metric, best first; the others follow unranked', () => {
    const ranked = rankTrials(
      [
        { id: 'a', params: {}, state: 'completed', result: { finalValLoss: 0.5, epochs: 2 } },
        { id: 'b', params: {}, state: 'failed' },
        { id: 'c', params: {}, state: 'completed', result: { finalValLoss: 0.1, epochs: 2 } },
        { id: 'd', params: {}, state: 'completed', result: { finalValLoss: null } },
      ],
      'valLoss',
    );
    expect(ranked.map((t) => [t.id, t.rank])).toEqual([
      ['c', 1],
      ['a', 2],
      ['b', null],
      ['d', null],
    ]);
  });

  it('the median rule stops a trial worse than the median of those before it, once enough reported', () => {
    expect(medianStops(3, [1, 2], { afterEpochs: 1, minTrials: 2 })).toBe(true);
    expect(medianStops(1, [1, 2], { afterEpochs: 1, minTrials: 2 })).toBe(false);
    expect(medianStops(9, [1], { afterEpochs: 1, minTrials: 2 })).toBe(false);
  });
});
