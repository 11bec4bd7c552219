/**
 * What the CA (Pebble) counted, read from its log. Pebble logs running
 * totals ("There are now N orders in the db", "… authorizations …",
 * "… accounts in memory") and one "Issued certificate serial S" line per
 * certificate. test/support/pebble.ts keeps only the last megabyte of a long
 * output, so the log is scanned every few seconds during a round: the totals
 * keep their highest value, and every serial seen is remembered, so a line
 * cut later still counts.
 */

export interface CaCounts {
  orders?: number;
  authorizations?: number;
  accounts?: number;
  /** Distinct serials of "Issued certificate" lines seen in any scan. */
  certificates: number;
  /** Whether the kept log was ever cut between two scans (lines may have been missed). */
  gap: boolean;
}


export class CaLog {
  private readonly serials = new Set<string>();
  private readonly totals: Record<'orders' | 'authorizations' | 'accounts', number | undefined> = { orders: undefined, authorizations: undefined, accounts: undefined };
  private lastTail: string | undefined;
  private gap = false;

  /** Reads the log as kept now; call it often enough that no more than about 1 MB is logged between calls. */
  scan(log: string): void {
    // The tail of the previous scan must still be there, or the cut took lines never scanned.
    if (this.lastTail !== undefined && !log.includes(this.lastTail)) this.gap = true;
    this.lastTail = log.slice(-200);
    const max = (key: keyof typeof this.totals, re: RegExp): void => {
      for (const m of log.matchAll(re)) this.totals[key] = Math.max(this.totals[key] ?? 0, Number(m[1]));
    };
    max('orders', /There are now (\d+) orders in the db/g);
    max('authorizations', /There are now (\d+) authorizations in the db/g);
    max('accounts', /There are now (\d+) accounts in (?:the db|memory)/g);
    for (const m of log.matchAll(/Issued certificate serial (\S+)/g)) this.serials.add(m[1]!);
  }

  counts(): CaCounts {
    const { orders, authorizations, accounts } = this.totals;
    return {
      ...(orders !== undefined ? { orders } : {}),
      ...(authorizations !== undefined ? { authorizations } : {}),
      ...(accounts !== undefined ? { accounts } : {}),
      certificates: this.serials.size,
      gap: this.gap,
    };
  }
}
