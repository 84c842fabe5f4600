/**
 * A real S3 server for tests: `s3rver` (npm, a devDependency) as a child process on a free port,
 * keeping its objects in a temporary directory. Path-style, credentials S3RVER/S3RVER. Started by
 * `s3rver-atomic.js`, which gives it S3's whole-object replacement (see there).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, type S3Client } from '@aws-sdk/client-s3';
import { s3Client } from '../src/s3-store';

const S3RVER_MAIN = join(__dirname, 's3rver-atomic.js');

export const S3RVER_KEYS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' } as const;

export class S3Server {
  private child: ChildProcess | null = null;
  private constructor(
    readonly dir: string,
    public port: number,
  ) {}

  /** Starts a server on a free port (or `port`) over a new temporary directory. */
  static async start(): Promise<S3Server> {
    const server = new S3Server(await mkdtemp(join(tmpdir(), 's3rver-')), 0);
    await server.listen();
    return server;
  }

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** The variables a process needs to reach this server (`S3_ENV`). */
  env(keys: { AWS_ACCESS_KEY_ID: string; AWS_SECRET_ACCESS_KEY: string } = S3RVER_KEYS): Record<string, string> {
    return { ...keys, AWS_REGION: 'us-east-1', S3_ENDPOINT: this.endpoint, S3_FORCE_PATH_STYLE: 'true' };
  }

  client(keys = S3RVER_KEYS): S3Client {
    return s3Client({
      ...keys,
      AWS_REGION: 'us-east-1',
      S3_ENDPOINT: this.endpoint,
      S3_FORCE_PATH_STYLE: true,
    });
  }

  async createBucket(bucket: string): Promise<void> {
    const c = this.client();
    await c.send(new CreateBucketCommand({ Bucket: bucket }));
    c.destroy();
  }

  /** (Re)starts the process on `this.port` (0: a free one, remembered), over the same directory. */
  async listen(): Promise<void> {
    const child = spawn(
      process.execPath,
      [S3RVER_MAIN, '--directory', this.dir, '--address', '127.0.0.1', '--port', String(this.port), '--silent'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.child = child;
    let out = '';
    this.port = await new Promise<number>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`s3rver did not start: ${out}`)), 15_000);
      const onData = (d: Buffer) => {
        out += d.toString();
        const m = /listening on [^\s]*:(\d+)/.exec(out);
        if (m) {
          clearTimeout(timer);
          resolve(Number(m[1]));
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`s3rver exited with ${code}: ${out}`));
      });
    });
  }

  /** Kills the process (SIGKILL: a server that goes away mid-request). */
  async kill(): Promise<void> {
    const child = this.child;
    this.child = null;
    if (!child || child.exitCode !== null) return;
    await new Promise<void>((resolve) => {
      child.once('exit', () => resolve());
      child.kill('SIGKILL');
    });
  }

  async stop(): Promise<void> {
    await this.kill();
    await rm(this.dir, { recursive: true, force: true });
  }
}
