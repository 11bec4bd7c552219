/**
 * Running async work over a list with at most `limit` tasks in flight. The
 * one helper padlock uses for bounded fan-out (loading lineages, renewing
 * several at once), so no caller starts thousands of promises at once.
 */

/**
 * Calls `fn` for every item, at most `limit` at a time, in list order of
 * start. Resolves when all are done; a rejection of `fn` rejects the whole
 * call only after the tasks already started have settled (callers that must
 * not stop on one failure catch inside `fn`).
 */
export async function forEachLimit<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { err: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && !failure) {
      const item = items[next++]!;
      try {
        await fn(item);
      } catch (err) {
        failure ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.err;
}

const RESOLVED = Promise.resolve();

/**
 * A yield point for long loops on the main thread. The function it returns
 * resolves at once while less than `budgetMs` passed since the loop last
 * yielded, and otherwise after one turn of the event loop (setImmediate), so
 * the timers, I/O and TLS handshakes that arrived meanwhile are served. Calls
 * that find the budget spent share one yield, so several workers of one loop
 * (forEachLimit) hold the thread for `budgetMs` together, not each.
 */
export function timeSlicer(budgetMs = 10): () => Promise<void> {
  let since = performance.now();
  let yielding: Promise<void> | undefined;
  return () => {
    if (yielding) return yielding;
    if (performance.now() - since < budgetMs) return RESOLVED;
    yielding = new Promise<void>((resolve) => setImmediate(() => {
      yielding = undefined;
      since = performance.now();
      resolve();
    }));
    return yielding;
  };
}
