import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { envLayer, parseRunConfig } from '../../src/config/schema.js';
import { DEFAULT_HTTP2_LIMITS, http2Limits, http2LimitsFromConfig, http2ServerOptions } from '../../src/proxy/h2-limits.js';

describe('HTTP/2 limits: config keys to the listener', () => {
  const table = [
    { desc: 'on by default, with the documented defaults (250 streams, 32 KiB heads, 10 MiB, 75 s idle, 10 s SETTINGS, 1000 resets + 33/s)', env: {}, want: { ...DEFAULT_HTTP2_LIMITS } },
    { desc: 'PADLOCK_HTTP2=false turns it off', env: { PADLOCK_HTTP2: 'false' }, want: false as const },
    {
      desc: 'every limit has its env var; seconds become milliseconds',
      env: {
        PADLOCK_HTTP2_MAX_CONCURRENT_STREAMS: '100', PADLOCK_HTTP2_MAX_HEADER_LIST_SIZE: '8192', PADLOCK_HTTP2_MAX_SESSION_MEMORY: '4',
        PADLOCK_HTTP2_IDLE_TIMEOUT: '30', PADLOCK_HTTP2_SETTINGS_TIMEOUT: '2.5', PADLOCK_HTTP2_RESET_BURST: '500', PADLOCK_HTTP2_RESET_RATE: '10',
      },
      want: { maxConcurrentStreams: 100, maxHeaderListSize: 8192, maxSessionMemoryMiB: 4, idleTimeoutMs: 30_000, settingsTimeoutMs: 2_500, resetBurst: 500, resetRate: 10 },
    },
  ];
  for (const c of table) it(c.desc, () => assert.deepEqual(http2LimitsFromConfig(parseRunConfig({ env: envLayer(c.env) })), c.want));

  const bad = [
    { desc: 'zero concurrent streams', flags: { http2MaxConcurrentStreams: 0 }, error: /http2MaxConcurrentStreams must be at least 1/ },
    { desc: 'a header list below 1 KiB', flags: { http2MaxHeaderListSize: 100 }, error: /http2MaxHeaderListSize must be at least 1024/ },
    { desc: 'a reset burst of 0', flags: { http2ResetBurst: 0 }, error: /http2ResetBurst must be at least 1/ },
  ];
  for (const c of bad) it(`refuses ${c.desc}, naming the flag`, () => assert.throws(() => parseRunConfig({ flags: c.flags }), c.error));

  it('the listener options carry every limit, and never advertise extended CONNECT', () => {
    const options = http2ServerOptions(http2Limits({ maxConcurrentStreams: 7, resetBurst: 9, resetRate: 3, maxSessionMemoryMiB: 2, maxHeaderListSize: 2048 }));
    assert.deepEqual(options, {
      settings: { maxConcurrentStreams: 7, maxHeaderListSize: 2048, enableConnectProtocol: false, enablePush: false },
      maxSessionMemory: 2,
      streamResetBurst: 9,
      streamResetRate: 3,
    });
  });
});
