import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { EMPTY_GRACE_BOOK, graceStep, type GraceBook } from '../../src/state/grace.js';
import type { ContainerPresence, DesiredState, SiteSpec } from '../../src/state/desired-state.js';

const T0 = new Date('2026-01-01T00:00:00Z');
const GRACE_MS = 300_000;
const at = (ms: number) => new Date(T0.getTime() + ms);

function site(host: string, container: string, over: Partial<SiteSpec> = {}): SiteSpec {
  return { host, upstreams: [{ url: 'http://127.0.0.1:8080', containerId: `id-${container}`, containerName: container }], https: true, redirect: true, issuer: 'acme', ...over };
}
const running = (name: string, asks: string[], id = `id-${name}`): ContainerPresence => ({ id, name, running: true, asks });
const stopped = (name: string, id = `id-${name}`): ContainerPresence => ({ id, name, running: false });
const state = (sites: SiteSpec[], containers?: ContainerPresence[]): DesiredState => ({ sites, problems: [], ...(containers ? { containers } : {}) });

/** The book after serving `sites` once. */
const served = (...sites: SiteSpec[]): GraceBook => graceStep(EMPTY_GRACE_BOOK, state(sites, []), T0, GRACE_MS).book;

/** Hosts served after a step, each with ':grace' when in its grace period. */
const hosts = (s: DesiredState) => s.sites.map((x) => (x.graceUntil ? `${x.host}:grace` : x.host));

describe('graceStep: the name whose last container went away', () => {
  const cases: Array<{ desc: string; before: GraceBook; next: DesiredState; graceMs?: number; want: string[]; change: string }> = [
    {
      desc: 'keeps the name in its grace period when its container still exists, stopped (docker stop, a crash, a restart policy)',
      before: served(site('a.example.com', 'web')),
      next: state([], [stopped('web')]),
      want: ['a.example.com:grace'],
      change: 'started',
    },
    {
      desc: 'keeps the name when a new container has the old one\'s name, not started yet (docker compose up -d recreates)',
      before: served(site('a.example.com', 'app-web-1')),
      next: state([], [stopped('app-web-1', 'id-new'), stopped('0123456789ab_app-web-1', 'id-app-web-1')]),
      want: ['a.example.com:grace'],
      change: 'started',
    },
    {
      desc: 'keeps the name when its container runs but cannot be routed (unhealthy) and still asks for it',
      before: served(site('a.example.com', 'web')),
      next: state([], [running('web', ['a.example.com'])]),
      want: ['a.example.com:grace'],
      change: 'started',
    },
    {
      desc: 'drops the name at once when no container by that id or name exists (docker rm -f, compose down)',
      before: served(site('a.example.com', 'web')),
      next: state([], [stopped('other')]),
      want: [],
      change: 'removed:destroyed',
    },
    {
      desc: 'drops the name at once when the container by that name runs with labels that no longer ask for it',
      before: served(site('a.example.com', 'web')),
      next: state([site('b.example.com', 'web', { upstreams: [{ url: 'http://127.0.0.1:8080', containerId: 'id-new', containerName: 'web' }] })], [running('web', ['b.example.com'], 'id-new')]),
      want: ['b.example.com'],
      change: 'removed:relabelled',
    },
    {
      desc: 'drops the name at once with a grace period of 0 (--route-grace 0)',
      before: served(site('a.example.com', 'web')),
      next: state([], [stopped('web')]),
      graceMs: 0,
      want: [],
      change: 'removed:no-grace',
    },
    {
      desc: 'counts a loss as stopped when the source lists no containers at all',
      before: served(site('a.example.com', 'web')),
      next: state([]),
      want: ['a.example.com:grace'],
      change: 'started',
    },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const step = graceStep(c.before, c.next, T0, c.graceMs ?? GRACE_MS);
      assert.deepEqual(hosts(step.state), c.want);
      const change = step.changes.find((x) => x.host === 'a.example.com');
      assert.equal(change && (change.kind === 'removed' ? `removed:${change.reason}` : change.kind), c.change);
    });
  }

  it('serves the graced name with its settings, no upstream, and graceUntil = now + the grace period', () => {
    const step = graceStep(served(site('a.example.com', 'web', { hstsMaxAge: 60, upstreamWait: 7 })), state([], [stopped('web')]), T0, GRACE_MS);
    assert.deepEqual(step.state.sites, [{ ...site('a.example.com', 'web', { hstsMaxAge: 60, upstreamWait: 7 }), upstreams: [], graceUntil: at(GRACE_MS).toISOString() }]);
    assert.deepEqual(step.nextExpiry, at(GRACE_MS));
  });

  it('leaves names that are still served, and the problems, as they are', () => {
    const keep = site('b.example.com', 'other');
    const next: DesiredState = { sites: [keep], problems: [{ code: 'LABEL_INVALID_PORT', message: 'bad', containerName: 'x' }], containers: [stopped('web'), running('other', ['b.example.com'])] };
    const step = graceStep(served(site('a.example.com', 'web'), keep), next, T0, GRACE_MS);
    assert.deepEqual(hosts(step.state), ['a.example.com:grace', 'b.example.com']);
    assert.equal(step.state.sites[1], keep);
    assert.deepEqual(step.state.problems, next.problems);
  });
});

describe('graceStep: a name in its grace period', () => {
  const inGrace = graceStep(served(site('a.example.com', 'web')), state([], [stopped('web')]), T0, GRACE_MS).book;
  const cases: Array<{ desc: string; next: DesiredState; now: Date; want: string[]; change: string | undefined }> = [
    {
      desc: 'stays while the grace period runs and nothing serves it',
      next: state([], [stopped('web')]),
      now: at(GRACE_MS - 1),
      want: ['a.example.com:grace'],
      change: undefined,
    },
    {
      desc: 'stays when its stopped container is then removed (docker stop, docker rm, docker run)',
      next: state([], []),
      now: at(1_000),
      want: ['a.example.com:grace'],
      change: undefined,
    },
    {
      desc: 'comes back as soon as a container serves it again',
      next: state([site('a.example.com', 'web-new')], [running('web-new', ['a.example.com'])]),
      now: at(2_000),
      want: ['a.example.com'],
      change: 'back',
    },
    {
      desc: 'ends when the grace period is over: the name is no longer served',
      next: state([], [stopped('web')]),
      now: at(GRACE_MS),
      want: [],
      change: 'expired',
    },
    {
      desc: 'ends when a container by the old name runs without asking for the name',
      next: state([], [running('web', [], 'id-new')]),
      now: at(2_000),
      want: [],
      change: 'relabelled',
    },
  ];
  for (const c of cases) {
    it(c.desc, () => {
      const step = graceStep(inGrace, c.next, c.now, GRACE_MS);
      assert.deepEqual(hosts(step.state), c.want);
      assert.equal(step.changes.find((x) => x.host === 'a.example.com')?.kind, c.change);
    });
  }

  it('keeps its end time on later steps (a new listing does not extend it)', () => {
    const later = graceStep(inGrace, state([], [stopped('web')]), at(60_000), GRACE_MS);
    assert.equal(later.state.sites[0]?.graceUntil, at(GRACE_MS).toISOString());
    assert.deepEqual(later.nextExpiry, at(GRACE_MS));
  });

  it('starts a fresh grace period when the name is lost again after coming back', () => {
    const back = graceStep(inGrace, state([site('a.example.com', 'web')], [running('web', ['a.example.com'])]), at(10_000), GRACE_MS).book;
    const again = graceStep(back, state([], [stopped('web')]), at(20_000), GRACE_MS);
    assert.equal(again.state.sites[0]?.graceUntil, at(20_000 + GRACE_MS).toISOString());
  });

  it('reports the earliest end as nextExpiry when several names are in grace', () => {
    const two = graceStep(served(site('a.example.com', 'web'), site('b.example.com', 'api')), state([], [stopped('web'), stopped('api')]), T0, GRACE_MS).book;
    const third = graceStep(graceStep(two, state([site('c.example.com', 'c')], [stopped('web'), stopped('api'), running('c', ['c.example.com'])]), at(1_000), GRACE_MS).book,
      state([], [stopped('web'), stopped('api'), stopped('c')]), at(5_000), GRACE_MS);
    assert.deepEqual(hosts(third.state), ['a.example.com:grace', 'b.example.com:grace', 'c.example.com:grace']);
    assert.deepEqual(third.nextExpiry, at(GRACE_MS));
  });
});
