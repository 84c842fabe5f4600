/**
 * The artifact store on a file system (`openArtifactStore` of a path or `file:` URL): a plain
 * object is `<dir>/<jobId>/<name>`, written to a temporary name and renamed, so a reader never sees
 * half a file. A stage is the hidden directory `<dir>/<jobId>/.stage-<id>/`; once its set is
 * published (published-sets.ts) reads are served from it in place. Not exported from the package:
 * open stores with stores.ts.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, type ReadStream } from 'node:fs';
import { access, constants, mkdir, readdir, readFile, rename, rm, stat, statfs, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  ArtifactNotFoundError,
  FencedWriteError,
  checkArtifactName,
  checkStageId,
  isValidArtifactName,
  type ArtifactInfo,
  type ArtifactStore,
  type PutOptions,
  type StoreProbe,
  type StoredJob,
} from './artifacts';
import { SAFE_ID } from './keys';
import { artifactSource, type PublishedSets } from './published-sets';

const isEnoent = (e: unknown) => (e as NodeJS.ErrnoException)?.code === 'ENOENT';

export class FileArtifactStore implements ArtifactStore {
  constructor(
    readonly dir: string,
    private readonly published: PublishedSets,
  ) {}

  /** The directory exists (created if need be), is writable, and its file system's free space. */
  async probe(): Promise<StoreProbe> {
    await mkdir(this.dir, { recursive: true });
    await access(this.dir, constants.W_OK);
    const fs = await statfs(this.dir);
    return { kind: 'file', freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize };
  }

  private path(jobId: string, name?: string): string {
    checkArtifactName(jobId, name);
    return name === undefined ? join(this.dir, jobId) : join(this.dir, jobId, name);
  }

  private stagePath(jobId: string, stageId: string, name?: string): string {
    checkArtifactName(jobId, name);
    checkStageId(stageId);
    const dir = join(this.dir, jobId, `.stage-${stageId}`);
    return name === undefined ? dir : join(dir, name);
  }

  async put(jobId: string, name: string, data: string | Uint8Array, options: PutOptions = {}): Promise<ArtifactInfo> {
    const final = this.path(jobId, name);
    await mkdir(this.path(jobId), { recursive: true });
    const tmp = join(this.path(jobId), `.${name}.${randomBytes(6).toString('hex')}.tmp`);
    try {
      await writeFile(tmp, data);
      if (options.fence && !(await options.fence())) throw new FencedWriteError(jobId, name);
      await rename(tmp, final);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    const s = await stat(final);
    return { name, size: s.size, modifiedAt: Math.round(s.mtimeMs) };
  }

  async stage(jobId: string, stageId: string, name: string, data: string | Uint8Array): Promise<void> {
    await mkdir(this.stagePath(jobId, stageId), { recursive: true });
    await writeFile(this.stagePath(jobId, stageId, name), data);
  }

  async pruneStages(jobId: string, keep: string): Promise<void> {
    checkStageId(keep);
    let names: string[];
    try {
      names = await readdir(this.path(jobId));
    } catch (e) {
      if (isEnoent(e)) return;
      throw e;
    }
    const hidden = names.filter((n) => n.startsWith('.') && n !== `.stage-${keep}`);
    await Promise.all(hidden.map((n) => rm(join(this.path(jobId), n), { recursive: true, force: true })));
  }

  /** The file `name` of the job is read from; null when the job's published set has no such name. */
  private async readPath(jobId: string, name: string): Promise<string | null> {
    checkArtifactName(jobId, name);
    const source = await artifactSource(this.published, jobId);
    if (source.stage === null) return this.path(jobId, name);
    return source.names.has(name) ? this.stagePath(jobId, source.stage, name) : null;
  }

  async discardStaged(jobId: string, stageId: string): Promise<void> {
    await rm(this.stagePath(jobId, stageId), { recursive: true, force: true });
  }

  async get(jobId: string, name: string): Promise<Buffer> {
    const p = await this.readPath(jobId, name);
    try {
      if (p === null) throw new ArtifactNotFoundError(jobId, name);
      return await readFile(p);
    } catch (e) {
      if (isEnoent(e)) throw new ArtifactNotFoundError(jobId, name);
      throw e;
    }
  }

  async open(jobId: string, name: string): Promise<{ info: ArtifactInfo; stream: ReadStream }> {
    const p = await this.readPath(jobId, name);
    try {
      if (p === null) throw new ArtifactNotFoundError(jobId, name);
      const s = await stat(p);
      if (!s.isFile()) throw new ArtifactNotFoundError(jobId, name);
      return { info: { name, size: s.size, modifiedAt: Math.round(s.mtimeMs) }, stream: createReadStream(p) };
    } catch (e) {
      if (isEnoent(e)) throw new ArtifactNotFoundError(jobId, name);
      throw e;
    }
  }

  async exists(jobId: string, name: string): Promise<boolean> {
    const p = await this.readPath(jobId, name);
    if (p === null) return false;
    try {
      return (await stat(p)).isFile();
    } catch (e) {
      if (isEnoent(e)) return false;
      throw e;
    }
  }

  async list(jobId: string): Promise<ArtifactInfo[]> {
    checkArtifactName(jobId);
    const source = await artifactSource(this.published, jobId);
    const dir = source.stage === null ? this.path(jobId) : this.stagePath(jobId, source.stage);
    let names: string[];
    try {
      names = await readdir(dir);
    } catch (e) {
      if (isEnoent(e)) return [];
      throw e;
    }
    const listed = names.filter((n) => isValidArtifactName(n) && (source.stage === null || source.names.has(n)));
    const out: ArtifactInfo[] = [];
    for (const name of listed.sort()) {
      try {
        const s = await stat(join(dir, name));
        if (s.isFile()) out.push({ name, size: s.size, modifiedAt: Math.round(s.mtimeMs) });
      } catch (e) {
        if (!isEnoent(e)) throw e; // removed while listing
      }
    }
    return out;
  }

  async *jobs(): AsyncIterable<StoredJob> {
    let names: string[];
    try {
      names = await readdir(this.dir);
    } catch (e) {
      if (isEnoent(e)) return;
      throw e;
    }
    for (const jobId of names.filter((n) => SAFE_ID.test(n))) {
      try {
        // Every plain write ends in a rename into the job's directory and every stage starts with
        // a directory made in it, which update its mtime.
        const s = await stat(join(this.dir, jobId));
        if (s.isDirectory()) yield { jobId, modifiedAt: s.mtimeMs };
      } catch (e) {
        if (!isEnoent(e)) throw e; // removed while listing
      }
    }
  }

  async remove(jobId: string, name?: string): Promise<void> {
    await rm(this.path(jobId, name), { recursive: name === undefined, force: true });
  }
}
