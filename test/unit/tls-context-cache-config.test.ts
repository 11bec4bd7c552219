/**
 * `--tls-context-cache` / `PADLOCK_TLS_CONTEXT_CACHE` / `tlsContextCache`:
 * how many TLS contexts a serving process keeps (tls/contexts.ts).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { envLayer, fromString, parseRunConfig } from '../../src/config/schema.js';
import { PadlockError } from '../../src/errors.js';

describe('the TLS context cache size setting', () => {
  const cases: Array<{ desc: string; layers: Parameters<typeof parseRunConfig>[0]; want: number | RegExp }> = [
    { desc: 'defaults to 1000', layers: {}, want: 1000 },
    { desc: 'is read from the config file', layers: { file: { tlsContextCache: 20000 } }, want: 20000 },
    { desc: 'is read from PADLOCK_TLS_CONTEXT_CACHE', layers: { env: envLayer({ PADLOCK_TLS_CONTEXT_CACHE: '250' }) }, want: 250 },
    { desc: 'the flag beats the env var and the file', layers: { file: { tlsContextCache: 5 }, env: envLayer({ PADLOCK_TLS_CONTEXT_CACHE: '6' }), flags: { tlsContextCache: fromString('tlsContextCache', '7') } }, want: 7 },
    { desc: 'refuses 0, naming the flag', layers: { flags: { tlsContextCache: 0 } }, want: /--tls-context-cache: tlsContextCache must be at least 1/ },
    { desc: 'refuses a number that is not whole', layers: { env: envLayer({ PADLOCK_TLS_CONTEXT_CACHE: '1.5' }) }, want: /PADLOCK_TLS_CONTEXT_CACHE/ },
    { desc: 'refuses words', layers: { flags: { tlsContextCache: fromString('tlsContextCache', 'lots') } }, want: /--tls-context-cache: .*\(got "lots"\)/ },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      if (typeof c.want === 'number') {
        assert.equal(parseRunConfig(c.layers).tlsContextCache, c.want);
        return;
      }
      assert.throws(() => parseRunConfig(c.layers), (err: unknown) => err instanceof PadlockError && err.code === 'CONFIG_INVALID' && (c.want as RegExp).test(err.message));
    });
  }
});
