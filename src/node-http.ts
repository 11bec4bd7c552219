/**
 * `node:http`, loaded with `require` instead of an ESM `import`.
 *
 * Why: an ESM import of a built-in module builds its namespace from every
 * export, and reading node:http's `WebSocket`, `CloseEvent` and
 * `MessageEvent` exports (lazy getters since Node 22.5) loads Node's whole
 * bundled undici (fetch, WebSocket, ...). That cost about 13 MB of RSS in
 * every padlock process, for a WebSocket client padlock never uses
 * (bench: idle RSS, docs/BENCHMARKS.md). `require` returns the exports object
 * itself, whose getters run only if read.
 *
 * Every padlock module takes node:http from here (`import http from
 * '../node-http.js'`); a unit test keeps any other value import of
 * `node:http` out of src/. Type-only imports (`import type`) are free.
 */
import { createRequire } from 'node:module';
import type * as Http from 'node:http';

const http = createRequire(import.meta.url)('node:http') as typeof Http;
export default http;
export const { Agent } = http;
