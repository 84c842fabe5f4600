import {
  CANONICAL_TRAIN_EXAMPLE,
  contract,
  makeContract,
  DEFAULT_LIMITS,
  validate,
  type ValidationIssue,
} from '@relu-lstm/jobs';

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T;
type Body = Record<string, any>;
const canonical = (): Body => clone(CANONICAL_TRAIN_EXAMPLE) as Body;

function issuesOf(schema: { safeParse: unknown }, body: unknown): ValidationIssue[] {
  const r = validate(schema as never, body);
  if (r.ok) throw new Error('expected validation to fail');
  return r.issues;
}
const at = (issues: ValidationIssue[], path: string) => issues.find((i) => i.path === path);

describe('train payload', () => {
  test('the canonical example validates and gets its defaults', () => {
    const r = validate(contract.TrainPayload, CANONICAL_TRAIN_EXAMPLE);
    if (!r.ok) throw new Error(JSON.stringify(r.issues));
    expect(r.value.model).toEqual({
      inputSize: 1,
      hiddenSize: 16,
      numLayers: 1,
      bias: true,
      dropout: 0,
      bidirectional: false,
      activation: 'relu',
      recurrentActivation: 'sigmoid',
      forgetBias: false,
      orthogonalRecurrent: false,
      outputSize: 1,
      head: 'manyToMany',
    });
    expect(r.value.training).toMatchObject({
      epochs: 3,
      batchSize: 32,
      optimizer: 'adam',
      loss: 'mse',
      validationSplit: 0,
      progressEvery: 10,
      checkpointEvery: 1,
    });
    expect(r.value.device).toBe('any');
  });

  test('a wrong type names the field, the expected type and what came', () => {
    const b = canonical();
    b.training.epochs = 'three';
    const i = at(issuesOf(contract.TrainPayload, b), 'training.epochs');
    expect(i).toMatchObject({ code: 'invalid_type', expected: 'number', received: '"three"' });
  });

  test('a missing required field is reported as missing', () => {
    const b = canonical();
    delete b.model.hiddenSize;
    expect(at(issuesOf(contract.TrainPayload, b), 'model.hiddenSize')).toMatchObject({
      expected: 'number',
      received: 'undefined (missing)',
    });
  });

  test('unknown fields are rejected at every level (no mass assignment)', () => {
    const b = canonical();
    b.attempts = 10;
    b.training.priority = 1;
    b.data.synthetic.noise = 0.1;
    const issues = issuesOf(contract.TrainPayload, b);
    for (const p of ['attempts', 'training.priority', 'data.synthetic.noise']) {
      expect(at(issues, p)).toMatchObject({ code: 'unrecognized_keys' });
    }
  });

  test('bounds: positive integers, enums, ranges', () => {
    const b = canonical();
    b.model.hiddenSize = 0;
    b.model.numLayers = 1.5;
    b.model.activation = 'gelu';
    b.training.learningRate = -1;
    b.training.validationSplit = 1;
    b.device = 'tpu';
    const issues = issuesOf(contract.TrainPayload, b);
    expect(at(issues, 'model.hiddenSize')).toMatchObject({ code: 'too_small', expected: '>= 1', received: '0' });
    expect(at(issues, 'model.numLayers')).toMatchObject({ code: 'invalid_type', expected: 'int' });
    expect(at(issues, 'model.activation')?.expected).toContain('"clippedRelu"');
    expect(at(issues, 'training.learningRate')).toMatchObject({ code: 'too_small', received: '-1' });
    expect(at(issues, 'training.validationSplit')).toMatchObject({ code: 'too_big', expected: '< 1', received: '1' });
    expect(at(issues, 'device')).toMatchObject({ code: 'invalid_value', received: '"tpu"' });
  });

  test('limits come from the factory', () => {
    const small = makeContract({ ...DEFAULT_LIMITS, maxHiddenSize: 8, maxEpochs: 2 });
    const issues = issuesOf(small.TrainPayload, CANONICAL_TRAIN_EXAMPLE);
    expect(at(issues, 'model.hiddenSize')).toMatchObject({ code: 'too_big', expected: '<= 8', received: '16' });
    expect(at(issues, 'training.epochs')).toMatchObject({ code: 'too_big', expected: '<= 2', received: '3' });
  });

  test('data needs exactly one source', () => {
    const b = canonical();
    b.data.datasetId = '0b7f5c43-5a43-4b8e-9d43-0d1c2b3a4f5e';
    expect(at(issuesOf(contract.TrainPayload, b), 'data')).toMatchObject({
      expected: 'exactly one of inline, datasetId, synthetic',
      received: 'datasetId and synthetic',
    });
    b.data = {};
    expect(at(issuesOf(contract.TrainPayload, b), 'data')?.received).toBe('none');
  });

  test('inline data: shapes are checked against the model', () => {
    const b = canonical();
    b.model = { inputSize: 2, hiddenSize: 4, outputSize: 1, head: 'lastStep' };
    b.data = {
      inline: {
        x: [
          [
            [1, 2],
            [3, 4],
          ],
          [
            [5, 6],
            [7, 8],
          ],
        ],
        y: [[1], [2]],
        lengths: [2, 1],
      },
    };
    expect(validate(contract.TrainPayload, b).ok).toBe(true);

    b.data.inline.x[1][1] = [7];
    expect(at(issuesOf(contract.TrainPayload, b), 'data.inline.x[1][1]')).toMatchObject({
      expected: 'an array of length 2',
      received: 'length 1',
    });

    b.data.inline.x[1][1] = [7, 8];
    b.data.inline.y = [
      [1, 2, 3],
      [4, 5, 6],
    ];
    expect(at(issuesOf(contract.TrainPayload, b), 'data.inline.y')).toMatchObject({
      expected: 'shape [2, 1]',
      received: 'shape [2, 3]',
    });

    b.model.head = 'manyToMany';
    b.data.inline.y = [
      [[1], [2]],
      [[3], [4]],
    ];
    b.data.inline.lengths = [2, 3];
    expect(at(issuesOf(contract.TrainPayload, b), 'data.inline.lengths[1]')).toMatchObject({ received: '3' });

    b.data.inline.lengths = [2, 2];
    b.model.inputSize = 3;
    expect(at(issuesOf(contract.TrainPayload, b), 'data.inline.x')).toMatchObject({
      expected: 'shape [N, T, 3]',
      received: 'shape [2, 2, 2]',
    });
  });

  test('non-finite numbers cannot be sent', () => {
    const b = canonical();
    b.model = { inputSize: 1, hiddenSize: 4, outputSize: 1 };
    b.data = { inline: { x: [[[1], [Infinity]]], y: [[[1], [2]]] } };
    expect(at(issuesOf(contract.TrainPayload, b), 'data.inline.x[0][1][0]')).toMatchObject({ code: 'invalid_type' });
  });

  test('cross-field rules', () => {
    const b = canonical();
    b.model.activation = 'clippedRelu';
    b.training.optimizer = 'adam';
    b.training.momentum = 0.9;
    b.training.loss = 'softmaxCrossEntropy';
    b.data = { synthetic: { kind: 'adding', samples: 10, seqLen: 5 } };
    b.fromJob = '0b7f5c43-5a43-4b8e-9d43-0d1c2b3a4f5e';
    b.initialState = { h0: [[[0]]], c0: [[[0]]] };
    const issues = issuesOf(contract.TrainPayload, b);
    expect(at(issues, 'model.cellClip')?.expected).toContain("required with activation 'clippedRelu'");
    expect(at(issues, 'training.momentum')).toBeDefined();
    expect(at(issues, 'model.outputSize')).toBeDefined();
    expect(at(issues, 'model.inputSize')).toMatchObject({ expected: "2 for synthetic 'adding' data", received: '1' });
    expect(at(issues, 'model.head')).toBeDefined();
    expect(at(issues, 'training.loss')).toBeDefined();
    expect(at(issues, 'initialState')).toMatchObject({ received: 'both' });
    expect(at(issues, 'initialState.h0')).toMatchObject({ expected: 'shape [1, 1, 16]' });
  });

  test('stateInput is checked against inputSize', () => {
    const b = canonical();
    b.stateInput = { inputs: [[[1, 2]]], description: 'probe' };
    expect(at(issuesOf(contract.TrainPayload, b), 'stateInput.inputs')).toMatchObject({ expected: 'shape [B, T, 1]' });
    b.stateInput.inputs = [[[1], [2]]];
    expect(validate(contract.TrainPayload, b).ok).toBe(true);
  });
});

describe('infer payload', () => {
  const id = '0b7f5c43-5a43-4b8e-9d43-0d1c2b3a4f5e';

  test("the issue's example validates", () => {
    const r = validate(contract.InferPayload, { modelJobId: id, inputs: [[[0.1], [0.2], [0.3]]] });
    expect(r.ok && r.value.device).toBe('any');
  });

  test('needs exactly one of modelJobId and model', () => {
    expect(at(issuesOf(contract.InferPayload, { inputs: [[[1]]] }), '')).toMatchObject({
      expected: 'exactly one of modelJobId, model',
      received: 'none',
    });
  });

  test('modelJobId must be a UUID', () => {
    expect(
      at(issuesOf(contract.InferPayload, { modelJobId: '../../etc', inputs: [[[1]]] }), 'modelJobId'),
    ).toMatchObject({ code: 'invalid_format', expected: 'a uuid' });
  });

  test('inline model: names, input and state shapes', () => {
    const body: Body = {
      model: {
        config: { inputSize: 1, hiddenSize: 2, numLayers: 2, outputSize: 1 },
        stateDict: { weight_ih_l0: [[1]], 'head.weight': [[1, 2]], __proto__x: [1] },
      },
      inputs: [
        [[1], [2]],
        [[3], [4]],
        [[5], [6]],
      ],
      initialState: {
        h0: [[[0, 0]], [[0, 0]]],
        c0: [
          [
            [0, 0],
            [0, 0],
          ],
          [
            [0, 0],
            [0, 0],
          ],
        ],
      },
    };
    const issues = issuesOf(contract.InferPayload, body);
    expect(at(issues, 'model.stateDict.__proto__x')?.expected).toContain('a string matching');
    delete body.model.stateDict.__proto__x;
    const issues2 = issuesOf(contract.InferPayload, body);
    expect(at(issues2, 'initialState.c0')).toMatchObject({
      expected: 'batch size 3 (that of inputs) or 1',
      received: '2',
    });
    expect(at(issues2, 'initialState.h0')).toBeUndefined();
  });
});

describe('dataset input', () => {
  test('per-step and per-sequence targets', () => {
    expect(validate(contract.DatasetInput, { x: [[[1], [2]]], y: [[[1], [2]]] }).ok).toBe(true);
    expect(validate(contract.DatasetInput, { x: [[[1], [2]]], y: [[3]] }).ok).toBe(true);
    expect(at(issuesOf(contract.DatasetInput, { x: [[[1], [2]]], y: [[3], [4]] }), 'y')).toMatchObject({
      expected: 'shape [1, O]',
      received: 'shape [2, 1]',
    });
    expect(at(issuesOf(contract.DatasetInput, { x: [[[1], [2]]], y: [[[1], 2]] }), 'y[0][1]')).toBeDefined();
  });
});
