/**
 * API keys: which tenant a bearer token acts for. Only SHA-256 digests of the keys are configured
 * and kept; a presented token is hashed and compared with every digest in constant time.
 *
 * Entry syntax (`API_KEYS`, comma- or newline-separated, and the lines of `API_KEYS_FILE`):
 *   `<tenant>:<sha256 hex of the key>`        e.g. `acme:9f86d081884c7d65...`
 * `API_KEYS_FILE` may instead hold JSON: `[{ "tenant": "acme", "sha256": "9f86d0..." }, ...]`.
 * A tenant may have several keys (rotation); a digest may belong to one tenant only.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { SAFE_ID } from '@relu-lstm/jobs';

export interface ApiKeyEntry {
  tenant: string;
  /** SHA-256 of the key, 32 bytes. */
  digest: Buffer;
}

const HEX64 = /^[0-9a-f]{64}$/i;

export const sha256 = (key: string): Buffer => createHash('sha256').update(key, 'utf8').digest();

/** Parses key entries; throws an Error naming the entry (never echoing a value that may be a secret). */
export function parseApiKeys(text: string, source: string): ApiKeyEntry[] {
  const trimmed = text.trim();
  if (!trimmed) return [];
  if (trimmed.startsWith('[')) return parseJson(trimmed, source);
  const out: ApiKeyEntry[] = [];
  const parts = trimmed.split(/[,\n]/).map((p) => p.trim());
  parts.forEach((p, i) => {
    if (!p || p.startsWith('#')) return;
    const at = p.indexOf(':');
    out.push(entry(at < 0 ? p : p.slice(0, at), at < 0 ? '' : p.slice(at + 1), `${source} entry ${i + 1}`));
  });
  return out;
}

function parseJson(text: string, source: string): ApiKeyEntry[] {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`${source}: not valid JSON (${(e as Error).message})`);
  }
  if (!Array.isArray(v)) throw new Error(`${source}: expected a JSON array of { tenant, sha256 }`);
  return v.map((o, i) => {
    const r = o as { tenant?: unknown; sha256?: unknown };
    return entry(
      typeof r?.tenant === 'string' ? r.tenant : '',
      typeof r?.sha256 === 'string' ? r.sha256 : '',
      `${source} entry ${i + 1}`,
    );
  });
}

function entry(tenant: string, hash: string, where: string): ApiKeyEntry {
  if (!SAFE_ID.test(tenant)) {
    throw new Error(
      `${where}: expected <tenant>:<sha256 hex of the key> with a tenant of letters, digits, '.', '-', '_', got a tenant of ${tenant.length} characters`,
    );
  }
  if (!HEX64.test(hash)) {
    // A plain key here would be a secret at rest: refuse it without printing it.
    throw new Error(
      `${where} (tenant ${tenant}): expected the 64-hex-digit SHA-256 of the key, got ${hash.length} characters; configure hashes, never keys`,
    );
  }
  return { tenant, digest: Buffer.from(hash, 'hex') };
}

/** Checks entries together: a digest may not name two tenants. */
export function checkDistinct(entries: ApiKeyEntry[]): void {
  const seen = new Map<string, string>();
  for (const e of entries) {
    const hex = e.digest.toString('hex');
    const other = seen.get(hex);
    if (other !== undefined && other !== e.tenant)
      throw new Error(`API keys: one key hash is configured for both tenant ${other} and tenant ${e.tenant}`);
    seen.set(hex, e.tenant);
  }
}

export class KeyRing {
  constructor(
    private readonly entries: readonly ApiKeyEntry[],
    private readonly adminDigest: Buffer | null,
  ) {}

  get enabled(): boolean {
    return this.entries.length > 0;
  }

  get adminEnabled(): boolean {
    return this.adminDigest !== null;
  }

  /** Tenants that have keys, sorted. */
  tenants(): string[] {
    return [...new Set(this.entries.map((e) => e.tenant))].sort();
  }

  /**
   * The tenant of a token, or null. Every digest is compared (no early exit) with timingSafeEqual,
   * so the time taken says nothing about which entry, if any, came close.
   */
  tenantOf(token: string): string | null {
    const d = sha256(token);
    let found: string | null = null;
    for (const e of this.entries) if (timingSafeEqual(d, e.digest) && found === null) found = e.tenant;
    return found;
  }

  isAdmin(token: string): boolean {
    return this.adminDigest !== null && timingSafeEqual(sha256(token), this.adminDigest);
  }
}
