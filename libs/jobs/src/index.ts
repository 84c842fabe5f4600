/**
 * @relu-lstm/jobs: the contract between the api, the worker and the client. See README.md beside
 * this package for what each process must honour.
 */
export * from './limits';
export * from './cost';
export * from './tensors';
export * from './payloads';
export * from './events';
export * from './job-types';
export * from './job-options';
export * from './job-index';
export * from './queues';
export * from './keys';
export * from './validation';
export * from './http';
export * from './artifacts';
export * from './published-sets';
export * from './datasets';
export * from './dataset-records';
export * from './stores';
export * from './event-stream';
export * from './worker-contract';
export * from './producer';
export * from './sweeps';
export * from './sweep-producer';
export * from './sessions';
export * from './retention';
export * from './models';
export * from './env';
