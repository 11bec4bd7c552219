/** A source of the current time. Decisions that depend on time take a Clock so tests can pin it. */
export interface Clock {
  now(): Date;
}

/** The real wall clock. */
export const systemClock: Clock = { now: () => new Date() };

/** A clock that always answers `at`; handy for tests and `--at` style flags. */
export function fixedClock(at: Date): Clock {
  return { now: () => new Date(at.getTime()) };
}
