/**
 * The api's and the worker's logger (`@relu-lstm/jobs/logging`, kept out of the package's main entry
 * so the client never loads NestJS): Nest's own `ConsoleLogger`, as JSON lines or pretty text
 * (`LOG_FORMAT`; `auto`: pretty on a terminal, JSON otherwise), with the fields of the current
 * context on every line logged inside it: the request id of an api request, the job id, attempt
 * and worker id of a job the worker runs. The context follows async calls (AsyncLocalStorage);
 * callbacks from outside it (IPC messages, stream events) are bound to it where they are set up.
 *
 * What is logged is messages the code writes; payloads, keys and secrets are never put in them.
 * As a second guard, properties whose name says secret are masked in any object logged.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { ConsoleLogger, type LogLevel as NestLogLevel } from '@nestjs/common';
import { LOG_LEVELS, type LogFormat, type LogLevel } from './env';

export type LogFields = Readonly<Record<string, string | number>>;

const fieldsStore = new AsyncLocalStorage<LogFields>();

/** Runs `fn` with `fields` added to every line it (and what it awaits) logs. */
export function withLogFields<T>(fields: LogFields, fn: () => T): T {
  return fieldsStore.run({ ...fieldsStore.getStore(), ...fields }, fn);
}

/** The fields of the current context, if any. */
export function logFields(): LogFields | undefined {
  return fieldsStore.getStore();
}

/** Masked in any object logged (matched case-insensitively, at any depth). */
const REDACTED = [
  'authorization',
  'password',
  'secret',
  'token',
  'apiKey',
  'adminKey',
  'AWS_SECRET_ACCESS_KEY',
  'REDIS_URL',
  'payload',
];

class ContextLogger extends ConsoleLogger {
  protected override getJsonLogObject(...args: Parameters<ConsoleLogger['getJsonLogObject']>) {
    const line = super.getJsonLogObject(...args);
    const fields = fieldsStore.getStore();
    // The logger's own fields (level, message, ...) win over a context field of the same name.
    return fields ? { ...fields, ...line } : line;
  }

  /** Plain JSON.stringify (several times faster); Nest's careful one for what it cannot take (cycles, BigInt). */
  protected override stringifyJsonLogObject(line: Record<string, unknown>): string {
    try {
      return JSON.stringify(line);
    } catch {
      return super.stringifyJsonLogObject(line);
    }
  }

  protected override formatContext(context: string): string {
    const fields = fieldsStore.getStore();
    const extra = fields
      ? Object.entries(fields)
          .map(([k, v]) => `${k}=${v} `)
          .join('')
      : '';
    return super.formatContext(context) + extra;
  }
}

/** JSON unless the format says pretty, or `auto` writes to a terminal. */
export function isJsonFormat(format: LogFormat, isTTY: boolean = process.stdout.isTTY === true): boolean {
  return format === 'json' || (format === 'auto' && !isTTY);
}

/** The logger of a process: `LOG_FORMAT` and `LOG_LEVEL` (from COMMON_ENV). */
export function createLogger(o: { format: LogFormat; level: LogLevel; isTTY?: boolean }): ConsoleLogger {
  const json = isJsonFormat(o.format, o.isTTY);
  return new ContextLogger({
    json,
    colors: !json && (o.isTTY ?? process.stdout.isTTY === true) && !process.env.NO_COLOR,
    logLevels: LOG_LEVELS.slice(0, LOG_LEVELS.indexOf(o.level) + 1) as NestLogLevel[],
    redact: REDACTED,
  });
}
