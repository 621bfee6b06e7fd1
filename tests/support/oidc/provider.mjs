// A real OpenID provider for the tests: oauth2-mock-server, unmodified from the npm
// registry, on 127.0.0.1. Started by tests/support/oidc_provider.py:
//
//   node provider.mjs --port 43123 --keys /tmp/keys.json --algs RS256,ES256
//
// It serves the package's own endpoints (discovery, /jwks, /token, /authorize, ...)
// and prints `issuer <url>` once it listens. Two additions for the tests, both
// built on the package's public API:
//   - POST /token?kid=<kid> signs with that key (the package otherwise picks its
//     keys round-robin); a `claims` form field (JSON) is merged into the payload by
//     the package's beforeTokenSigning hook (a null value removes the claim).
//   - POST /_test/keys?alg=ES256 generates a new key (a new kid) and adds it to the
//     JWKS (key rotation); GET /_test/keys lists {kid, alg} oldest first.
//   - The browser sign-in (Authorization Code): the package has no login page and
//     authorizes at once, as "johndoe". POST /_test/person {"claims", "expires_in"}
//     names the person who signs in: the authorization_code and refresh_token grants'
//     access tokens carry those claims and live that long (their id_token carries the
//     same sub). Stricter than the package, as a provider is with a public client:
//     /authorize needs PKCE with S256 and the code exchange a code_verifier (the
//     package checks a verifier only when one is sent); a refresh token works once
//     and only if this provider issued it (the package takes any string).
// The private keys are kept in the --keys file, so a restart on the same port
// serves the same JWKS and keeps signing with the same keys.

import { AssertionError } from "node:assert";
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { parseArgs } from "node:util";
import { HttpServer, OAuth2Issuer, OAuth2Service } from "oauth2-mock-server";

const { values } = parseArgs({
  options: {
    port: { type: "string" },
    host: { type: "string", default: "127.0.0.1" },
    keys: { type: "string" },
    algs: { type: "string", default: "RS256,ES256" },
  },
});
if (!values.port || !values.keys) {
  console.error("usage: node provider.mjs --port N --keys FILE [--algs RS256,ES256]");
  process.exit(2);
}

const issuer = new OAuth2Issuer();
const service = new OAuth2Service(issuer);
// Every key in creation order: [{kid, alg, jwk}] (jwk holds the private fields).
const created = [];

async function addKey(jwk) {
  const added = await issuer.keys.add(jwk);
  created.push({ kid: added.kid, alg: added.alg, jwk: added });
  return added;
}

function saveKeys() {
  const tmp = `${values.keys}.new`;
  writeFileSync(tmp, JSON.stringify(created.map((k) => k.jwk)), { mode: 0o600 });
  renameSync(tmp, values.keys);
}

async function generateKey(alg) {
  const jwk = await issuer.keys.generate(alg);
  // generate() already added it to the store; keep our ordered copy.
  created.push({ kid: jwk.kid, alg: jwk.alg, jwk });
  saveKeys();
  return jwk;
}

if (existsSync(values.keys)) {
  for (const jwk of JSON.parse(readFileSync(values.keys, "utf8"))) {
    await addKey(jwk);
  }
} else {
  for (const alg of values.algs.split(",").filter(Boolean)) {
    await generateKey(alg);
  }
}

// The store hands out keys round-robin: get(kid) moves that key to the end, and a
// token is signed with the first. Moving every other key behind it makes `kid` next.
function signNextWith(kid) {
  if (!created.some((k) => k.kid === kid)) {
    return false;
  }
  for (const key of issuer.keys.toJSON(true)) {
    if (key.kid !== kid) {
      issuer.keys.get(key.kid);
    }
  }
  return true;
}

let person = { claims: { sub: "johndoe" }, expiresIn: 3600 };
const refreshTokens = new Set();
const SIGN_IN_GRANTS = new Set(["authorization_code", "refresh_token"]);

// The package answers an AssertionError thrown here with 400 invalid_request.
function refuse(message) {
  throw new AssertionError({ message });
}

function signInClaims(token, body) {
  const isAccessToken = "scope" in token.payload; // the id_token has none
  if (!isAccessToken) {
    token.payload.sub = person.claims.sub;
    return;
  }
  if (body.grant_type === "authorization_code" && !body.code_verifier) {
    refuse("code_verifier required: PKCE is mandatory for this client");
  }
  if (body.grant_type === "refresh_token" && !refreshTokens.delete(body.refresh_token)) {
    refuse("unknown or already used refresh_token");
  }
  Object.assign(token.payload, person.claims);
  token.payload.exp = token.payload.iat + person.expiresIn;
}

service.on("beforeResponse", (response, req) => {
  if (SIGN_IN_GRANTS.has(req.body?.grant_type) && response.statusCode === 200) {
    refreshTokens.add(response.body.refresh_token);
    response.body.expires_in = person.expiresIn;
  }
});

service.on("beforeTokenSigning", (token, req) => {
  if (SIGN_IN_GRANTS.has(req.body?.grant_type)) {
    signInClaims(token, req.body);
    return;
  }
  const wanted = req.query?.kid ?? new URL(req.url, "http://x").searchParams.get("kid");
  if (wanted && token.header.kid !== wanted) {
    throw new Error(`signing key ${token.header.kid} is not the requested ${wanted}`);
  }
  const raw = req.body?.claims;
  if (typeof raw === "string" && raw !== "") {
    for (const [name, value] of Object.entries(JSON.parse(raw))) {
      if (value === null) {
        delete token.payload[name];
      } else {
        token.payload[name] = value;
      }
    }
  }
});

function answer(res, status, body) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(body));
}

async function readJson(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}");
}

async function handle(req, res) {
  const url = new URL(req.url, "http://x");
  if (url.pathname === "/_test/person" && req.method === "POST") {
    const { claims, expires_in: expiresIn = 3600 } = await readJson(req);
    person = { claims, expiresIn };
    answer(res, 200, { claims, expires_in: expiresIn });
    return;
  }
  if (url.pathname === "/authorize" && url.searchParams.get("code_challenge_method") !== "S256") {
    answer(res, 400, { error: "invalid_request", error_description: "PKCE with S256 is required" });
    return;
  }
  if (url.pathname === "/_test/keys") {
    if (req.method === "POST") {
      const jwk = await generateKey(url.searchParams.get("alg") ?? "RS256");
      answer(res, 201, { kid: jwk.kid, alg: jwk.alg });
    } else {
      answer(res, 200, created.map(({ kid, alg }) => ({ kid, alg })));
    }
    return;
  }
  if (req.method === "POST" && url.pathname === "/token") {
    const kid = url.searchParams.get("kid");
    if (kid && !signNextWith(kid)) {
      answer(res, 400, { error: "invalid_request", error_description: `no key ${kid}` });
      return;
    }
  }
  service.requestHandler(req, res);
}

const server = new HttpServer((req, res) => {
  handle(req, res).catch((error) => answer(res, 500, { error: String(error) }));
});
await server.start(Number(values.port), values.host);
issuer.url = `http://${values.host}:${server.address().port}`;
console.log(`issuer ${issuer.url}`);

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.stop().finally(() => process.exit(0));
  });
}
