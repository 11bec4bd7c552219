/**
 * One TCP connect to an upstream, to learn whether it is back, under the
 * same upstream rules as a forwarded request (upstream-connect.ts): an IP
 * literal padlock refuses is never dialled, and a name is connected only to
 * addresses the rules allow. Nothing is sent: the socket is closed as soon as
 * it connects, so the app sees an empty connection.
 */
import net, { type LookupFunction } from 'node:net';
import { guardedLookup, type CurrentGuard } from './upstream-connect.js';

/** Resolves true when a TCP connection to `url`'s host and port opens within `timeoutMs`; never rejects. */
export function probeConnect(url: URL, guard: CurrentGuard, timeoutMs: number, lookup?: LookupFunction): Promise<boolean> {
  const port = Number(url.port) || (url.protocol === 'https:' ? 443 : 80);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (guard().check(host, port)) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = net.connect({ host, port, lookup: guardedLookup(guard, port, lookup), timeout: timeoutMs });
    const done = (up: boolean): void => {
      socket.destroy();
      resolve(up);
    };
    socket.once('connect', () => done(true));
    socket.once('timeout', () => done(false));
    socket.once('error', () => done(false));
  });
}
