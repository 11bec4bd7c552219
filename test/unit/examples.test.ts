/**
 * The example compose files, checked as far as this machine allows (no image
 * can be pulled here, so none is started): every padlock setting must pass
 * the real config schema, and every app's labels and env vars must give a
 * route through the real discovery rules, with no problem reported.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'yaml';
import { envLayer, parseRunConfig } from '../../src/config/schema.js';
import { buildDesiredState } from '../../src/docker/labels.js';
import type { ContainerInfo } from '../../src/docker/container.js';
import { repoRoot } from '../support/cli.js';

type Service = { image?: string; environment?: Record<string, string> | string[]; labels?: Record<string, string> | string[]; expose?: string[]; network_mode?: string };

function composeFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((entry) => {
    const p = join(dir, entry);
    if (statSync(p).isDirectory()) return composeFiles(p);
    return /^(docker-)?compose\.ya?ml$/.test(entry) ? [p] : [];
  });
}

/** Compose allows a mapping or a KEY=VALUE list; `${VAR:-default}` takes its default. */
function toMap(v: Record<string, string> | string[] | undefined): Record<string, string> {
  const entries = Array.isArray(v) ? v.map((s) => [s.slice(0, s.indexOf('=')), s.slice(s.indexOf('=') + 1)]) : Object.entries(v ?? {});
  return Object.fromEntries(entries.map(([k, val]) => [k, String(val).replace(/\$\{[A-Z_]+:-([^}]*)\}/g, '$1')]));
}

const files = composeFiles(join(repoRoot, 'examples'));

describe('example compose files', () => {
  it('exist for the proxy, companion, local-dev and migration examples', () => {
    const rel = files.map((f) => f.slice(repoRoot.length));
    for (const dir of ['examples/proxy/', 'examples/companion-nginx/', 'examples/local-dev/']) {
      assert.ok(rel.some((f) => f.startsWith(dir)), `${dir} has a compose file`);
    }
  });

  for (const file of files) {
    const name = file.slice(repoRoot.length);
    const doc = parse(readFileSync(file, 'utf8')) as { services: Record<string, Service> };

    it(`${name}: padlock's settings pass the config schema`, () => {
      const padlock = Object.entries(doc.services).filter(([, s]) => String(s.image ?? '').startsWith('padlock'));
      assert.ok(padlock.length > 0, 'a padlock service');
      for (const [svc, s] of padlock) {
        assert.doesNotThrow(() => parseRunConfig({ env: envLayer(toMap(s.environment)) }), `service ${svc}`);
      }
    });

    const apps = Object.entries(doc.services).filter(([, s]) => {
      const env = toMap(s.environment);
      const labels = toMap(s.labels);
      return 'padlock.host' in labels || 'VIRTUAL_HOST' in env;
    });
    if (apps.length === 0) continue;
    it(`${name}: every app's labels and env vars route without a problem`, () => {
      const containers: ContainerInfo[] = apps.map(([svc, s], i) => ({
        id: `${i}`.padStart(12, '0'),
        name: svc,
        labels: toMap(s.labels),
        env: toMap(s.environment),
        running: true,
        networkMode: s.network_mode ?? 'bridge',
        networks: { [`${name}_default`]: { ip: `172.30.0.${i + 2}` } },
        exposedPorts: (s.expose ?? []).map(Number),
        createdAt: new Date(i * 1000).toISOString(),
      }));
      const state = buildDesiredState(containers, { exposedByDefault: true, localSuffixes: ['localhost', 'internal', 'home.arpa'] });
      assert.deepEqual(state.problems, []);
      for (const [svc, s] of apps) {
        const hosts = (toMap(s.labels)['padlock.host'] ?? toMap(s.environment)['VIRTUAL_HOST'] ?? '').split(',').map((h) => h.trim()).filter(Boolean);
        for (const h of hosts) assert.ok(state.sites.some((site) => site.host === h), `${svc} routes ${h}`);
      }
    });
  }
});
