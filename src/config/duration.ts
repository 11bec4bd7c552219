/** Durations as labels and flags write them. Pure. */

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000 };

/**
 * Milliseconds for `10`, `1.5`, `10s`, `500ms` or `2m` (a bare number is
 * seconds), or undefined when `value` is none of these or is negative.
 * Rounded to whole milliseconds.
 */
export function parseDurationMs(value: string): number | undefined {
  const m = /^(\d{1,9}(?:\.\d{1,3})?)\s*(ms|s|m)?$/i.exec(value.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * UNIT_MS[(m[2] ?? 's').toLowerCase()]!);
}
