/**
 * The parts of undici padlock uses (Agent, Pool, buildConnector, and the
 * `request` API the health checks call on an Agent), each loaded from its
 * own file.
 *
 * Why not `import ... from 'undici'`: its index also loads fetch, WebSocket,
 * EventSource, the cache and cookie code and their web-platform helpers,
 * about 11 MB of RSS in every padlock process (bench: idle RSS) for code
 * padlock never runs. These paths are undici's internal layout, which is why
 * package.json pins undici to an exact version; the proxy and health-check tests
 * exercise all four, so an upgrade that moves them fails there, not in production.
 */
import { createRequire } from 'node:module';
import type * as Undici from 'undici';

const load = createRequire(import.meta.url);

/** undici's Agent (one dispatcher over a pool per origin). */
export const Agent = load('undici/lib/dispatcher/agent.js') as typeof Undici.Agent;
/** undici's Pool (keep-alive connections to one origin). */
export const Pool = load('undici/lib/dispatcher/pool.js') as typeof Undici.Pool;
/** undici's connector builder (TCP/TLS connect with a lookup and timeouts). */
export const buildConnector = load('undici/lib/core/connect.js') as typeof Undici.buildConnector;
/**
 * undici's `request` API, called with a dispatcher as `this`
 * (`request.call(agent, options)`): the index attaches it to
 * `Dispatcher.prototype`, which loading the parts alone does not.
 */
export const request = load('undici/lib/api/api-request.js') as (this: Undici.Dispatcher, options: Undici.Dispatcher.RequestOptions) => Promise<Undici.Dispatcher.ResponseData>;
