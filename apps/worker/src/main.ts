/**
 * Entry point of the worker role (`npm run start:worker`, the compose worker services): a NestJS
 * application context without HTTP that consumes the job queues. SIGTERM/SIGINT shut it down
 * gracefully (see QueueConsumer.beforeApplicationShutdown); a second signal exits at once.
 */
import 'reflect-metadata';
import { Logger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { createLogger } from '@relu-lstm/jobs/logging';
import { WorkerConfigError, loadWorkerConfig, type WorkerConfig } from './config';
import { WorkerModule } from './worker.module';

async function main(): Promise<void> {
  // Validate the environment before Nest starts, so a bad variable is one clear message.
  let config: WorkerConfig;
  try {
    config = loadWorkerConfig();
  } catch (e) {
    if (e instanceof WorkerConfigError) {
      process.stderr.write(`${e.message}\n`);
      process.exit(78); // EX_CONFIG
    }
    throw e;
  }
  const app = await NestFactory.createApplicationContext(WorkerModule.forConfig(config), {
    logger: createLogger({ format: config.logFormat, level: config.logLevel }),
    abortOnError: false,
  });
  let signals = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      new Logger('Worker').warn(`second ${signal}: exiting now`);
      process.exit(130);
    }
    // A shutdown that hangs (a stuck connection) must not keep the process, and the job's lock, alive:
    // past the grace and every bounded step after it, exit anyway; the job resumes elsewhere.
    const deadlineMs = config.shutdownGraceMs + 30_000;
    setTimeout(() => {
      new Logger('Worker').error(`shutdown did not finish within ${deadlineMs} ms; exiting`);
      process.exit(1);
    }, deadlineMs).unref();
    app.close().then(
      () => process.exit(0),
      (e) => {
        new Logger('Worker').error(`shutdown failed: ${(e as Error).stack ?? e}`);
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  new Logger('Worker').log(`worker ${config.workerId} started (pid ${process.pid})`);
}

main().catch((e) => {
  // An engine that cannot start (unknown or missing backend) is a configuration problem: no stack.
  const expected = (e as Error)?.name === 'EngineStartError';
  new Logger('Worker').error(`could not start: ${expected ? (e as Error).message : ((e as Error)?.stack ?? e)}`);
  process.exit(1);
});
