/** Something BullMQ-like holding its own Redis connection (QueueEvents, FlowProducer). */
export interface Closable {
  close(): Promise<unknown>;
  disconnect(): Promise<unknown>;
}

/** How long a shutdown waits for one such connection before cutting it. */
export const CLOSE_WAIT_MS = 1000;

/**
 * Closes `c`, giving up after `ms`: a connection whose Redis is unreachable never finishes closing
 * (nor disconnecting), and the process must still exit on SIGTERM.
 */
export async function closeWithin(c: Closable, ms = CLOSE_WAIT_MS): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  const closed = await Promise.race([
    c.close().then(
      () => true,
      () => true,
    ),
    late,
  ]);
  clearTimeout(timer);
  if (!closed) void c.disconnect().catch(() => undefined);
}
