/**
 * Copying one store into another (`padlock store copy`): moving from a
 * folder to a shared Redis store and back, or taking a backup. No CA is
 * contacted and nothing is ordered.
 *
 * What is copied: each lineage's current version (its four PEMs and its
 * settings), every state (failure records, ARI windows, the rate-limit
 * ledger, alert dedupe), and every ACME account. What is not: earlier
 * versions (they stay in the source), and locks. A lineage the destination
 * already holds with the same certificate is left alone; with another
 * certificate it is replaced only with `replace`. An account the destination
 * already has for the same CA is never replaced unless `replace`: a fleet's
 * registered account must not be swapped under it. Nor is a state the
 * destination already has: a running fleet's rate-limit ledger and failure
 * records are newer than a backup's, and overwriting them would forget
 * orders the CA counted.
 */
import type { CertStore } from './store.js';

export interface CopyOptions {
  /** Replace lineages and accounts the destination already has with different content. */
  replace?: boolean;
  /** Say what would happen; write nothing. */
  dryRun?: boolean;
  /** Told each item as it is handled. */
  onItem?: (item: CopyItem) => void;
}

export interface CopyItem {
  kind: 'lineage' | 'state' | 'account';
  /** The lineage or state name, or the account's directory URL. */
  name: string;
  action: 'copied' | 'unchanged' | 'kept-existing' | 'would-copy';
}

export interface CopyReport {
  from: string;
  to: string;
  items: CopyItem[];
  copied: number;
  unchanged: number;
  keptExisting: number;
}

/** Copies `from` into `to` (see the module comment). A failure stops the copy and rejects with the store's error; what was copied stays. */
export async function copyStore(from: CertStore, to: CertStore, options: CopyOptions = {}): Promise<CopyReport> {
  const items: CopyItem[] = [];
  const note = (item: CopyItem) => {
    items.push(item);
    options.onItem?.(item);
  };
  const act = (differs: boolean, exists: boolean): CopyItem['action'] =>
    !differs ? 'unchanged' : exists && !options.replace ? 'kept-existing' : options.dryRun ? 'would-copy' : 'copied';

  for (const account of await from.listAccounts()) {
    const there = await to.readAccount(account.directoryUrl);
    const action = act(JSON.stringify(there) !== JSON.stringify(account), there !== null);
    if (action === 'copied') await to.writeAccount(account);
    note({ kind: 'account', name: account.directoryUrl, action });
  }
  for (const name of await from.listLineages()) {
    const lineage = await from.readLineage(name);
    if (!lineage) continue;
    const there = await to.readLineage(name);
    const action = act(there?.bundle.fullchain !== lineage.bundle.fullchain || JSON.stringify(there?.meta) !== JSON.stringify(lineage.meta), there !== null);
    if (action === 'copied') {
      const unlock = await to.lock(name, { waitMs: 10_000 });
      try {
        await to.putVersion(name, lineage.bundle, lineage.meta, { lock: unlock });
      } finally {
        await unlock();
      }
    }
    note({ kind: 'lineage', name, action });
  }
  for (const name of await from.listStates()) {
    const state = await from.readState(name);
    if (!state) continue;
    const there = await to.readState(name);
    const action = act(JSON.stringify(there) !== JSON.stringify(state), there !== null);
    if (action === 'copied') await to.updateState(name, () => state);
    note({ kind: 'state', name, action });
  }
  return {
    from: from.location,
    to: to.location,
    items,
    copied: items.filter((i) => i.action === 'copied' || i.action === 'would-copy').length,
    unchanged: items.filter((i) => i.action === 'unchanged').length,
    keptExisting: items.filter((i) => i.action === 'kept-existing').length,
  };
}
