/**
 * The sweeps this browser started or opened, newest first, in localStorage: the api lists no sweeps
 * (there is no GET /v1/sweeps), so the page remembers their ids. Ids only; their data comes from the api.
 */
import type { SweepState } from '@relu-lstm/jobs';

const STORE_KEY = 'relu-lstm.sweeps';
const MAX_REMEMBERED = 50;

export interface RememberedSweep {
  id: string;
  createdAt: number;
}

export function rememberedSweeps(): RememberedSweep[] {
  try {
    const list = JSON.parse(localStorage.getItem(STORE_KEY) ?? '[]') as unknown;
    return Array.isArray(list) ? (list as RememberedSweep[]).filter((s) => typeof s?.id === 'string') : [];
  } catch {
    return [];
  }
}

function save(list: RememberedSweep[]): void {
  localStorage.setItem(STORE_KEY, JSON.stringify(list.slice(0, MAX_REMEMBERED)));
}

export function rememberSweep(id: string, createdAt: number): void {
  const list = rememberedSweeps();
  if (list.some((s) => s.id === id)) return;
  save([{ id, createdAt }, ...list].sort((a, b) => b.createdAt - a.createdAt));
}

export function forgetSweep(id: string): void {
  save(rememberedSweeps().filter((s) => s.id !== id));
}

/** Whether a sweep may still change (its trials queued or running); the other states are final. */
export const sweepLive = (state: SweepState): boolean => state === 'queued' || state === 'running';
