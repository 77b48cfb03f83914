import * as client from 'openid-client';
import { OidcSettings } from './oidc-settings.js';

export { OidcSettings };

interface Pending {
  verifier: string;
  nonce: string;
  createdMs: number;
}

/**
 * Single sign-on with OpenID Connect (authorization code + PKCE, state and nonce) via openid-client.
 * The provider only says who someone is; the role and areas come from the gateway's own account.
 */
export class OidcLogin {
  private config: client.Configuration | null = null;
  private readonly pending = new Map<string, Pending>();

  constructor(
    private readonly settings: OidcSettings,
    private readonly now: () => number,
  ) {}

  private async configuration(): Promise<client.Configuration> {
    if (this.config) return this.config;
    const s = this.settings;
    this.config = await client.discovery(
      new URL(s.issuer),
      s.clientId,
      s.clientSecret,
      undefined,
      s.allowHttp ? { execute: [client.allowInsecureRequests] } : undefined,
    );
    return this.config;
  }

  /** The provider URL to send the browser to, and the state to bind to the browser (cookie). */
  async start(): Promise<{ url: string; state: string }> {
    const config = await this.configuration();
    const now = this.now();
    for (const [k, p] of this.pending) if (now - p.createdMs > 10 * 60_000) this.pending.delete(k);
    const verifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    this.pending.set(state, { verifier, nonce, createdMs: now });
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: this.settings.redirectUri,
      scope: 'openid profile email',
      code_challenge: await client.calculatePKCECodeChallenge(verifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    });
    return { url: url.href, state };
  }

  /** Exchanges the code; returns the subject ('iss|sub') and a name hint, or throws with the reason. */
  async finish(
    query: URLSearchParams,
    browserState: string | undefined,
  ): Promise<{ subject: string; name?: string }> {
    const state = query.get('state') ?? '';
    const p = this.pending.get(state);
    if (!p || !browserState || browserState !== state) {
      throw new Error('unknown or expired login attempt: start the sign-in again');
    }
    this.pending.delete(state);
    const config = await this.configuration();
    const current = new URL(this.settings.redirectUri);
    current.search = query.toString();
    const tokens = await client.authorizationCodeGrant(config, current, {
      pkceCodeVerifier: p.verifier,
      expectedState: state,
      expectedNonce: p.nonce,
    });
    const claims = tokens.claims();
    if (!claims) throw new Error('the provider returned no ID token');
    const pick = (c: Record<string, unknown>): string | undefined =>
      typeof c.preferred_username === 'string'
        ? c.preferred_username
        : typeof c.email === 'string'
          ? c.email
          : undefined;
    // conforming providers put profile claims in the ID token only when asked: fall back to UserInfo
    const name = pick(claims) ?? pick(await client.fetchUserInfo(config, tokens.access_token, claims.sub));
    return { subject: `${claims.iss}|${claims.sub}`, ...(name ? { name } : {}) };
  }
}
