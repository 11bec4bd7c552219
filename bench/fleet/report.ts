/**
 * The fleet bench's record (JSON) and its markdown: one row per round, one
 * row per replica and round, then the best and the worst round.
 */
import type { RoundResult, Distribution } from './round.js';

export interface FleetReport {
  benchmark: 'fleet';
  startedAt: string;
  finishedAt: string;
  options: Record<string, unknown>;
  machine: { cpus: number; cpuModel: string; memMiB: number; node: string; platform: string };
  versions: Record<string, string>;
  rounds: RoundResult[];
}

const s1 = (x: number | undefined): string => (x === undefined ? '–' : x.toFixed(1));
const s2 = (x: number | undefined): string => (x === undefined ? '–' : x.toFixed(2));
const dist = (d: Distribution | undefined): [string, string, string] => (d ? [s1(d.minS), s1(d.medianS), s1(d.maxS)] : ['–', '–', '–']);
const esc = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

/** One row per round: the clock, the CA's counts, Redis. */
export function markdownRounds(r: FleetReport): string {
  const lines = [
    '| round | load before | replicas ready s | first name everywhere s | median name s | last name s (= all served) | slowest replica to follow s (names over 5 s) | orders at CA | authz at CA | certificates at CA | accounts | store: lineages at v1 | Redis used / peak MiB (keys) | result |',
    '|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|',
  ];
  for (const x of r.rounds) {
    const ready = x.replicas.map((p) => s2(p.readyS)).join(' / ');
    const [first, median, last] = dist(x.everywhere);
    const redis = x.redis ? `${s1(x.redis.usedMemoryMiB)} / ${s1(x.redis.usedMemoryPeakMiB)} (${x.redis.keys})` : '–';
    const store = x.store ? (x.store.error ? 'error' : `${x.store.atVersion1}/${x.store.lineages}`) : '–';
    lines.push(`| ${x.round} | ${x.loadBefore.join(' ')} | ${ready} | ${first} | ${median} | ${x.allServedS !== undefined ? last : `${last} (not all)`} | ${s1(x.spread?.maxS)} (${x.slowToFollow?.count ?? '–'}) | ${x.ca.orders ?? '–'} | ${x.ca.authorizations ?? '–'} | ${x.ca.certificates}${x.ca.gap ? '*' : ''} | ${x.ca.accounts ?? '–'} | ${store} | ${redis} | ${x.ok ? 'ok' : `FAILED: ${esc((x.error ?? '?').slice(0, 200))}`} |`);
  }
  const gap = r.rounds.some((x) => x.ca.gap);
  return `${lines.join('\n')}${gap ? '\n\n\\* Pebble\'s kept log was cut between two reads, so the count of issued certificates may be short; the order and authorization counts are Pebble\'s own running totals and are not.' : ''}`;
}

/** One row per replica and round: its share of the orders, what it found, what it used. */
export function markdownReplicas(r: FleetReport): string {
  const lines = [
    '| round | replica | ready s | served all s | certificates it stored | failed orders | jobs started | lock busy | found done after lock | picked up from store | CA HTTP-01 connections it answered | warn / error | CPU s | RSS MiB at end (peak) |',
    '|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  for (const x of r.rounds) {
    for (const p of x.replicas) {
      const u = p.usage;
      const failed = Object.entries(p.log.failedByCode).map(([code, n]) => `${n} ${code}`).join(', ') || '0';
      const answered = x.balancer ? String(x.balancer.connections[p.ip] ?? 0) : '–';
      lines.push(`| ${x.round} | ${p.ip} | ${s2(p.readyS)} | ${s1(p.allServedS)} | ${p.log.ordersStored}${p.log.storedTwice.length ? ` (${p.log.storedTwice.length} twice)` : ''} | ${failed} | ${p.log.jobsStarted} | ${p.log.lockBusy} | ${p.log.alreadyDone} | ${p.log.fromStore} | ${answered} | ${p.log.warnings} / ${p.log.errors} | ${s1(u?.cpuSeconds)} | ${u ? `${u.rssMiB.toFixed(0)} (${u.peakMiB.toFixed(0)})` : p.exitedEarly ? 'exited' : '–'} |`);
    }
  }
  return lines.join('\n');
}

/** CPU of every part per round (on 2 shared cores, who used the machine). */
export function markdownCpu(r: FleetReport): string {
  const lines = ['| round | wall s | 3 replicas CPU s | Pebble CPU s | challtestsrv CPU s | Redis CPU s (RSS MiB) | handshake probes (failed) |', '|---:|---:|---:|---:|---:|---:|---:|'];
  for (const x of r.rounds) {
    const replicas = x.replicas.reduce((s, p) => s + (p.usage?.cpuSeconds ?? 0), 0);
    lines.push(`| ${x.round} | ${s1(x.allServedS ?? x.everywhere?.maxS)} | ${s1(replicas)} | ${s1(x.pebbleProcess?.cpuSeconds)} | ${s1(x.challtestsrvProcess?.cpuSeconds)} | ${s1(x.redis?.process?.cpuSeconds)} (${s1(x.redis?.process?.rssMiB)}) | ${x.probes.probes} (${x.probes.failed}) |`);
  }
  return lines.join('\n');
}

/** Best and worst round by the time until every replica served every name. */
export function markdownSummary(r: FleetReport): string {
  const ok = r.rounds.filter((x) => x.ok && x.allServedS !== undefined);
  const out = [`Rounds ok: ${ok.length}/${r.rounds.length}.`];
  if (ok.length) {
    const sorted = [...ok].sort((a, b) => a.allServedS! - b.allServedS!);
    const best = sorted[0]!;
    const worst = sorted[sorted.length - 1]!;
    const line = (label: string, x: RoundResult): string =>
      `- ${label}: round ${x.round}, every replica served all ${x.names} names after **${s1(x.allServedS)} s** (first name everywhere ${s1(x.everywhere?.minS)} s, median ${s1(x.everywhere?.medianS)} s); ${x.ca.orders} orders at the CA; orders per replica ${x.replicas.map((p) => p.log.ordersStored).join(' / ')}; peak RSS per replica ${x.replicas.map((p) => s1(p.usage?.peakMiB)).join(' / ')} MiB; Redis ${s1(x.redis?.usedMemoryMiB)} MiB used.`;
    out.push(line('Best', best));
    if (worst !== best) out.push(line('Worst', worst));
  }
  for (const x of r.rounds.filter((y) => !y.ok)) {
    out.push(`- Round ${x.round} FAILED: ${x.error ?? '?'}${x.missing?.length ? `\n  Not served, e.g.: ${x.missing.join('; ')}` : ''}`);
    for (const p of x.replicas) if (p.log.problems.length) out.push(`  ${p.ip} said: ${p.log.problems.slice(0, 3).map((l) => l.slice(0, 300)).join(' // ')}`);
  }
  return out.join('\n');
}
