/**
 * The environment variables each app reads, from their one definition (the apps' `*_ENV` specs and
 * `LIMIT_ENV` of @relu-lstm/jobs), for the docs and compose tests.
 */
import { LIMIT_ENV, type EnvSpec } from '@relu-lstm/jobs';
import { API_ENV } from '../apps/api/src/config';
import { WORKER_ENV } from '../apps/worker/src/config';

/** Every variable apps/api/src/config.ts reads, with its definition. */
export const API_VARIABLES: EnvSpec = { ...API_ENV, ...LIMIT_ENV };
/** Every variable apps/worker/src/config.ts reads, with its definition. */
export const WORKER_VARIABLES: EnvSpec = WORKER_ENV;

export const apiVariables = (): string[] => Object.keys(API_VARIABLES);
export const workerVariables = (): string[] => Object.keys(WORKER_VARIABLES);
