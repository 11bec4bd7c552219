/**
 * `--renew-cron` / `PADLOCK_RENEW_CRON` / `renewCron`: when the daemon checks
 * every certificate. Validated once at the boundary (croner's grammar), so a
 * typo fails at start instead of never firing.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { envLayer, parseRunConfig } from '../../src/config/schema.js';
import { PadlockError } from '../../src/errors.js';

describe('the renewal check schedule setting', () => {
  const cases: Array<{ desc: string; layers: Parameters<typeof parseRunConfig>[0]; want: string | RegExp }> = [
    { desc: 'defaults to every 10 minutes', layers: {}, want: '*/10 * * * *' },
    { desc: 'accepts five fields from the config file', layers: { file: { renewCron: '0 */6 * * *' } }, want: '0 */6 * * *' },
    { desc: 'accepts six fields (seconds first) from PADLOCK_RENEW_CRON', layers: { env: envLayer({ PADLOCK_RENEW_CRON: '30 */5 * * * *' }) }, want: '30 */5 * * * *' },
    { desc: 'accepts names of days', layers: { flags: { renewCron: '15 3 * * MON-FRI' } }, want: '15 3 * * MON-FRI' },
    { desc: 'refuses a minute out of range, naming the flag', layers: { flags: { renewCron: '61 * * * *' } }, want: /--renew-cron: renewCron must be a cron expression/ },
    { desc: 'refuses words', layers: { env: envLayer({ PADLOCK_RENEW_CRON: 'every ten minutes' }) }, want: /PADLOCK_RENEW_CRON/ },
    { desc: 'refuses too few fields', layers: { file: { renewCron: '* *' } }, want: /renewCron must be a cron expression/ },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      if (typeof c.want === 'string') {
        assert.equal(parseRunConfig(c.layers).renewCron, c.want);
        return;
      }
      assert.throws(() => parseRunConfig(c.layers), (err: unknown) => err instanceof PadlockError && err.code === 'CONFIG_INVALID' && (c.want as RegExp).test(err.message));
    });
  }
});
