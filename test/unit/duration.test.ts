import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseDurationMs } from '../../src/config/duration.js';

describe('parseDurationMs', () => {
  const cases: Array<{ desc: string; input: string; want: number | undefined }> = [
    { desc: 'a bare number is seconds', input: '10', want: 10_000 },
    { desc: 'decimal seconds', input: '1.5', want: 1_500 },
    { desc: 'seconds with a unit', input: '10s', want: 10_000 },
    { desc: 'milliseconds', input: '500ms', want: 500 },
    { desc: 'minutes', input: '2m', want: 120_000 },
    { desc: 'units in any case, spaces around', input: ' 3 S ', want: 3_000 },
    { desc: 'zero', input: '0', want: 0 },
    { desc: 'a negative number is refused', input: '-1', want: undefined },
    { desc: 'words are refused', input: 'soon', want: undefined },
    { desc: 'an unknown unit is refused', input: '1h', want: undefined },
    { desc: 'empty is refused', input: '', want: undefined },
  ];
  for (const c of cases) it(c.desc, () => assert.equal(parseDurationMs(c.input), c.want));
});
