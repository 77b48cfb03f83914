import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { publicKeySha256 } from '../../../protocol/index.js';
import type { GatewaySettings } from '../config.js';
import { plainRemoteBroker } from '../../../runtime/plain-broker.js';

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates of a PEM file, in file order; throws naming the config field when there are none. */
export function readPemCertificates(path: string, field: string): { pem: string; cert: X509Certificate }[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
    throw new Error(`${field}: cannot read ${path} (${code}): give the path of a PEM certificate file`);
  }
  const blocks = text.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new Error(`${field}: ${path} holds no PEM certificate`);
  return blocks.map((pem) => {
    try {
      return { pem: `${pem}\n`, cert: new X509Certificate(pem) };
    } catch (err) {
      throw new Error(
        `${field}: ${path} holds a certificate that cannot be read (${(err as Error).message})`,
      );
    }
  });
}

/**
 * The SHA-256 of the admin server's certificate key (its first certificate), which enrollment codes
 * pin; null when the admin API is plain HTTP (codes then carry no pin).
 */
export function adminKeySha256(admin: GatewaySettings['admin']): Buffer | null {
  if (!admin.tls) return null;
  const [leaf] = readPemCertificates(admin.tls.certFile, 'admin.tls.certFile');
  return leaf ? publicKeySha256(leaf.cert) : null;
}

function selfSigned(c: X509Certificate): boolean {
  try {
    return c.checkIssued(c) && c.verify(c.publicKey);
  } catch {
    return false;
  }
}

/**
 * The CA a reader needs for the broker, handed out with its credentials: the configured CA file
 * (`mqtt.tls.caFile` for the embedded broker, `mqtt.caFile` for an external one), else the embedded
 * broker's own certificate when it is self-signed. `warning` says why none is delivered for mqtts.
 */
export function brokerCaFor(mqtt: GatewaySettings['mqtt']): { ca: string | null; warning: string | null } {
  if (mqtt.mode === 'external') {
    if (!mqtt.caFile) return { ca: null, warning: null };
    return {
      ca: readPemCertificates(mqtt.caFile, 'mqtt.caFile')
        .map((c) => c.pem)
        .join(''),
      warning: null,
    };
  }
  if (!mqtt.tls) return { ca: null, warning: null };
  if (mqtt.tls.caFile) {
    return {
      ca: readPemCertificates(mqtt.tls.caFile, 'mqtt.tls.caFile')
        .map((c) => c.pem)
        .join(''),
      warning: null,
    };
  }
  const chain = readPemCertificates(mqtt.tls.certFile, 'mqtt.tls.certFile');
  const top = chain[chain.length - 1];
  if (top && selfSigned(top.cert)) return { ca: top.pem, warning: null };
  return {
    ca: null,
    warning:
      'mqtt.tls has no caFile and its certificate is not self-signed: readers get no CA and must trust the issuer already; set mqtt.tls.caFile to the CA that signed it if it is a private CA',
  };
}

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

/**
 * Why `visittag-gateway run` must not start with this broker, or null. mqtts is the production default: an
 * embedded broker without `mqtt.tls` may listen on loopback only (a local bridge, tests), elsewhere only
 * with `mqtt.allowPlain: true`; an external broker's URL without TLS may point at loopback only, elsewhere
 * likewise only with `mqtt.allowPlain: true` (the gateway's own broker password, every reader's taps and the
 * dynamic-security account would cross the network in clear, and readers are handed that URL at
 * provisioning).
 */
export function plainBrokerProblem(mqtt: GatewaySettings['mqtt']): string | null {
  if (mqtt.allowPlain === true) return null;
  if (mqtt.mode === 'external') {
    if (!plainRemoteBroker(mqtt.url)) return null;
    return [
      `mqtt.url is ${mqtt.url}: an external broker without TLS on another machine; the gateway's broker password, taps and card pseudonyms would cross the network in clear, and readers provisioned here would be given that URL.`,
      "Fix: use the broker's TLS listener (mqtts://host:8883, with mqtt.caFile for a private CA; docs/scale-out.md),",
      'or run the gateway on the broker\'s machine against 127.0.0.1; on a closed test network only, set "allowPlain": true in "mqtt".',
    ].join('\n');
  }
  if (mqtt.tls || LOOPBACK.has(mqtt.host)) return null;
  return [
    `mqtt.tls is not set and the broker listens on ${mqtt.host}: taps, card pseudonyms and reader passwords would cross the network in clear.`,
    'Fix: set mqtt.tls (certFile, keyFile, and caFile for a private CA; gateway/README.md "TLS") and use port 8883,',
    'or bind mqtt.host to 127.0.0.1; on a closed test network only, set "allowPlain": true in "mqtt".',
  ].join('\n');
}
