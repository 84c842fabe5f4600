/**
 * An S3 server for the benchmarks: `s3rver` (a devDependency) as a child process on a free port over
 * `dir`, through the tests' launcher script (libs/jobs/test/s3rver-atomic.js), with `bucket` created.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './stack';

const S3RVER = join(REPO_ROOT, 'libs', 'jobs', 'test', 's3rver-atomic.js');

export interface S3rver {
  /** The `S3_ENV` variables that reach it. */
  env: Record<string, string>;
  stop(): void;
}

export async function startS3rver(dir: string, bucket: string): Promise<S3rver> {
  const child = spawn(
    process.execPath,
    [S3RVER, '--directory', dir, '--address', '127.0.0.1', '--port', '0', '--bucket', bucket],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const port = await new Promise<number>((done, fail) => {
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on [^\s]*:(\d+)/.exec(out);
      if (m) done(Number(m[1]));
    });
    child.once('exit', (code) => fail(new Error(`s3rver exited with ${code}`)));
  });
  return {
    env: {
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
      AWS_REGION: 'us-east-1',
      S3_ENDPOINT: `http://127.0.0.1:${port}`,
      S3_FORCE_PATH_STYLE: 'true',
    },
    stop: () => child.kill(),
  };
}

/** Runs `fn` with an s3rver over a new temporary directory `dir` (its `files/` is free for a file store); removes both after. */
export async function withS3rver<T>(bucket: string, fn: (s3rver: S3rver, dir: string) => Promise<T>): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-s3-'));
  const s3rver = await startS3rver(join(dir, 's3'), bucket);
  try {
    return await fn(s3rver, dir);
  } finally {
    s3rver.stop();
    await rm(dir, { recursive: true, force: true });
  }
}
