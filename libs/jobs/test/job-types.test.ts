/**
 * The job-type table: the envelope schema the worker parses every job with is built from it, one
 * member per type, each with its own payload schema.
 */
import {
  CANONICAL_TRAIN_EXAMPLE,
  DEFAULT_LIMITS,
  JOB_TYPES,
  contract,
  unknownJobType,
  validateJobData,
} from '@relu-lstm/jobs';

const inferPayload = { modelJobId: '00000000-0000-4000-8000-000000000000', inputs: [[[0.5]]] };

describe('validateJobData', () => {
  it('accepts each type with its own payload, defaults filled', () => {
    const train = validateJobData({
      limits: DEFAULT_LIMITS,
      type: 'train',
      tenant: 't',
      payload: CANONICAL_TRAIN_EXAMPLE,
    });
    expect(train.ok && train.value.type === 'train' && train.value.payload.training.progressEvery).toBeGreaterThan(0);
    const infer = validateJobData({
      limits: DEFAULT_LIMITS,
      type: 'infer',
      tenant: 't',
      payload: contract.InferPayload.parse(inferPayload),
    });
    expect(infer.ok).toBe(true);
  });

  it("refuses a payload under another type's name, and a type not in JOB_TYPES", () => {
    expect(
      validateJobData({ limits: DEFAULT_LIMITS, type: 'infer', tenant: 't', payload: CANONICAL_TRAIN_EXAMPLE }).ok,
    ).toBe(false);
    expect(validateJobData({ limits: DEFAULT_LIMITS, type: 'train', tenant: 't', payload: inferPayload }).ok).toBe(
      false,
    );
    const unknown = validateJobData({ limits: DEFAULT_LIMITS, type: 'predict', tenant: 't', payload: inferPayload });
    expect(unknown.ok).toBe(false);
    expect(unknown.ok ? null : unknown.issues[0]).toMatchObject({ path: 'type' });
    expect(JOB_TYPES).not.toContain('predict');
  });
});

describe('unknownJobType', () => {
  it('names the value a switch over job types did not handle', () => {
    expect(() => unknownJobType('predict' as never)).toThrow('unknown job type "predict"');
  });
});
