/** Shared command-line helpers for the benchmark harnesses. */

/** A positive integer option, or exit 2 with a message naming the flag. */
export function positiveInt(name: string, v: string | undefined): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`bench: --${name} must be a positive integer, got ${JSON.stringify(v)}`);
    process.exit(2);
  }
  return n;
}
