/**
 * Preloaded into a `padlock run` under test (`NODE_OPTIONS=--import ...`, see
 * `loopbackResolverEnv` in daemon.ts; cluster workers inherit it): the names
 * in PADLOCK_TEST_LOOPBACK_NAMES and `localhost` resolve to 127.0.0.1, IP
 * literals resolve as themselves, and every other name fails with ENOTFOUND.
 * A test can then give the daemon an upstream name that only resolves at
 * connect time, and the daemon never sends a DNS query (the test bed's rule).
 */
import dns from 'node:dns';
import { isIP } from 'node:net';

const names = new Set((process.env.PADLOCK_TEST_LOOPBACK_NAMES ?? '').split(',').map((s) => s.trim().toLowerCase()).filter(Boolean));
const original = dns.lookup;

dns.lookup = function lookup(hostname, options, callback) {
  if (typeof options === 'function') [callback, options] = [options, {}];
  if (typeof options === 'number') options = { family: options };
  const host = String(hostname).toLowerCase();
  if (isIP(host)) return original.call(dns, hostname, options, callback);
  if (host === 'localhost' || names.has(host)) {
    return process.nextTick(() => (options?.all ? callback(null, [{ address: '127.0.0.1', family: 4 }]) : callback(null, '127.0.0.1', 4)));
  }
  const err = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname} (test resolver: no DNS in tests)`), { code: 'ENOTFOUND', syscall: 'getaddrinfo', hostname });
  process.nextTick(() => callback(err));
};
