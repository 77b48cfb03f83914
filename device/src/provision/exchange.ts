import { request as httpRequest } from 'node:http';
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import {
  gatewayPin,
  normalizeEnrollmentCode,
  PROVISION_PATH,
  ProvisionError,
  ProvisionResponse,
  publicKeySha256,
  SCHEMA_VERSION,
  splitEnrollmentCode,
  summarizeIssues,
} from '../../../protocol/index.js';

export type ExchangeOutcome =
  { ok: true; response: ProvisionResponse } | { ok: false; reason: string; message: string; fix: string };

type Refusal = Extract<ExchangeOutcome, { ok: false }>;
type Answer = { ok: true; status: number; body: unknown } | Refusal;

const MAX_RESPONSE_BYTES = 1024 * 1024;

/**
 * POSTs the code to the gateway's provisioning endpoint; never throws (network errors become refusals).
 *
 * Over HTTPS a pinned code (its last group) is checked against the key of the certificate the gateway
 * presents before anything is sent: someone posing as the gateway never sees the code and cannot hand
 * this reader another broker, CA or credentials. A code without a pin needs a certificate this device
 * already trusts (system CAs and the host name). Plain HTTP only with `allowPlainHttp`.
 */
export async function exchangeCode(opts: {
  gatewayUrl: string;
  code: string;
  preview: boolean;
  hostname?: string;
  /** Plain-HTTP requests only (tests inject a fake gateway here). */
  fetch?: typeof fetch;
  timeoutMs?: number;
  /** Accept an http:// gateway address (the code, password and keys travel in clear). */
  allowPlainHttp?: boolean;
}): Promise<ExchangeOutcome> {
  let url: URL;
  try {
    url = new URL(PROVISION_PATH, opts.gatewayUrl);
  } catch {
    return {
      ok: false,
      reason: 'bad-url',
      message: `"${opts.gatewayUrl}" is not a URL`,
      fix: 'pass --gateway https://HOST:PORT (the gateway admin address the coordinator gave you)',
    };
  }
  const { secret, pin } = splitEnrollmentCode(normalizeEnrollmentCode(opts.code));
  const payload = JSON.stringify({
    schemaVersion: SCHEMA_VERSION,
    code: secret,
    ...(opts.preview ? { preview: true } : {}),
    ...(opts.hostname ? { hostname: opts.hostname.slice(0, 200) } : {}),
    // the sealed scheme (docs/security.md "Key exposure"): the gateway answers with this reader's own card
    // keys and no fleet key. A gateway older than the field refuses it (bad-request): upgrade gateways first.
    cardSchemes: ['sealed-v1', 'fleet-key'],
  });
  const timeoutMs = opts.timeoutMs ?? 15_000;
  let answer: Answer;
  if (url.protocol === 'https:') {
    answer = await httpsPost(url, payload, pin === null ? null : { secret, pin }, timeoutMs);
  } else if (url.protocol === 'http:') {
    if (pin !== null) {
      return {
        ok: false,
        reason: 'https-required',
        message: `this code is pinned to a gateway that serves HTTPS, but the address is ${url.origin}`,
        fix: `type the address with https:// (https://${url.host}) as the coordinator gave it`,
      };
    }
    if (!opts.allowPlainHttp) {
      return {
        ok: false,
        reason: 'plain-http',
        message: `${url.origin} is plain HTTP: the code, this reader's password and keys would travel in clear`,
        fix: 'use the https:// address of the gateway; only on a closed test network pass --allow-plain-http',
      };
    }
    answer = await plainPost(url, payload, opts.fetch ?? fetch, timeoutMs);
  } else {
    return {
      ok: false,
      reason: 'bad-url',
      message: `"${opts.gatewayUrl}" is not an https:// address`,
      fix: 'pass --gateway https://HOST:PORT (the gateway admin address the coordinator gave you)',
    };
  }
  if (!answer.ok) return answer;
  return interpret(answer.status, answer.body);
}

function interpret(status: number, body: unknown): ExchangeOutcome {
  if (status >= 200 && status < 300) {
    const p = ProvisionResponse.safeParse(body);
    if (p.success) return { ok: true, response: p.data };
    return {
      ok: false,
      reason: 'bad-response',
      message: `the gateway answered something this device does not understand (${summarizeIssues(p.error.issues).slice(0, 200)})`,
      fix: 'check that --gateway points at a visittag gateway of a matching version',
    };
  }
  const e = ProvisionError.safeParse(body);
  if (e.success) {
    return {
      ok: false,
      reason: e.data.error,
      message: e.data.message + (e.data.retryAfterSec ? ` (retry in ${e.data.retryAfterSec} s)` : ''),
      fix: e.data.fix,
    };
  }
  return {
    ok: false,
    reason: `http-${status}`,
    message: `the gateway refused with HTTP ${status}`,
    fix: 'check that --gateway points at the gateway admin address (not the MQTT port)',
  };
}

const unreachable = (origin: string, detail: string): Refusal => ({
  ok: false,
  reason: 'unreachable',
  message: `cannot reach the gateway at ${origin}: ${detail}`,
  fix: 'check the network (ping the gateway host), the --gateway address and port, and that the gateway runs',
});

async function plainPost(
  url: URL,
  payload: string,
  doFetch: typeof fetch,
  timeoutMs: number,
): Promise<Answer> {
  let res: Response;
  try {
    res = await doFetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: payload,
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (err) {
    return unreachable(url.origin, (err as Error).message);
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  return { ok: true, status: res.status, body };
}

/** Colon-separated hex of the first 8 bytes (for messages: enough to compare, not a secret). */
const shortFingerprint = (b: Buffer): string =>
  [...b.subarray(0, 8)].map((x) => x.toString(16).padStart(2, '0').toUpperCase()).join(':');

const UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * One POST over a TLS connection opened here, so the certificate is checked (pin, or the system CAs)
 * before the request is written. The answer is read whole (≤ 1 MiB) before it counts: a connection
 * that breaks or is tampered with on the way (TLS record check) gives a refusal, never half a body.
 */
function httpsPost(
  url: URL,
  payload: string,
  pin: { secret: string; pin: string } | null,
  timeoutMs: number,
): Promise<Answer> {
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  const port = Number(url.port || 443);
  return new Promise<Answer>((resolveAnswer) => {
    let sent = false;
    let settled = false;
    const socket = tlsConnect({
      host,
      port,
      ...(isIP(host) ? {} : { servername: host }),
      // A pinned code trusts exactly the key it pins (a self-signed gateway certificate is fine);
      // without a pin the certificate must be valid for the host by this device's CAs.
      rejectUnauthorized: pin === null,
      ALPNProtocols: ['http/1.1'],
    });
    const done = (a: Answer): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolveAnswer(a);
    };
    const broken = (err: Error): Refusal => {
      const code = (err as NodeJS.ErrnoException).code ?? '';
      if (!sent && UNTRUSTED.has(code)) {
        return {
          ok: false,
          reason: 'untrusted-gateway',
          message: `the certificate of ${url.origin} is not trusted by this device (${code}), and the code carries no gateway pin`,
          fix: "type the whole code from the coordinator's sheet, including its last group (the gateway pin); nothing was sent",
        };
      }
      if (!sent) return unreachable(url.origin, err.message);
      return {
        ok: false,
        reason: 'connection-broken',
        message: `the connection to ${url.origin} broke or was altered during the exchange (${code || err.message}); nothing was written`,
        fix: 'run the same command again; if it then says used-code, the code was spent: ask the coordinator for a new one. If it keeps failing, use another network and tell the coordinator',
      };
    };
    const timer = setTimeout(
      () =>
        done(
          sent
            ? broken(new Error(`no complete answer within ${timeoutMs} ms`))
            : unreachable(url.origin, `no answer within ${timeoutMs} ms`),
        ),
      timeoutMs,
    );
    socket.on('error', (err: Error) => done(broken(err)));
    socket.once('secureConnect', () => {
      if (pin !== null) {
        const cert = socket.getPeerX509Certificate();
        const key = cert ? publicKeySha256(cert) : null;
        if (!key || gatewayPin(pin.secret, key) !== pin.pin) {
          done({
            ok: false,
            reason: 'gateway-not-pinned',
            message: `${url.origin} presented a certificate (key SHA-256 ${key ? shortFingerprint(key) : 'none'}…) that is not the gateway this code was issued by: someone on this network may be posing as the gateway, or the code's last group was mistyped`,
            fix: 'check the last group of the code and the --gateway address; if both are right, do not provision on this network and tell the coordinator. The code was not sent and still works',
          });
          return;
        }
      }
      sent = true;
      const req = httpRequest(
        {
          createConnection: () => socket,
          method: 'POST',
          path: url.pathname,
          headers: {
            host: url.host,
            'content-type': 'application/json',
            'content-length': Buffer.byteLength(payload),
          },
        },
        (res) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (c: Buffer) => {
            size += c.length;
            if (size > MAX_RESPONSE_BYTES) {
              done({
                ok: false,
                reason: 'bad-response',
                message: `the answer of ${url.origin} is larger than ${MAX_RESPONSE_BYTES} bytes`,
                fix: 'check that --gateway points at a visittag gateway',
              });
            } else chunks.push(c);
          });
          res.once('end', () => {
            if (!res.complete) {
              done(broken(new Error('the answer was cut off')));
              return;
            }
            let body: unknown = null;
            try {
              body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
            } catch {
              body = null;
            }
            done({ ok: true, status: res.statusCode ?? 0, body });
          });
          res.once('aborted', () => done(broken(new Error('the answer was cut off'))));
          res.on('error', (err) => done(broken(err)));
        },
      );
      req.on('error', (err) => done(broken(err)));
      req.end(payload);
    });
  });
}
