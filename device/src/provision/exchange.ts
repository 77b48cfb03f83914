import {
  PROVISION_PATH,
  ProvisionError,
  ProvisionResponse,
  SCHEMA_VERSION,
  summarizeIssues,
} from '../../../protocol/index.js';

export type ExchangeOutcome =
  { ok: true; response: ProvisionResponse } | { ok: false; reason: string; message: string; fix: string };

/** POSTs the code to the gateway's provisioning endpoint; never throws (network errors become refusals). */
export async function exchangeCode(opts: {
  gatewayUrl: string;
  code: string;
  preview: boolean;
  hostname?: string;
  fetch?: typeof fetch;
  timeoutMs?: number;
}): Promise<ExchangeOutcome> {
  const doFetch = opts.fetch ?? fetch;
  let url: URL;
  try {
    url = new URL(PROVISION_PATH, opts.gatewayUrl);
  } catch {
    return {
      ok: false,
      reason: 'bad-url',
      message: `"${opts.gatewayUrl}" is not a URL`,
      fix: 'pass --gateway http://HOST:PORT (the gateway admin address the coordinator gave you)',
    };
  }
  let res: Response;
  try {
    res = await doFetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        schemaVersion: SCHEMA_VERSION,
        code: opts.code,
        ...(opts.preview ? { preview: true } : {}),
        ...(opts.hostname ? { hostname: opts.hostname.slice(0, 200) } : {}),
      }),
      signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
    });
  } catch (err) {
    return {
      ok: false,
      reason: 'unreachable',
      message: `cannot reach the gateway at ${url.origin}: ${(err as Error).message}`,
      fix: 'check the network (ping the gateway host), the --gateway address and port, and that the gateway runs',
    };
  }
  let body: unknown;
  try {
    body = await res.json();
  } catch {
    body = null;
  }
  if (res.ok) {
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
    reason: `http-${res.status}`,
    message: `the gateway refused with HTTP ${res.status}`,
    fix: 'check that --gateway points at the gateway admin address (not the MQTT port)',
  };
}
