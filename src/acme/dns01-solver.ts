/**
 * Builds the DNS-01 solver for a lineage's DNS settings (dns/settings.ts):
 * its provider, the lookups through the configured resolvers, the store
 * that keeps its record ledger. Shared by the CLI and the daemon.
 */
import { Dns01Solver } from './dns01.js';
import { DnsLookup } from '../dns/lookup.js';
import { parseServers } from '../dns/transport.js';
import { createDnsProvider, type DnsChallengeSettings } from '../dns/settings.js';
import type { CertStore } from '../store/store.js';
import type { Logger } from '../log.js';
import type { Clock } from '../clock.js';

/**
 * A DNS-01 solver for these settings. `PADLOCK_FAULT_KILL_AT=dns-presented`
 * (tests only) kills the process with SIGKILL right after the provider wrote
 * the record, to prove that the next start removes it.
 */
export function dns01Solver(settings: DnsChallengeSettings, context: { store: CertStore; logger: Logger; clock: Clock }): Dns01Solver {
  const killAt = process.env['PADLOCK_FAULT_KILL_AT'];
  return new Dns01Solver({
    provider: () => createDnsProvider(settings, { clock: context.clock }),
    lookup: new DnsLookup(settings.resolvers?.length ? { resolvers: parseServers(settings.resolvers, 'dns resolvers') } : {}),
    store: context.store,
    clock: context.clock,
    logger: context.logger,
    ...(settings.propagationTimeout !== undefined ? { propagationTimeoutMs: settings.propagationTimeout * 1000 } : {}),
    ...(settings.propagationInterval !== undefined ? { propagationIntervalMs: settings.propagationInterval * 1000 } : {}),
    ...(killAt ? { faults: (point: string) => { if (point === killAt) process.kill(process.pid, 'SIGKILL'); } } : {}),
  });
}
