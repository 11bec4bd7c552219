/**
 * `node:http`, loaded with `require` instead of an ESM `import`.
 *
 * Why: an ESM import of a built-in module builds its namespace from every
 * export, and reading node:http's `WebSocket`, `CloseEvent` and
 * `MessageEvent` exports (lazy getters since Node 22.5) loads Node's whole
 * bundled undici (fetch, WebSocket, ...), for a WebSocket client padlock
 * never uses: 13 MB of RSS in a bare Node process, 3–4 MB in an idle padlock
 * (bench: idle RSS, docs/BENCHMARKS.md). `require` returns the exports
 * object itself, whose getters run only if read.
 *
 * Every padlock module takes node:http's values from here (`import nodeHttp
 * from '../node-http.js'`, with `import type * as http from 'node:http'` for
 * its types); a unit test keeps any other value import of `node:http` out of
 * src/.
 */
import { createRequire } from 'node:module';
import type * as Http from 'node:http';

const http = createRequire(import.meta.url)('node:http') as typeof Http;
export default http;
export const { Agent } = http;
