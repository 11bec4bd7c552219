/**
 * ACME certificate profiles (draft-ietf-acme-profiles, sections 3 and 4):
 * which profiles a CA offers, and which one to ask for. Pure.
 */
import { PadlockError } from '../errors.js';

/** Let's Encrypt's 6-day profile, the only one under which it issues IP address certificates. */
export const SHORTLIVED_PROFILE = 'shortlived';

/** The profile names a directory's `meta.profiles` offers (draft-ietf-acme-profiles section 3), in the CA's order. */
export function offeredProfiles(directoryMeta: unknown): string[] {
  const profiles = (directoryMeta as { profiles?: unknown } | undefined)?.profiles;
  if (typeof profiles !== 'object' || profiles === null || Array.isArray(profiles)) return [];
  return Object.keys(profiles);
}

export interface ProfileChoice {
  /** The `profile` to put in newOrder; absent means let the CA pick its default. */
  profile?: string;
  /** Say this to the operator (a preferred profile the CA does not offer). */
  warning?: string;
  /** What the CA offers, for messages. */
  offered: string[];
}

/**
 * Checks the wanted profile against the directory's `meta` (pass
 * `directory.meta`). A preferred `profile` the CA does not offer falls back
 * to the CA's default with a warning (the draft, section 4: clients SHOULD NOT
 * request a profile that is not advertised). A `requiredProfile` the CA does
 * not offer throws CONFIG_INVALID naming the offered ones; when both are
 * given, the required one wins. `context.server` and `context.names` make the
 * messages say which CA and certificate.
 */
export function checkProfile(
  directoryMeta: unknown,
  wanted: { profile?: string; requiredProfile?: string },
  context: { server?: string; names?: string[] } = {},
): ProfileChoice {
  const offered = offeredProfiles(directoryMeta);
  const ca = context.server ? `the CA at ${context.server}` : 'the CA';
  const forNames = context.names?.length ? ` for ${context.names.join(', ')}` : '';
  const offeredText = offered.length ? `it offers ${offered.map((p) => `"${p}"`).join(', ')}` : 'it offers no profiles';
  if (wanted.requiredProfile !== undefined) {
    if (offered.includes(wanted.requiredProfile)) return { profile: wanted.requiredProfile, offered };
    throw new PadlockError('CONFIG_INVALID',
      `the required profile "${wanted.requiredProfile}"${forNames} is not offered by ${ca} (${offeredText}); choose one of those, or use --profile to accept the CA's default when it is missing`,
      { details: { requiredProfile: wanted.requiredProfile, offeredProfiles: offered } });
  }
  if (wanted.profile === undefined) return { offered };
  if (offered.includes(wanted.profile)) return { profile: wanted.profile, offered };
  return {
    offered,
    warning: `the preferred profile "${wanted.profile}"${forNames} is not offered by ${ca} (${offeredText}); using the CA's default profile. Use --required-profile to fail instead`,
  };
}
