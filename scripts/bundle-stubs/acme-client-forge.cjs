// Stands in for acme-client's node-forge helpers (acme-client/src/crypto/forge.js, exported as
// `acme.forge`) in padlock's bundle. padlock uses acme-client's `crypto` helpers and its Client,
// never `forge`; loading node-forge cost about 40 ms of every `padlock issue`.
'use strict';

function unused() {
  throw new Error("internal: acme.forge was called, which padlock's bundle leaves out");
}

module.exports = new Proxy({}, { get: (_target, name) => (name === '__esModule' ? false : unused) });
