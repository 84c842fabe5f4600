/** The one error banner: the api's code, message and issues, as it words them. */
import { ApiError, errorText } from './api';
import { fill, h } from './dom';

/** What a page leaves running (timers, streams), stopped when the route changes. */
export type Cleanup = () => void;
export type Page = (main: HTMLElement, arg: string | undefined) => Cleanup;

export function showError(e: unknown): void {
  if (e instanceof DOMException && e.name === 'AbortError') return;
  if (e instanceof ApiError && e.status === 401) return; // the key prompt shows it
  const banner = document.getElementById('error')!;
  banner.hidden = false;
  fill(
    banner,
    h('pre', {}, errorText(e)),
    h('button', { type: 'button', class: 'close', onclick: () => (banner.hidden = true) }, '×'),
  );
}

export function clearError(): void {
  document.getElementById('error')!.hidden = true;
}

/** Runs `fn` now and every `ms` until the returned cleanup is called; errors go to the banner. */
export function every(ms: number, fn: () => Promise<void>): Cleanup {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = async () => {
    try {
      await fn();
    } catch (e) {
      showError(e);
    }
    if (!stopped) timer = setTimeout(() => void tick(), ms);
  };
  void tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/**
 * `fn` run at most once at a time: a call while it runs asks for one more run after it (a burst of
 * events costs two requests, not one each). Errors go to the banner.
 */
export function coalesced(fn: () => Promise<void>): () => void {
  let running = false;
  let again = false;
  const run = (): void => {
    if (running) {
      again = true;
      return;
    }
    running = true;
    void fn()
      .catch(showError)
      .finally(() => {
        running = false;
        if (again) {
          again = false;
          run();
        }
      });
  };
  return run;
}
