// seau's web page: a client of the JSON API under /api/v1, like any other client.
//
// Plain modern JavaScript, no framework and no build step. The DOM is only ever built
// with createElement and textContent: file names come from uploaders, and the page's
// CSP (Trusted Types with no policy) refuses every HTML-string sink anyway.

const API = "/api/v1";
const SESSION_KEY = "seau.session";
const PARALLEL_UPLOADS = 3;
const SEARCH_DELAY_MS = 250;
const EXPIRED_MESSAGE = "Your session has expired. Please sign in again.";
const NETWORK_MESSAGE = "Network error: the server could not be reached.";
const MiB = 1024 * 1024;
// From this size on a file goes up with tus (/api/v1/uploads), which survives a dropped
// connection and a page reload; below it, one plain POST is quicker and costs little to
// repeat.
const RESUMABLE_FROM_BYTES = 8 * MiB;
// One PATCH per chunk: what a failure in the middle of a request can cost at most.
const RESUMABLE_CHUNK_BYTES = 8 * MiB;
const RESUMABLE_RETRY_DELAYS_MS = [0, 1000, 3000, 5000, 10000];
// A provider's token is renewed this long before it expires (a quarter of its life when
// that is shorter); a request that finds that moment past renews it first.
const REFRESH_MARGIN_MS = 60_000;
const REFRESH_RETRY_MS = 5_000;
const SIGNED_OUT_MESSAGE = "You have signed out.";

const $ = (id) => document.getElementById(id);

function el(tag, { className, text, attrs } = {}, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attrs ?? {})) node.setAttribute(name, value);
  node.append(...children);
  return node;
}

// ---------------------------------------------------------------- formatting

const sizeUnits = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

// The type shown is the one detected from the bytes; the uploader's claim, when it
// differs, is in the tooltip.
function typeTitle(item) {
  const declared = item.declared_type;
  if (!declared || declared === item.content_type) return `${item.content_type} (detected)`;
  return `${item.content_type} (detected; declared ${declared})`;
}

function formatSize(bytes) {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < sizeUnits.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = unit === 0 || value >= 10 ? 0 : 1;
  const number = new Intl.NumberFormat(undefined, { maximumFractionDigits: digits }).format(value);
  return `${number} ${sizeUnits[unit]}`;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

function formatDate(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateFormat.format(date);
}

function plural(count, word) {
  return `${count} ${word}${count === 1 ? "" : "s"}`;
}

let announceTimer = 0;

// One polite live region for confirmations; errors use role="alert" where they appear.
function announce(text) {
  const announcer = $("announcer");
  announcer.textContent = "";
  clearTimeout(announceTimer);
  // A short gap makes screen readers repeat a message identical to the last one.
  announceTimer = setTimeout(() => {
    announcer.textContent = text;
  }, 60);
}

// ---------------------------------------------------------------- the API

class ApiError extends Error {
  constructor({ status, code, title, detail, errors }) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.code = code ?? `http_${status}`;
    this.title = title ?? "";
    this.detail = detail ?? "";
    this.errors = Array.isArray(errors) ? errors : [];
  }
}

class SessionExpired extends Error {}

function networkError() {
  return new ApiError({ status: 0, code: "network_error", detail: NETWORK_MESSAGE });
}

function problemFrom(status, text) {
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object") return new ApiError({ ...body, status });
  } catch {
    // Not problem+json: a proxy's error page, say. Fall through to a generic message.
  }
  return new ApiError({ status, detail: `The server answered ${status}.` });
}

// What to show a person: the problem's title and detail, with byte counts made readable.
function describe(error) {
  if (!(error instanceof ApiError)) return String(error?.message ?? error);
  if (error.code === "network_error") return error.detail;
  const detail = error.detail.replace(/\b(\d{4,}) bytes\b/g, (_, n) => formatSize(Number(n)));
  if (!error.title || detail.toLowerCase() === error.title.toLowerCase()) return detail || error.title;
  if (!detail) return error.title;
  return `${error.title}: ${detail}`;
}

async function api(path, { method = "GET", json, form, auth = true } = {}) {
  const headers = { Accept: "application/json" };
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = new URLSearchParams(form);
  }
  if (auth) {
    if (!current) throw new SessionExpired();
    headers.Authorization = `Bearer ${await tokenOf(current)}`;
  }
  let response;
  try {
    response = await fetch(`${API}${path}`, { method, headers, body, cache: "no-store" });
  } catch {
    throw networkError();
  }
  if (response.ok) return response;
  const error = problemFrom(response.status, await response.text().catch(() => ""));
  if (auth && response.status === 401) {
    expireSession();
    throw new SessionExpired();
  }
  throw error;
}

// The one upload transport: everything about how bytes reach the server lives here.
// Large files go with tus (resumable); the rest as one raw POST. Resolves when the file
// is stored; rejects with an ApiError, or an AbortError after abort().
// `getToken` resolves to the bearer token for the next request: a provider's token may
// be renewed while a long upload runs.
// `key` is the upload's Idempotency-Key: the same for every try of one picked file, so
// that retrying an upload whose answer was lost answers the stored file, not a copy.
function sendFile(file, { key, getToken, onProgress, onWaiting = () => {} }) {
  // On S3 the server names the size from which files go straight to the bucket.
  const direct = signInOptions.direct_uploads;
  if (direct && file.size >= direct.multipart_threshold_bytes) {
    return sendDirect(file, { key, getToken, onProgress, onWaiting });
  }
  // Without the tus script (blocked, or failed to load) every file takes the plain way.
  if (file.size >= RESUMABLE_FROM_BYTES && globalThis.tus?.isSupported) {
    return sendResumable(file, { getToken, onProgress, onWaiting });
  }
  return sendWhole(file, { key, getToken, onProgress });
}

// A random Idempotency-Key. crypto.randomUUID exists only in secure contexts; the page
// may be served over plain HTTP on a private network, where getRandomValues still is.
function newIdempotencyKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Raw body with ?name=: one file per request (one progress bar each), and the server
// refuses an oversized file from its Content-Length before any byte is stored.
function sendWhole(file, { key, getToken, onProgress }) {
  const xhr = new XMLHttpRequest();
  let aborted = false;
  const promise = new Promise((resolve, reject) => {
    const send = (token) => {
      if (aborted) return;
      xhr.open("POST", `${API}/files?name=${encodeURIComponent(file.name)}`);
      xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      xhr.setRequestHeader("Accept", "application/json");
      if (key) xhr.setRequestHeader("Idempotency-Key", key);
      // The server would parse a multipart/* body as a form: such files go as plain bytes.
      const type = file.type && !/^multipart\//i.test(file.type) ? file.type : "application/octet-stream";
      xhr.setRequestHeader("Content-Type", type);
      xhr.send(file);
    };
    getToken().then(send, reject);
    xhr.upload.addEventListener("progress", (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total);
    });
    xhr.addEventListener("load", () => {
      if (xhr.status === 201) {
        try {
          resolve(JSON.parse(xhr.responseText));
        } catch {
          reject(new ApiError({ status: xhr.status, detail: "The server's answer was unreadable." }));
        }
      } else {
        reject(problemFrom(xhr.status, xhr.responseText));
      }
    });
    xhr.addEventListener("error", () => reject(networkError()));
    xhr.addEventListener("abort", () => reject(new DOMException("Upload cancelled", "AbortError")));
  });
  const abort = () => {
    aborted = true;
    xhr.abort();
    return Promise.resolve();
  };
  return { promise, abort };
}

// Upload URLs this page is writing to: the same file picked twice must make two uploads,
// not have the second resume (and fight over) the first one's.
const resumableInUse = new Set();

// tus with tus-js-client. Each upload's URL is kept in localStorage under the file's
// name, type, size and date until it completes, so the same file picked again (after a
// reload, a failure, a new sign-in) continues where the server stands instead of
// starting over. A dropped request is retried from the server's offset (HEAD, then
// PATCH); while the browser says it is offline, the upload waits for the network.
function sendResumable(file, { getToken, onProgress, onWaiting }) {
  let upload = null;
  let finished = false;
  let fail = () => {};
  const resume = () => {
    onWaiting(false);
    if (!finished) upload.start();
  };
  const finish = () => {
    finished = true;
    window.removeEventListener("online", resume);
    resumableInUse.delete(upload.url);
  };
  const promise = new Promise((resolve, reject) => {
    fail = reject;
    const metadata = { filename: file.name };
    if (file.type) metadata.filetype = file.type;
    upload = new tus.Upload(file, {
      endpoint: new URL(`${API}/uploads`, location.href).href,
      // Every request (PATCH after PATCH) carries the token current at that moment: the
      // upload belongs to the person, not to the token that created it.
      onBeforeRequest: async (request) => {
        request.setHeader("Authorization", `Bearer ${await getToken()}`);
      },
      metadata,
      chunkSize: RESUMABLE_CHUNK_BYTES,
      retryDelays: RESUMABLE_RETRY_DELAYS_MS,
      storeFingerprintForResuming: true,
      removeFingerprintOnSuccess: true,
      onUploadUrlAvailable: () => resumableInUse.add(upload.url),
      onProgress: (sent, total) => onProgress(sent, total),
      onSuccess: () => {
        finish();
        resolve(null);
      },
      onError: (error) => {
        const failure = tusFailure(error);
        // tus-js-client does not retry while offline: wait for the network instead of
        // failing, then continue from wherever the server got to.
        if (failure.code === "network_error" && navigator.onLine === false && !finished) {
          onWaiting(true);
          window.addEventListener("online", resume, { once: true });
          return;
        }
        finish();
        reject(failure);
      },
    });
    upload
      .findPreviousUploads()
      .then((previous) => {
        const newest = previous
          .filter((earlier) => !resumableInUse.has(earlier.uploadUrl))
          .sort((a, b) => (Date.parse(b.creationTime) || 0) - (Date.parse(a.creationTime) || 0))[0];
        if (newest) upload.resumeFromPreviousUpload(newest);
      })
      .catch(() => {
        // Storage unreadable: upload from the start.
      })
      .finally(() => {
        if (!finished) upload.start();
      });
  });
  const abort = () => {
    if (finished) return Promise.resolve();
    finish();
    // Terminate: the server drops the bytes now rather than when the upload expires,
    // and tus-js-client forgets the URL.
    const terminated = upload.abort(true).catch(() => {});
    fail(new DOMException("Upload cancelled", "AbortError"));
    return terminated;
  };
  return { promise, abort };
}

// On signing out (not on expiry, after which signing in again may resume): the entries
// name the files, and the next person at this browser need not see them.
function forgetResumableUploads() {
  for (const key of Object.keys(localStorage)) {
    if (key.startsWith("tus::") || key.startsWith(DIRECT_PREFIX)) localStorage.removeItem(key);
  }
}

// ---------------------------------------------------------------- direct uploads

// On S3 a large file goes straight to the bucket (POST /api/v1/direct-uploads, then the
// parts PUT to the URLs seau presigns, then .../complete, where seau verifies the bytes
// before they become a file): seau carries none of its bytes. The upload's id is kept in
// localStorage under the file's name, size and date until it completes, so picking the
// same file again (after a reload, a failure, a new sign-in) asks the store which parts
// it already holds (GET .../parts) and sends only the others.
const DIRECT_PREFIX = "seau.direct::";
// Parts in flight at once per file, and how many part URLs to ask for in one request.
const DIRECT_PARALLEL_PARTS = 3;
const DIRECT_URL_BATCH = 16;
const DIRECT_RETRY_DELAYS_MS = [0, 1000, 3000, 5000, 10000];
// Direct uploads this page is sending: the same file picked twice makes two uploads.
const directInUse = new Set();

function directStorageKey(file) {
  return DIRECT_PREFIX + JSON.stringify([file.name, file.size, file.lastModified]);
}

function abortError() {
  return new DOMException("Upload cancelled", "AbortError");
}

// The bytes of part `number` (1-based) when every part but the last is `partSize`.
function partRange(number, partSize, size) {
  const start = (number - 1) * partSize;
  return [start, Math.min(size, start + partSize)];
}

// PUT one part to the URL seau presigned; resolves to the part's ETag. The bucket's CORS
// must expose ETag (docs/direct-uploads.md), or the browser hides it.
function putPart(url, blob, { signal, onSent }) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    const stop = () => xhr.abort();
    signal.addEventListener("abort", stop, { once: true });
    const done = () => signal.removeEventListener("abort", stop);
    xhr.open("PUT", url);
    xhr.upload.addEventListener("progress", (event) => onSent(event.loaded));
    xhr.addEventListener("load", () => {
      done();
      if (xhr.status < 200 || xhr.status >= 300) {
        reject(new ApiError({ status: xhr.status, detail: `The storage answered ${xhr.status}.` }));
        return;
      }
      const etag = xhr.getResponseHeader("ETag");
      if (!etag) {
        reject(new ApiError({ status: 0, code: "etag_hidden", detail: "The storage hid the part's ETag (its CORS must expose ETag)." }));
        return;
      }
      onSent(blob.size);
      resolve(etag);
    });
    xhr.addEventListener("error", () => {
      done();
      reject(networkError());
    });
    xhr.addEventListener("abort", () => {
      done();
      reject(abortError());
    });
    xhr.send(blob);
  });
}

function sendDirect(file, { key, getToken, onProgress, onWaiting }) {
  const controller = new AbortController();
  const { signal } = controller;
  const storageKey = directStorageKey(file);
  let uploadId = null;
  let fail = () => {};

  const call = async (path, { method = "GET", json, headers = {} } = {}) => {
    const init = { method, cache: "no-store", signal, headers: { Accept: "application/json", ...headers } };
    init.headers.Authorization = `Bearer ${await getToken()}`;
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    }
    let response;
    try {
      response = await fetch(`${API}/direct-uploads${path}`, init);
    } catch {
      throw signal.aborted ? abortError() : networkError();
    }
    if (!response.ok) throw problemFrom(response.status, await response.text().catch(() => ""));
    return response.status === 204 ? null : response.json();
  };

  // Network failures and the server's 5xx are retried after a pause; while the browser
  // is offline the upload waits for the network instead. Anything else fails at once.
  const retrying = async (attempt) => {
    for (let tries = 0; ; tries += 1) {
      try {
        return await attempt();
      } catch (error) {
        const transient = error instanceof ApiError && (error.status === 0 || error.status >= 500);
        if (signal.aborted || !transient || error.code === "etag_hidden") throw error;
        if (navigator.onLine === false) {
          onWaiting(true);
          await new Promise((resolve) => window.addEventListener("online", resolve, { once: true }));
          onWaiting(false);
          tries = -1;
        } else if (tries >= DIRECT_RETRY_DELAYS_MS.length) {
          throw error;
        } else {
          await new Promise((resolve) => setTimeout(resolve, DIRECT_RETRY_DELAYS_MS[tries]));
        }
        if (signal.aborted) throw abortError();
      }
    }
  };

  // The upload kept for this file, if the server still has it: { upload, stored parts }.
  const previous = async () => {
    let saved = null;
    try {
      saved = JSON.parse(localStorage.getItem(storageKey) ?? "null");
    } catch {
      // Unreadable: start over.
    }
    if (!saved?.id || directInUse.has(saved.id)) return null;
    try {
      const upload = await retrying(() => call(`/${encodeURIComponent(saved.id)}`));
      if (!upload.multipart || upload.size !== file.size || upload.name !== file.name) return null;
      const { parts } = await retrying(() => call(`/${encodeURIComponent(saved.id)}/parts`));
      return { upload, parts };
    } catch (error) {
      // Gone (completed, aborted, expired, another person's): start over.
      if (error instanceof ApiError && [404, 410, 422].includes(error.status)) {
        localStorage.removeItem(storageKey);
        return null;
      }
      throw error;
    }
  };

  const run = async () => {
    let found = await previous();
    if (!found) {
      const body = { name: file.name, size: file.size, multipart: true };
      if (file.type && !/^multipart\//i.test(file.type)) body.content_type = file.type;
      const upload = await retrying(() =>
        call("", { method: "POST", json: body, headers: { "Idempotency-Key": key } }),
      );
      found = { upload, parts: [] };
    }
    const { upload } = found;
    uploadId = upload.id;
    directInUse.add(uploadId);
    localStorage.setItem(storageKey, JSON.stringify({ id: uploadId }));

    const { part_size: partSize, part_count: partCount } = upload;
    const etags = new Map();
    for (const part of found.parts) {
      const [start, end] = partRange(part.number, partSize, file.size);
      // A part the store holds whole is not sent again.
      if (part.number <= partCount && part.size === end - start) etags.set(part.number, part.etag);
    }
    const missing = [];
    for (let number = 1; number <= partCount; number += 1) if (!etags.has(number)) missing.push(number);

    let stored = 0;
    for (const number of etags.keys()) {
      const [start, end] = partRange(number, partSize, file.size);
      stored += end - start;
    }
    const inFlight = new Map();
    const report = () => {
      let sent = stored;
      for (const loaded of inFlight.values()) sent += loaded;
      onProgress(Math.min(sent, file.size), file.size);
    };
    report();

    // Part URLs, asked for a batch at a time just before they are needed (they expire).
    const urls = new Map();
    const urlFor = async (number) => {
      if (!urls.has(number)) {
        const batch = missing.filter((n) => n >= number && !etags.has(n) && !urls.has(n));
        const signed = await call(`/${encodeURIComponent(uploadId)}/parts`, {
          method: "POST",
          json: { numbers: batch.slice(0, DIRECT_URL_BATCH) },
        });
        for (const part of signed.parts) urls.set(part.number, part.url);
      }
      return urls.get(number);
    };

    const queue = [...missing];
    const worker = async () => {
      while (queue.length) {
        const number = queue.shift();
        const [start, end] = partRange(number, partSize, file.size);
        const etag = await retrying(async () => {
          const url = await urlFor(number);
          try {
            return await putPart(url, file.slice(start, end), {
              signal,
              onSent: (loaded) => {
                inFlight.set(number, loaded);
                report();
              },
            });
          } catch (error) {
            // A fresh URL for the next try: this one may have expired.
            urls.delete(number);
            inFlight.delete(number);
            report();
            // The bucket refusing a part (an expired URL: 403) is retried, with a fresh URL.
            if (error instanceof ApiError && error.status >= 400 && error.status < 500) {
              throw new ApiError({ ...error, status: 500, detail: error.detail });
            }
            throw error;
          }
        });
        inFlight.delete(number);
        etags.set(number, etag);
        stored += end - start;
        report();
      }
    };
    await Promise.all(Array.from({ length: Math.min(DIRECT_PARALLEL_PARTS, missing.length) }, worker));

    const parts = [...etags].sort((a, b) => a[0] - b[0]).map(([number, etag]) => ({ number, etag }));
    const made = await retrying(() =>
      call(`/${encodeURIComponent(uploadId)}/complete`, { method: "POST", json: { parts } }),
    );
    return made;
  };

  const finish = () => {
    localStorage.removeItem(storageKey);
    if (uploadId) directInUse.delete(uploadId);
  };
  const promise = new Promise((resolve, reject) => {
    fail = reject;
    run().then(
      (made) => {
        finish();
        resolve(made);
      },
      (error) => {
        if (uploadId) directInUse.delete(uploadId);
        // Refused for good (verification, quota): nothing left to resume.
        if (error instanceof ApiError && error.status >= 400 && error.status < 500 && error.status !== 401) {
          finish();
        }
        reject(error);
      },
    );
  });
  const abort = async () => {
    if (signal.aborted) return;
    controller.abort();
    fail(abortError());
    const id = uploadId;
    finish();
    // Abort on the server: the parts go now rather than when the upload expires.
    if (!id) return;
    try {
      await fetch(`${API}/direct-uploads/${encodeURIComponent(id)}`, {
        method: "DELETE",
        headers: { Authorization: `Bearer ${await getToken()}` },
      });
    } catch {
      // Unreachable: seau gc removes it once it expires.
    }
  };
  return { promise, abort };
}

// A tus-js-client error as the ApiError the rest of the page knows.
function tusFailure(error) {
  const response = error?.originalResponse;
  const status = response ? response.getStatus() : 0;
  if (status) return problemFrom(status, response.getBody() ?? "");
  if (error?.originalRequest) return networkError();
  return new ApiError({ status: 0, detail: String(error?.message ?? error) });
}

// ---------------------------------------------------------------- session

// { token, email, expiresAt }; a provider's session adds { provider: true, issuedAt,
// refreshToken, idToken }. A renewal updates the object in place, so whoever holds it
// (an upload under way) sends the new token next.
let current = null;

function loadSession() {
  try {
    const saved = JSON.parse(sessionStorage.getItem(SESSION_KEY) ?? "null");
    if (saved && typeof saved.token === "string") return saved;
  } catch {
    // A damaged entry is as good as none.
  }
  return null;
}

async function signIn(email, password) {
  const response = await api("/auth/token", {
    method: "POST",
    form: { username: email, password },
    auth: false,
  });
  const token = await response.json();
  current = {
    token: token.access_token,
    email,
    expiresAt: Date.now() + token.expires_in * 1000,
  };
  sessionStorage.setItem(SESSION_KEY, JSON.stringify(current));
}

function saveSession() {
  if (current) sessionStorage.setItem(SESSION_KEY, JSON.stringify(current));
}

// The token to send now for `session`: renewed first when it is about to expire.
async function tokenOf(session) {
  if (session === current && session.refreshToken && renewAt(session) <= Date.now()) {
    await refreshSession();
  }
  if (session !== current && session.expiresAt <= Date.now()) throw new SessionExpired();
  return session.token;
}

// Resolves once every upload has stopped; terminating tus uploads at the server takes a
// request each, sent with the token of the session that is ending.
function endSession() {
  clearTimeout(refreshTimer);
  const ending = resetFilesView();
  current = null;
  sessionStorage.removeItem(SESSION_KEY);
  return ending;
}

function expireSession() {
  if (!current) return;
  const email = current.email;
  endSession();
  showAuth({ mode: "signin", notice: EXPIRED_MESSAGE, email });
}

// ---------------------------------------------------------------- identity provider

// How to sign in, from the server (GET /api/v1/auth/options): seau's own accounts,
// and the identity provider's public client (issuer, client_id, scopes) if there is one.
let signInOptions = { local_accounts: true, oidc: null };
// Between leaving for the provider and coming back: { state, verifier } (PKCE).
const PENDING_KEY = "seau.oidc.pending";
// Set before leaving for the provider's sign-out page, to greet the person on return.
const SIGNED_OUT_KEY = "seau.signed-out";
let discovery = null; // the provider's discovery document, once fetched
let refreshTimer = 0;
let refreshing = null; // the renewal in flight, shared by whoever needs a token meanwhile

async function loadSignInOptions() {
  try {
    signInOptions = await (await api("/auth/options", { auth: false })).json();
  } catch {
    // Unreadable: the email/password form, as without a provider.
  }
}

function redirectUri() {
  return `${location.origin}/`;
}

// The page's CSP lets it reach the issuer's origin and no other: the token endpoint
// must be there too.
async function discover() {
  if (discovery) return discovery;
  const { issuer } = signInOptions.oidc;
  let doc;
  try {
    const response = await fetch(`${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`, {
      headers: { Accept: "application/json" },
    });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    doc = await response.json();
  } catch {
    throw new ApiError({ status: 0, code: "provider_unreachable", detail: "The identity provider could not be reached." });
  }
  const origin = new URL(issuer).origin;
  if (
    doc?.issuer !== issuer ||
    typeof doc.authorization_endpoint !== "string" ||
    typeof doc.token_endpoint !== "string" ||
    new URL(doc.token_endpoint).origin !== origin
  ) {
    throw new ApiError({
      status: 0,
      code: "provider_misconfigured",
      detail: "The identity provider's discovery document names another issuer, or a token endpoint outside its origin.",
    });
  }
  discovery = doc;
  return doc;
}

function base64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes)))
    .replace(/\+/g, "-")
    .replace(/\//g, "_")
    .replace(/=+$/, "");
}

function randomToken(size) {
  return base64url(crypto.getRandomValues(new Uint8Array(size)));
}

// Off to the provider: Authorization Code with PKCE (S256), so a code caught on the
// way back is useless without the verifier, which never leaves this tab.
async function startProviderSignIn() {
  if (!crypto.subtle) {
    throw new ApiError({ status: 0, code: "insecure_context", detail: "Signing in needs this page over HTTPS." });
  }
  const doc = await discover();
  const verifier = randomToken(32);
  const state = randomToken(16);
  const challenge = base64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  sessionStorage.setItem(PENDING_KEY, JSON.stringify({ state, verifier }));
  const url = new URL(doc.authorization_endpoint);
  const params = {
    response_type: "code",
    client_id: signInOptions.oidc.client_id,
    redirect_uri: redirectUri(),
    scope: signInOptions.oidc.scopes,
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  };
  for (const [name, value] of Object.entries(params)) url.searchParams.set(name, value);
  location.assign(url.href);
}

// The provider's answer in the address bar (?code=&state= or ?error=&state=), taken out
// of it (and of the history) at once.
function takeProviderAnswer() {
  const params = new URLSearchParams(location.search);
  if (!params.has("state") || !(params.has("code") || params.has("error"))) return null;
  history.replaceState(null, "", location.pathname);
  return params;
}

async function tokenRequest(form) {
  const doc = await discover();
  let response;
  try {
    response = await fetch(doc.token_endpoint, {
      method: "POST",
      headers: { Accept: "application/json" },
      body: new URLSearchParams(form),
      cache: "no-store",
    });
  } catch {
    throw networkError();
  }
  const body = await response.json().catch(() => ({}));
  if (response.ok && typeof body.access_token === "string") return body;
  throw new ApiError({
    status: response.status,
    code: body.error ?? `http_${response.status}`,
    title: "The identity provider refused",
    detail: body.error_description ?? "",
  });
}

// A token answer's fields for the session; a refresh answer may omit the refresh token
// (keep the old one) or the lifetime (then the token's own `exp`).
function tokenFields(tokens, previous = {}) {
  const now = Date.now();
  let lifetime = Number(tokens.expires_in) * 1000;
  if (!(lifetime > 0)) {
    try {
      const claims = JSON.parse(atob(tokens.access_token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/")));
      lifetime = claims.exp * 1000 - now;
    } catch {
      lifetime = REFRESH_MARGIN_MS * 5;
    }
  }
  return {
    token: tokens.access_token,
    issuedAt: now,
    expiresAt: now + lifetime,
    refreshToken: tokens.refresh_token ?? previous.refreshToken ?? null,
    idToken: tokens.id_token ?? previous.idToken ?? null,
  };
}

async function finishProviderSignIn(params) {
  let pending = null;
  try {
    pending = JSON.parse(sessionStorage.getItem(PENDING_KEY) ?? "null");
  } catch {
    // Damaged: as good as none.
  }
  sessionStorage.removeItem(PENDING_KEY);
  if (!pending || params.get("state") !== pending.state) {
    throw new ApiError({ status: 0, code: "state_mismatch", detail: "This sign-in was not started on this page." });
  }
  if (params.has("error")) {
    throw new ApiError({ status: 0, code: params.get("error"), detail: params.get("error_description") ?? params.get("error") });
  }
  const tokens = await tokenRequest({
    grant_type: "authorization_code",
    code: params.get("code"),
    redirect_uri: redirectUri(),
    client_id: signInOptions.oidc.client_id,
    code_verifier: pending.verifier,
  });
  current = { provider: true, email: "", ...tokenFields(tokens) };
  // Who the token names, as seau sees it (and a check that seau accepts it at all).
  const me = await (await api("/users/me")).json();
  current.email = me.email ?? me.name ?? me.subject ?? "";
  saveSession();
  scheduleRefresh();
}

// Renew the provider's token before it expires, so that a long upload keeps going.
// Without a refresh token there is nothing to renew with: the session ends when the
// token does, and signing in again resumes the uploads (docs/identity.md).
function renewAt(session) {
  return session.expiresAt - Math.min(REFRESH_MARGIN_MS, (session.expiresAt - session.issuedAt) / 4);
}

function scheduleRefresh() {
  clearTimeout(refreshTimer);
  if (!current?.refreshToken) return;
  refreshTimer = setTimeout(() => refreshSession(), Math.max(0, renewAt(current) - Date.now()));
}

function refreshSession() {
  if (!current?.refreshToken) return Promise.resolve();
  refreshing ??= renew(current).finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function renew(session) {
  try {
    const tokens = await tokenRequest({
      grant_type: "refresh_token",
      refresh_token: session.refreshToken,
      client_id: signInOptions.oidc.client_id,
    });
    Object.assign(session, tokenFields(tokens, session));
    if (session !== current) return;
    saveSession();
    scheduleRefresh();
  } catch (error) {
    if (session !== current) return;
    // The provider out of reach for a moment: try again while the token still works.
    if (error instanceof ApiError && error.status === 0 && Date.now() + REFRESH_RETRY_MS < session.expiresAt) {
      clearTimeout(refreshTimer);
      refreshTimer = setTimeout(() => refreshSession(), REFRESH_RETRY_MS);
      return;
    }
    expireSession();
  }
}

async function signOut() {
  const session = current;
  const stopped = endSession();
  forgetResumableUploads();
  showAuth({ notice: SIGNED_OUT_MESSAGE });
  if (!session?.provider) return;
  const doc = await discover().catch(() => null);
  if (!doc?.end_session_endpoint) return;
  // Terminating uploads takes a request each: let them leave before the page does.
  await Promise.race([stopped, new Promise((resolve) => setTimeout(resolve, 3000))]);
  const url = new URL(doc.end_session_endpoint);
  url.searchParams.set("client_id", signInOptions.oidc.client_id);
  url.searchParams.set("post_logout_redirect_uri", redirectUri());
  if (session.idToken) url.searchParams.set("id_token_hint", session.idToken);
  sessionStorage.setItem(SIGNED_OUT_KEY, "1");
  location.assign(url.href);
}

// ---------------------------------------------------------------- sign in / sign up

const forms = {
  signin: { form: "signin-form", title: "Sign in" },
  signup: { form: "signup-form", title: "Create an account" },
};

function showAuth({ mode = "signin", notice = "", email = "" } = {}) {
  $("files-view").hidden = true;
  $("account").hidden = true;
  $("auth-view").hidden = false;
  const noticeEl = $("auth-notice");
  noticeEl.textContent = notice;
  noticeEl.hidden = !notice;
  const { oidc, local_accounts: local } = signInOptions;
  $("provider-signin").hidden = !oidc;
  $("provider-signin-button").disabled = false;
  $("provider-error").textContent = "";
  $("local-signin").hidden = Boolean(oidc) && !local;
  $("local-divider").hidden = !(oidc && local);
  if (oidc) document.title = "Sign in · seau";
  if (oidc && !local) {
    $("auth-title").textContent = "Sign in";
    $("provider-signin-button").focus();
    return;
  }
  switchAuthMode(mode, { focus: false });
  if (email) $(`${mode}-email`).value = email;
  const field = $(`${mode}-email`).value ? $(`${mode}-password`) : $(`${mode}-email`);
  (oidc ? $("provider-signin-button") : field).focus();
}

function switchAuthMode(mode, { focus = true } = {}) {
  for (const [name, { form }] of Object.entries(forms)) {
    $(form).hidden = name !== mode;
    clearFormErrors($(form));
  }
  $("auth-title").textContent = forms[mode].title;
  document.title = `${forms[mode].title} · seau`;
  if (focus) {
    $("auth-notice").hidden = true;
    $(`${mode}-email`).focus();
  }
}

function clearFormErrors(form) {
  for (const input of form.querySelectorAll("input")) input.removeAttribute("aria-invalid");
  for (const message of form.querySelectorAll(".field-error, .form-error")) message.textContent = "";
}

function fieldError(prefix, field, message) {
  const input = $(`${prefix}-${field}`);
  input.setAttribute("aria-invalid", "true");
  $(`${prefix}-${field}-error`).textContent = message;
  return input;
}

// Client-side checks mirror the server's, so most mistakes are caught without a round trip.
function checkCredentials(prefix, email, password, { newPassword }) {
  const invalid = [];
  if (!/^[^@\s]+@[^@\s]+$/.test(email)) {
    invalid.push(fieldError(prefix, "email", "Enter an email address, like ada@example.com."));
  }
  if (!password) invalid.push(fieldError(prefix, "password", "Enter your password."));
  else if (newPassword && password.trim().length < 10) {
    invalid.push(fieldError(prefix, "password", "Use at least 10 characters."));
  }
  return invalid;
}

// Puts the server's answer next to the field it concerns, else under the form.
function showAuthError(prefix, error) {
  if (error instanceof ApiError && error.code === "validation_error") {
    const fields = [];
    for (const item of error.errors) {
      const field = item.loc?.at(-1);
      if (field === "email" || field === "password" || field === "username") {
        const name = field === "username" ? "email" : field;
        fields.push(fieldError(prefix, name, item.msg || "Invalid value."));
      }
    }
    if (fields.length) {
      fields[0].focus();
      return;
    }
  }
  if (error instanceof ApiError && (error.code === "email_taken" || error.code === "invalid_email")) {
    fieldError(prefix, "email", describe(error)).focus();
    return;
  }
  if (error instanceof ApiError && error.code === "weak_password") {
    fieldError(prefix, "password", describe(error)).focus();
    return;
  }
  $(`${prefix}-error`).textContent = describe(error);
}

async function submitAuth(event, mode) {
  event.preventDefault();
  const form = event.currentTarget;
  if (form.getAttribute("aria-busy") === "true") return;
  clearFormErrors(form);
  $("auth-notice").hidden = true;
  const email = $(`${mode}-email`).value.trim();
  const password = $(`${mode}-password`).value;
  const invalid = checkCredentials(mode, email, password, { newPassword: mode === "signup" });
  if (invalid.length) {
    invalid[0].focus();
    return;
  }
  form.setAttribute("aria-busy", "true");
  form.querySelector("button[type=submit]").disabled = true;
  try {
    if (mode === "signup") {
      await api("/users", { method: "POST", json: { email, password }, auth: false });
    }
    await signIn(email, password);
    form.reset();
    showFiles();
    announce(mode === "signup" ? `Account created. Signed in as ${email}.` : `Signed in as ${email}.`);
  } catch (error) {
    showAuthError(mode, error);
  } finally {
    form.removeAttribute("aria-busy");
    form.querySelector("button[type=submit]").disabled = false;
  }
}

// ---------------------------------------------------------------- uploads

const uploads = [];
let uploadCounter = 0;

function addFiles(files) {
  const added = Array.from(files, (file) => {
    uploadCounter += 1;
    const upload = {
      id: uploadCounter,
      file,
      key: newIdempotencyKey(),
      state: "queued",
      loaded: 0,
      error: "",
      transfer: null,
    };
    upload.row = uploadRow(upload);
    uploads.push(upload);
    $("uploads").append(upload.row.item);
    renderUpload(upload);
    return upload;
  });
  if (!added.length) return;
  $("uploads-head").hidden = false;
  announce(`Uploading ${plural(added.length, "file")}.`);
  pumpUploads();
}

function uploadRow(upload) {
  const nameId = `upload-${upload.id}-name`;
  const name = el("span", { className: "upload-name filename", text: upload.file.name, attrs: { id: nameId } });
  const status = el("span", { className: "upload-status" });
  const progress = el("progress", { attrs: { max: "100", value: "0", "aria-labelledby": nameId } });
  const error = el("p", { className: "upload-error", attrs: { role: "alert" } });
  const actions = el("div", { className: "upload-actions" });
  const item = el(
    "li",
    { className: "upload", attrs: { "data-upload": String(upload.id) } },
    el("div", { className: "upload-line" }, name, status),
    progress,
    error,
  );
  item.append(actions);
  return { item, status, progress, error, actions };
}

function uploadButton(label, accessibleName, onClick) {
  const button = el("button", {
    className: "button button-quiet button-small",
    text: label,
    attrs: { type: "button", "aria-label": accessibleName },
  });
  button.addEventListener("click", onClick);
  return button;
}

function renderUpload(upload) {
  const { item, status, progress, error, actions } = upload.row;
  const { file } = upload;
  item.dataset.state = upload.state;
  const percent = upload.state === "done" ? 100 : file.size ? Math.floor((upload.loaded / file.size) * 100) : 0;
  progress.value = percent;
  const size = formatSize(file.size);
  const progressText = upload.waiting ? "waiting for the network" : `${percent} %`;
  status.textContent = {
    queued: `${size} · waiting`,
    uploading: `${formatSize(upload.loaded)} of ${size} · ${progressText}`,
    done: `${size} · uploaded`,
    failed: `${size} · failed`,
    cancelled: `${size} · cancelled`,
  }[upload.state];
  error.textContent = upload.error;
  // Progress events come many times a second: rebuild the buttons only on a change of
  // state, or a focused Cancel button would be replaced (and re-announced) each time.
  if (upload.renderedState === upload.state) return;
  upload.renderedState = upload.state;
  const hadFocus = actions.contains(document.activeElement);
  const buttons = [];
  if (upload.state === "queued" || upload.state === "uploading") {
    buttons.push(uploadButton("Cancel", `Cancel upload of ${file.name}`, () => cancelUpload(upload)));
  } else {
    if (upload.state === "failed" && upload.retryable) {
      buttons.push(uploadButton("Retry", `Retry upload of ${file.name}`, () => retryUpload(upload)));
    }
    buttons.push(uploadButton("Remove", `Remove ${file.name} from this list`, () => removeUpload(upload)));
  }
  actions.replaceChildren(...buttons);
  if (hadFocus) buttons[0].focus();
}

function pumpUploads() {
  let active = uploads.filter((u) => u.state === "uploading").length;
  for (const upload of uploads) {
    if (active >= PARALLEL_UPLOADS) break;
    if (upload.state === "queued") {
      active += 1;
      startUpload(upload);
    }
  }
}

async function startUpload(upload) {
  if (!current) return;
  upload.state = "uploading";
  upload.loaded = 0;
  upload.error = "";
  renderUpload(upload);
  const session = current;
  upload.transfer = sendFile(upload.file, {
    key: upload.key,
    getToken: () => tokenOf(session),
    onProgress: (loaded) => {
      upload.loaded = Math.min(loaded, upload.file.size);
      renderUpload(upload);
    },
    onWaiting: (waiting) => {
      upload.waiting = waiting;
      renderUpload(upload);
    },
  });
  try {
    await upload.transfer.promise;
    upload.state = "done";
    announce(`${upload.file.name} uploaded.`);
    refreshList();
  } catch (error) {
    if (error?.name === "AbortError") {
      upload.state = "cancelled";
    } else if (error instanceof ApiError && error.status === 401) {
      expireSession();
      return;
    } else {
      upload.state = "failed";
      upload.error = describe(error);
      upload.retryable = error instanceof ApiError && (error.status === 0 || error.status >= 500);
    }
  } finally {
    upload.transfer = null;
    upload.waiting = false;
  }
  renderUpload(upload);
  pumpUploads();
}

function cancelUpload(upload) {
  if (upload.transfer) upload.transfer.abort();
  else {
    upload.state = "cancelled";
    renderUpload(upload);
  }
}

function retryUpload(upload) {
  upload.state = "queued";
  upload.error = "";
  upload.loaded = 0;
  renderUpload(upload);
  pumpUploads();
}

function removeUpload(upload) {
  const index = uploads.indexOf(upload);
  const next = uploads[index + 1] ?? uploads[index - 1];
  uploads.splice(index, 1);
  upload.row.item.remove();
  if (next) next.row.actions.querySelector("button")?.focus();
  else {
    $("uploads-head").hidden = true;
    $("dropzone").focus();
  }
}

function clearFinishedUploads() {
  for (const upload of [...uploads]) {
    if (upload.state !== "queued" && upload.state !== "uploading") {
      uploads.splice(uploads.indexOf(upload), 1);
      upload.row.item.remove();
    }
  }
  if (!uploads.length) $("uploads-head").hidden = true;
  $("dropzone").focus();
}

function abortAllUploads() {
  const stopped = uploads.map((upload) => upload.transfer?.abort());
  uploads.length = 0;
  $("uploads").replaceChildren();
  $("uploads-head").hidden = true;
  return Promise.allSettled(stopped);
}

function setupDropzone() {
  const zone = $("dropzone");
  const input = $("file-input");
  const openPicker = () => input.click();
  zone.addEventListener("click", openPicker);
  zone.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") {
      event.preventDefault();
      openPicker();
    }
  });
  input.addEventListener("change", () => {
    addFiles(input.files);
    input.value = "";
  });
  zone.addEventListener("dragenter", (event) => {
    event.preventDefault();
    zone.classList.add("is-dragover");
  });
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    event.dataTransfer.dropEffect = "copy";
    zone.classList.add("is-dragover");
  });
  zone.addEventListener("dragleave", (event) => {
    if (!zone.contains(event.relatedTarget)) zone.classList.remove("is-dragover");
  });
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("is-dragover");
    const items = Array.from(event.dataTransfer.items ?? []);
    const folders = items.filter((item) => item.webkitGetAsEntry?.()?.isDirectory).length;
    const files = Array.from(event.dataTransfer.files).filter(
      (_, index) => !items[index]?.webkitGetAsEntry?.()?.isDirectory,
    );
    addFiles(files);
    if (folders) announce(`${plural(folders, "folder")} skipped: drop the files inside instead.`);
  });
  // A drop that misses the zone must not navigate away from the page to the file.
  for (const type of ["dragover", "drop"]) {
    window.addEventListener(type, (event) => {
      if (zone.contains(event.target)) return;
      event.preventDefault();
      if (event.dataTransfer) event.dataTransfer.dropEffect = "none";
    });
  }
}

// ---------------------------------------------------------------- the list

const defaultDirection = { name: "", size: "-", created: "-" };

const list = {
  sort: "-created",
  q: "",
  limit: 25,
  cursors: [null], // cursors[i] opens page i
  page: 0,
  items: [],
  next: null,
  seq: 0,
  editing: null, // { id } while a rename form is open
  stale: false, // a refresh waits for the rename form or the dialog to close
};

function resetFilesView() {
  const stopped = abortAllUploads();
  Object.assign(list, { sort: "-created", q: "", cursors: [null], page: 0, items: [], next: null });
  list.editing = null;
  list.seq += 1;
  $("search").value = "";
  $("file-rows").replaceChildren();
  $("list-error").hidden = true;
  if ($("delete-dialog").open) $("delete-dialog").close();
  if ($("share-dialog").open) $("share-dialog").close();
  $("share-rows").replaceChildren();
  return stopped;
}

function showFiles() {
  $("auth-view").hidden = true;
  $("account-email").textContent = current.email;
  $("account").hidden = false;
  $("files-view").hidden = false;
  document.title = "Your files · seau";
  $("files-title").focus();
  loadList();
  loadShares();
}

// Refreshes the current page, unless a rename or a confirmation is in progress:
// rebuilding the rows then would pull the form from under the person typing.
function refreshList() {
  if (list.editing || $("delete-dialog").open) list.stale = true;
  else loadList();
}

// What the files use of the quotas (GET /usage), under the list's title; refreshed
// with the list, so that uploads and deletes show in it.
async function loadUsage() {
  try {
    const usage = await (await api("/usage")).json();
    const files = plural(usage.used_files, "file");
    let text = usage.quota_bytes
      ? `Using ${formatSize(usage.used_bytes)} of ${formatSize(usage.quota_bytes)}`
      : `Using ${formatSize(usage.used_bytes)}`;
    text += usage.quota_files ? ` · ${files} of ${usage.quota_files}` : ` · ${files}`;
    if (usage.reserved_bytes) text += ` · ${formatSize(usage.reserved_bytes)} uploading`;
    $("usage").textContent = text;
    $("usage").hidden = false;
  } catch {
    $("usage").hidden = true; // the list says what went wrong
  }
}

async function loadList() {
  loadUsage();
  list.stale = false;
  const seq = ++list.seq;
  const params = new URLSearchParams({ limit: String(list.limit), sort: list.sort });
  const cursor = list.cursors[list.page];
  if (cursor) params.set("cursor", cursor);
  if (list.q) params.set("q", list.q);
  $("file-table").setAttribute("aria-busy", "true");
  try {
    const page = await (await api(`/files?${params}`)).json();
    if (seq !== list.seq) return; // a later request superseded this one
    if (!page.items.length && list.page > 0) {
      // The page emptied (its files were deleted): show the one before.
      list.page -= 1;
      list.cursors.length = list.page + 1;
      loadList();
      return;
    }
    list.items = page.items;
    list.next = page.next_cursor;
    list.cursors.length = list.page + 1;
    $("list-error").hidden = true;
    renderList();
  } catch (error) {
    if (error instanceof SessionExpired || seq !== list.seq) return;
    $("list-error").textContent = `Could not load your files. ${describe(error)}`;
    $("list-error").hidden = false;
  } finally {
    if (seq === list.seq) $("file-table").removeAttribute("aria-busy");
  }
}

function renderList() {
  // Rebuilding the rows must not throw keyboard focus back to the top of the page.
  const focused = document.activeElement;
  const focusRow = focused?.closest?.("tr[data-id]")?.dataset.id;
  const focusAction = focused?.dataset?.action;

  list.editing = null; // a rename form, if any, goes with the old rows
  const rows = list.items.map(fileRow);
  $("file-rows").replaceChildren(...rows);
  $("list-empty").hidden = list.items.length > 0;
  $("list-empty").textContent = list.q ? `No file name contains “${list.q}”.` : "No files yet. Drop some above.";
  $("file-table").hidden = list.items.length === 0;

  for (const th of document.querySelectorAll("th[data-sort]")) {
    const key = th.dataset.sort;
    const direction = list.sort === key ? "ascending" : list.sort === `-${key}` ? "descending" : "none";
    th.setAttribute("aria-sort", direction);
    th.querySelector(".sort-mark").textContent = { ascending: "▲", descending: "▼", none: "" }[direction];
  }

  const first = list.page * list.limit + 1;
  $("list-summary").textContent = list.items.length
    ? `${first}–${first + list.items.length - 1}${list.next ? "" : ` of ${first + list.items.length - 1}`}`
    : "";
  $("prev-page").disabled = list.page === 0;
  $("next-page").disabled = !list.next;
  document.querySelector(".pager").classList.toggle("single-page", list.page === 0 && !list.next);

  if (focusRow && focusAction) {
    liveRow(focusRow)?.querySelector(`[data-action="${CSS.escape(focusAction)}"]`)?.focus();
  }
}

function actionButton(action, label, accessibleName, onClick) {
  const button = el("button", {
    className: `button button-quiet button-small action-${action}`,
    text: label,
    attrs: { type: "button", "data-action": action, "aria-label": accessibleName },
  });
  button.addEventListener("click", onClick);
  return button;
}

function fileRow(item) {
  const row = el("tr", { attrs: { "data-id": item.id } });
  const error = el("p", { className: "row-error", attrs: { role: "alert", id: `error-${item.id}` } });
  const nameCell = el("td", { className: "col-name" });
  const name = el("span", { className: "filename", text: item.name, attrs: { title: item.name } });
  nameCell.append(name, error);
  const actions = el(
    "div",
    { className: "actions" },
    actionButton("download", "Download", `Download ${item.name}`, () => downloadFile(item, row)),
    actionButton("share", "Share", `Share ${item.name}`, () => openShareDialog(item, row)),
    actionButton("rename", "Rename", `Rename ${item.name}`, () => startRename(item, row)),
    actionButton("delete", "Delete", `Delete ${item.name}`, () => confirmDelete(item, row)),
  );
  row.append(
    nameCell,
    el("td", { className: "col-size", text: formatSize(item.size), attrs: { title: `${item.size} bytes` } }),
    el("td", { className: "col-type", text: item.content_type, attrs: { title: typeTitle(item) } }),
    el("td", { className: "col-date" }, el("time", { text: formatDate(item.created_at), attrs: { datetime: item.created_at } })),
    el("td", { className: "col-actions" }, actions),
  );
  return row;
}

function rowError(row, message) {
  const error = row.querySelector(".row-error");
  error.textContent = message;
}

function setSort(key) {
  list.sort = list.sort === `${defaultDirection[key]}${key}`
    ? `${defaultDirection[key] ? "" : "-"}${key}`
    : `${defaultDirection[key]}${key}`;
  list.cursors = [null];
  list.page = 0;
  loadList();
}

// ---------------------------------------------------------------- row actions

async function downloadFile(item, row) {
  const button = row.querySelector('[data-action="download"]');
  rowError(row, "");
  button.disabled = true;
  button.textContent = "Downloading…";
  try {
    // The content route needs the bearer header, which a plain link cannot send; a
    // download link carries its own short-lived authority instead. The browser follows
    // it itself and streams the bytes to disk, so no part of the file sits in this
    // page's memory, whatever its size (on S3 the bytes come straight from the bucket).
    const path = `/files/${encodeURIComponent(item.id)}/link`;
    const { url } = await (await api(path, { method: "POST", json: {} })).json();
    const link = el("a", { attrs: { href: url, download: item.name, rel: "noopener noreferrer" } });
    link.hidden = true;
    document.body.append(link);
    link.click();
    link.remove();
    announce(`Downloading ${item.name}.`);
  } catch (error) {
    const live = liveRow(item.id); // the list may have been rebuilt meanwhile
    if (live && !(error instanceof SessionExpired)) rowError(live, `Download failed. ${describe(error)}`);
  } finally {
    button.disabled = false;
    button.textContent = "Download";
  }
}

function startRename(item, row) {
  list.editing?.close({ focus: false });
  const cell = row.querySelector(".col-name");
  const original = [...cell.childNodes];
  const inputId = `rename-${item.id}`;
  const errorId = `rename-error-${item.id}`;
  const input = el("input", {
    attrs: { id: inputId, type: "text", value: item.name, "aria-describedby": errorId, autocomplete: "off", spellcheck: "false" },
  });
  const error = el("p", { className: "field-error", attrs: { id: errorId, role: "alert" } });
  const save = el("button", { className: "button button-primary button-small", text: "Save", attrs: { type: "submit" } });
  const cancel = el("button", { className: "button button-quiet button-small", text: "Cancel", attrs: { type: "button" } });
  const form = el(
    "form",
    { className: "rename", attrs: { novalidate: "" } },
    el("label", { className: "visually-hidden", text: `New name for ${item.name}`, attrs: { for: inputId } }),
    el("div", { className: "rename-line" }, input, save, cancel),
    error,
  );
  cell.replaceChildren(form);
  row.querySelector(".actions").hidden = true;

  const close = ({ focus = true } = {}) => {
    list.editing = null;
    cell.replaceChildren(...original);
    row.querySelector(".actions").hidden = false;
    if (focus) row.querySelector('[data-action="rename"]').focus();
    if (list.stale) loadList();
  };
  list.editing = { id: item.id, close };

  cancel.addEventListener("click", () => close());
  input.addEventListener("keydown", (event) => {
    if (event.key === "Escape") {
      event.preventDefault();
      close();
    }
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = input.value.trim();
    input.removeAttribute("aria-invalid");
    error.textContent = "";
    if (!name) {
      input.setAttribute("aria-invalid", "true");
      error.textContent = "Enter a name.";
      input.focus();
      return;
    }
    if (name === item.name) {
      close();
      return;
    }
    save.disabled = true;
    try {
      const renamed = await (
        await api(`/files/${encodeURIComponent(item.id)}`, { method: "PATCH", json: { name } })
      ).json();
      Object.assign(item, renamed);
      list.editing = null;
      const fresh = fileRow(item);
      row.replaceWith(fresh);
      fresh.querySelector('[data-action="rename"]').focus();
      announce(`Renamed to ${item.name}.`);
      if (list.stale) loadList();
    } catch (failure) {
      if (failure instanceof SessionExpired) return;
      const message = failure.errors?.[0]?.msg ?? describe(failure);
      input.setAttribute("aria-invalid", "true");
      error.textContent = failure.code === "validation_error" ? message : describe(failure);
      input.focus();
    } finally {
      save.disabled = false;
    }
  });

  input.focus();
  // Select the name without its extension, the part people usually change.
  const dot = item.name.lastIndexOf(".");
  input.setSelectionRange(0, dot > 0 ? dot : item.name.length);
}

let pendingDelete = null;

function confirmDelete(item, row) {
  pendingDelete = { item, row };
  rowError(row, "");
  $("delete-name").textContent = item.name;
  $("delete-dialog").showModal();
  $("delete-cancel").focus();
}

function closeDeleteDialog() {
  const dialog = $("delete-dialog");
  if (dialog.open) dialog.close();
}

function liveRow(id) {
  return document.querySelector(`tr[data-id="${CSS.escape(id)}"]`);
}

async function deleteConfirmed() {
  const target = pendingDelete;
  pendingDelete = null; // the close handler must not pull focus back to this row
  closeDeleteDialog();
  if (!target) return;
  const { item } = target;
  target.row.querySelector('[data-action="delete"]')?.focus();
  try {
    await api(`/files/${encodeURIComponent(item.id)}`, { method: "DELETE" });
    announce(`${item.name} deleted.`);
    // Keep the keyboard where it was: on the next row, else the previous, else the heading.
    const row = liveRow(item.id);
    const neighbour = row?.nextElementSibling ?? row?.previousElementSibling;
    const neighbourId = neighbour?.dataset.id;
    row?.remove();
    list.items = list.items.filter((other) => other.id !== item.id);
    if (neighbourId) {
      liveRow(neighbourId).querySelector('[data-action="delete"]')?.focus();
    } else {
      $("list-title").focus();
    }
    await loadList();
    loadShares(); // the file's links went with it
  } catch (error) {
    if (error instanceof SessionExpired) return;
    const row = liveRow(item.id);
    if (!row) return;
    rowError(row, `Delete failed. ${describe(error)}`);
    row.querySelector('[data-action="delete"]')?.focus();
  }
}

// ---------------------------------------------------------------- share links

let shareTarget = null;

function openShareDialog(item, row) {
  shareTarget = { item, row };
  rowError(row, "");
  $("share-form").reset();
  $("share-name").textContent = item.name;
  $("share-error").textContent = "";
  $("share-result").hidden = true;
  $("share-copy").hidden = true;
  $("share-create").hidden = false;
  for (const field of ["share-expires", "share-password", "share-max"]) $(field).disabled = false;
  $("share-dialog").showModal();
  $("share-expires").focus();
}

async function createShare(event) {
  event.preventDefault();
  if (!shareTarget) return;
  const { item } = shareTarget;
  const body = { expires_in: Number($("share-expires").value) };
  const password = $("share-password").value;
  if (password) body.password = password;
  const max = $("share-max").value.trim();
  if (max) {
    if (!/^[1-9][0-9]*$/.test(max)) {
      $("share-error").textContent = "Downloads allowed is a whole number, 1 or more.";
      $("share-max").focus();
      return;
    }
    body.max_downloads = Number(max);
  }
  $("share-error").textContent = "";
  $("share-create").disabled = true;
  try {
    const made = await (
      await api(`/files/${encodeURIComponent(item.id)}/shares`, { method: "POST", json: body })
    ).json();
    // Without SEAU_PUBLIC_URL the server answers a path on its own origin.
    $("share-url").value = new URL(made.url, location.origin).href;
    $("share-result").hidden = false;
    $("share-copy").hidden = false;
    $("share-create").hidden = true;
    for (const field of ["share-expires", "share-password", "share-max"]) $(field).disabled = true;
    $("share-url").focus();
    $("share-url").select();
    announce(`Link to ${item.name} created.`);
    loadShares();
  } catch (error) {
    if (error instanceof SessionExpired) return;
    $("share-error").textContent = `Could not create the link. ${describe(error)}`;
  } finally {
    $("share-create").disabled = false;
  }
}

async function copyShareUrl() {
  try {
    await navigator.clipboard.writeText($("share-url").value);
    announce("Link copied.");
  } catch {
    $("share-url").select(); // no clipboard access: leave it selected to copy by hand
  }
}

let sharesSeq = 0;

async function loadShares() {
  const seq = ++sharesSeq;
  try {
    const { items } = await (await api("/shares")).json();
    if (seq !== sharesSeq) return;
    $("share-rows").replaceChildren(...items.map(shareRow));
    $("share-table").hidden = items.length === 0;
    $("shares-empty").hidden = items.length > 0;
    $("shares-error").hidden = true;
  } catch (error) {
    if (error instanceof SessionExpired || seq !== sharesSeq) return;
    $("shares-error").textContent = `Could not load your share links. ${describe(error)}`;
    $("shares-error").hidden = false;
  }
}

function shareRow(share) {
  const row = el("tr", { attrs: { "data-share-id": share.id } });
  const error = el("p", { className: "row-error", attrs: { role: "alert" } });
  const downloads = share.max_downloads == null
    ? String(share.downloads)
    : `${share.downloads} of ${share.max_downloads}`;
  const expired = new Date(share.expires_at).getTime() <= Date.now();
  const revoke = actionButton("revoke", "Revoke", `Revoke the link to ${share.file_name}`, () => revokeShare(share, row));
  row.append(
    el("td", { className: "col-name" }, el("span", { className: "filename", text: share.file_name, attrs: { title: share.file_name } }), error),
    el("td", { className: "col-size", text: downloads }),
    el("td", { className: "col-type", text: share.has_password ? "Yes" : "No" }),
    el("td", { className: "col-date" }, el("time", {
      text: expired ? `Expired ${formatDate(share.expires_at)}` : formatDate(share.expires_at),
      attrs: { datetime: share.expires_at },
    })),
    el("td", { className: "col-actions" }, el("div", { className: "actions" }, revoke)),
  );
  return row;
}

async function revokeShare(share, row) {
  const button = row.querySelector('[data-action="revoke"]');
  button.disabled = true;
  row.querySelector(".row-error").textContent = "";
  try {
    await api(`/shares/${encodeURIComponent(share.id)}`, { method: "DELETE" });
    announce(`Link to ${share.file_name} revoked.`);
    $("shares-title").focus();
    await loadShares();
  } catch (error) {
    if (error instanceof SessionExpired) return;
    if (error.code === "share_not_found") {
      await loadShares(); // revoked elsewhere, or its file deleted: it is gone either way
      return;
    }
    row.querySelector(".row-error").textContent = `Revoke failed. ${describe(error)}`;
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- wiring

function setup() {
  $("signin-form").addEventListener("submit", (event) => submitAuth(event, "signin"));
  $("signup-form").addEventListener("submit", (event) => submitAuth(event, "signup"));
  $("show-signup").addEventListener("click", () => switchAuthMode("signup"));
  $("show-signin").addEventListener("click", () => switchAuthMode("signin"));
  $("sign-out").addEventListener("click", signOut);
  $("provider-signin-button").addEventListener("click", async (event) => {
    const button = event.currentTarget;
    button.disabled = true;
    $("provider-error").textContent = "";
    try {
      await startProviderSignIn(); // the page is leaving
    } catch (error) {
      $("provider-error").textContent = `Could not sign in. ${describe(error)}`;
      button.disabled = false;
    }
  });

  setupDropzone();
  $("clear-uploads").addEventListener("click", clearFinishedUploads);

  for (const th of document.querySelectorAll("th[data-sort]")) {
    th.querySelector("button").addEventListener("click", () => setSort(th.dataset.sort));
  }
  let searchTimer = 0;
  $("search").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => {
      list.q = $("search").value.trim();
      list.cursors = [null];
      list.page = 0;
      loadList();
    }, SEARCH_DELAY_MS);
  });
  $("page-size").addEventListener("change", () => {
    list.limit = Number($("page-size").value);
    list.cursors = [null];
    list.page = 0;
    loadList();
  });
  $("prev-page").addEventListener("click", () => {
    if (list.page === 0) return;
    list.page -= 1;
    loadList();
  });
  $("next-page").addEventListener("click", () => {
    if (!list.next) return;
    list.cursors[list.page + 1] = list.next;
    list.page += 1;
    loadList();
  });

  $("share-form").addEventListener("submit", createShare);
  $("share-close").addEventListener("click", () => $("share-dialog").close());
  $("share-copy").addEventListener("click", copyShareUrl);
  $("share-dialog").addEventListener("close", () => {
    const target = shareTarget;
    shareTarget = null;
    $("share-url").value = ""; // the secret does not linger in the page
    if (target && target.row.isConnected) target.row.querySelector('[data-action="share"]').focus();
  });

  const dialog = $("delete-dialog");
  $("delete-cancel").addEventListener("click", closeDeleteDialog);
  $("delete-confirm").addEventListener("click", deleteConfirmed);
  dialog.addEventListener("close", () => {
    const target = pendingDelete;
    pendingDelete = null;
    // Cancelled (button or Escape): back to the button that opened the dialog.
    if (target && target.row.isConnected) target.row.querySelector('[data-action="delete"]').focus();
    if (list.stale) loadList();
  });

  start();
}

async function start() {
  await loadSignInOptions();
  if (signInOptions.oidc) {
    $("provider-signin-button").textContent = `Sign in at ${new URL(signInOptions.oidc.issuer).host}`;
    const answer = takeProviderAnswer();
    if (answer) {
      try {
        await finishProviderSignIn(answer);
        showFiles();
        announce(`Signed in as ${current.email}.`);
      } catch (error) {
        endSession();
        showAuth();
        const message = error instanceof SessionExpired ? "seau did not accept the identity provider's token." : describe(error);
        $("provider-error").textContent = `Could not sign in. ${message}`;
      }
      return;
    }
  }
  current = loadSession();
  if (sessionStorage.getItem(SIGNED_OUT_KEY)) {
    sessionStorage.removeItem(SIGNED_OUT_KEY);
    if (!current) {
      showAuth({ notice: SIGNED_OUT_MESSAGE });
      return;
    }
  }
  if (!current) showAuth();
  else if (current.refreshToken && signInOptions.oidc && renewAt(current) <= Date.now()) {
    await refreshSession();
    if (current) showFiles();
  } else if (current.expiresAt <= Date.now()) expireSession();
  else {
    showFiles();
    scheduleRefresh();
  }
}

setup();
