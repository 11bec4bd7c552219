// Stands in for acme-client's axios instance (acme-client/src/axios.js) in padlock's bundle.
// padlock replaces acme-client's HTTP transport with its own (src/acme/client.ts) and never
// calls acme-client's challenge self-checks (verify.js), so axios, its adapters and Node's
// bundled fetch, which axios probes at load, are never used: loading them cost about 0.1 s of
// every `padlock issue`. A call that reaches this stub is a padlock bug, and says so.
'use strict';

function unused() {
  throw new Error("internal: acme-client called axios, which padlock's bundle leaves out (src/acme/client.ts replaces its transport)");
}

module.exports = {
  request: unused,
  get: unused,
  head: unused,
  post: unused,
  defaults: { acmeSettings: { httpChallengePort: 80, httpsChallengePort: 443, tlsAlpnChallengePort: 443, retryMaxAttempts: 5, retryDefaultDelay: 5 } },
};
