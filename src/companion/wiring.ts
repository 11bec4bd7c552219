/**
 * Plugging the companion into padlock: building it from the run config,
 * answering HTTP-01 through nginx's document root, and feeding it the
 * lineages in the store (at start, and after each new certificate).
 */
import { errorMessage } from '../errors.js';
import type { Logger } from '../log.js';
import type { CertStore, Lineage, LineageMeta } from '../store/store.js';
import { WebrootResponder, type ChallengeResponder } from '../acme/http01.js';
import { LOCAL_ROOT_SERVER } from '../tls/local-ca.js';
import type { CompanionConfig } from './config.js';
import { Companion, type CompanionWriteResult } from './companion.js';
import type { CompanionCertificate } from './writer.js';
import type { ReloadMode } from './reloader.js';
import { createReloadDocker } from './docker-reload.js';

/** Builds a Companion from the parsed config, or null when companion mode is off (no companionDir). */
export function companionFromConfig(config: CompanionConfig & { dockerHost?: string | undefined }, logger?: Logger): Companion | null {
  if (!config.companionDir) return null;
  const docker = () => createReloadDocker(config.dockerHost ? { dockerHost: config.dockerHost } : {});
  const reload: ReloadMode =
    config.companionReload === 'exec'
      ? { kind: 'exec', labels: config.companionLabels, command: config.companionExec, timeoutMs: config.companionCommandTimeout * 1000, docker: docker() }
      : config.companionReload === 'signal'
      ? { kind: 'signal', labels: config.companionLabels, signal: config.companionSignal, docker: docker() }
      : config.companionReload === 'command'
        ? { kind: 'command', command: config.companionCommand ?? 'true', timeoutMs: config.companionCommandTimeout * 1000 }
        : { kind: 'none' };
  return new Companion({ dir: config.companionDir, reload, debounceMs: config.companionDebounceMs, ...(logger ? { logger } : {}) });
}

/**
 * In companion mode nginx owns port 80, so HTTP-01 is answered with files in
 * the document root nginx-proxy serves `/.well-known/acme-challenge/` from
 * (`/usr/share/nginx/html`, shared with padlock as acme-companion shares it).
 * Returns the responder for the certificate manager (prepared: the folder is
 * writable, or CHALLENGE_WEBROOT_UNWRITABLE) and the challenge to record in
 * lineage metadata; undefined when `companionWebroot` is not set.
 */
export async function companionChallenge(config: Pick<CompanionConfig, 'companionWebroot'>): Promise<{ responder: ChallengeResponder; challenge: LineageMeta['challenge'] } | undefined> {
  if (!config.companionWebroot) return undefined;
  const responder = new WebrootResponder(config.companionWebroot);
  await responder.prepare();
  return { responder, challenge: { type: 'webroot', webroot: config.companionWebroot } };
}

/** The companion's view of a stored lineage. */
export function lineageToCompanion(lineage: Lineage): CompanionCertificate {
  return {
    name: lineage.meta.name,
    domains: lineage.meta.domains,
    fullchainPem: lineage.bundle.fullchain,
    keyPem: lineage.bundle.privkey,
    chainPem: lineage.bundle.chain,
    certPem: lineage.bundle.cert,
  };
}

/**
 * Writes every current lineage (the local CA's root excepted) at start, so
 * nginx has every certificate even if padlock was down when one changed.
 * Unchanged files are left alone; one reload follows if anything changed.
 * Never throws; resolves with one result per lineage.
 */
export async function companionInitial(store: CertStore, companion: Companion): Promise<CompanionWriteResult[]> {
  const results: CompanionWriteResult[] = [];
  let names: string[] = [];
  try {
    names = await store.listLineages();
  } catch (err) {
    return [{ name: '*', ok: false, files: [], changed: false, error: `could not list the store: ${errorMessage(err)}` }];
  }
  for (const name of names) {
    let lineage: Lineage | null = null;
    try {
      lineage = await store.readLineage(name);
    } catch (err) {
      results.push({ name, ok: false, files: [], changed: false, error: errorMessage(err) });
      continue;
    }
    if (!lineage || lineage.meta.server === LOCAL_ROOT_SERVER) continue;
    results.push(await companion.onCertificate({ ...lineageToCompanion(lineage), name }));
  }
  return results;
}

/**
 * A `cert_obtained` listener for the certificate manager: reads the lineage
 * that was just stored and hands it to the companion. Never throws.
 */
export function companionListener(store: CertStore, companion: Companion): (e: { name: string }) => void {
  return ({ name }) => {
    void store.readLineage(name).then(
      (lineage) => (lineage ? companion.onCertificate({ ...lineageToCompanion(lineage), name }) : undefined),
      (err: unknown) => companion.emit('write_failed', { name, error: errorMessage(err) }),
    );
  };
}
