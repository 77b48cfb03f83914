/** What the gateway CLI commands that work on the database share (enroll, replace, cards). */
import type { AuthService } from './auth/service.js';
import type { CardLifecycle } from './cards/lifecycle.js';
import type { CareModule } from './care/index.js';
import { EXIT, type Out } from '../../runtime/cli.js';
export { parseSubcommand } from '../../runtime/cli.js';
import { gatewayConfigPath, loadGatewaySettings, type GatewaySettings } from './config.js';
import type { Enrollment } from './enrollment/index.js';
import type { ReaderReplacements } from './fleet/replace.js';
import type { CardAssignResult, CardStore } from './store/ports.js';

/** The part of the gateway a one-off CLI command uses (no broker, no HTTP, no database handle). */
export interface CliGateway {
  readonly enrollment: Pick<Enrollment, 'issue'>;
  readonly replacements: Pick<ReaderReplacements, 'issue'>;
  readonly registry: {
    addCard(c: { cardRef: string; staffRef: string; actor?: string }): CardAssignResult;
    addCards(cs: ReadonlyArray<{ cardRef: string; staffRef: string; actor: string }>): CardAssignResult[];
  };
  readonly cards: Pick<CardStore, 'get' | 'unknown'>;
  /** Revoke, reinstate, validity, replacement, full-list withdrawal (audited; gateway/src/cards). */
  readonly cardLifecycle: Pick<
    CardLifecycle,
    'revoke' | 'reinstate' | 'setValidity' | 'replace' | 'withdrawMissing'
  >;
  readonly care: Pick<CareModule, 'plan'>;
  /** Accounts (visittag-gateway user …; gateway/src/auth/cli.ts). */
  readonly access: { readonly service: Pick<AuthService, 'createUser' | 'listUsers'> };
}

/**
 * Opens the gateway on `config` (not started), runs `fn`, always closes it. Supplied by the process
 * entry (gateway/main.ts), which owns the composition root: a command module never imports it.
 */
export type OpenGateway = (
  config: GatewaySettings,
  fn: (gw: CliGateway) => number | Promise<number>,
) => Promise<number>;

/**
 * The gateway's settings for a subcommand: the file `--config` names (or the default path), loaded and
 * validated. Returns them with the file's path, or EX_CONFIG after printing why.
 */
export function loadSubcommandSettings(
  configOption: string | undefined,
  err: Out,
): { config: GatewaySettings; file: string } | number {
  const file = gatewayConfigPath(configOption);
  const loaded = loadGatewaySettings(file);
  if (!loaded.ok) {
    err(loaded.error);
    return EXIT.config;
  }
  return { config: loaded.config, file };
}

/** The `visittag-device provision …` line a technician types for `code`. */
export function provisionCommandLine(config: GatewaySettings, code: string): string {
  const host = config.admin.host === '0.0.0.0' ? '<gateway-host>' : config.admin.host;
  const m = config.mqtt;
  const plainMqtt = m.mode === 'embedded' ? !m.tls : /^(mqtt|ws|tcp):\/\//i.test(m.url);
  // Without TLS the reader refuses unless told explicitly (closed test networks only).
  const flags = `${config.admin.tls ? '' : ' --allow-plain-http'}${plainMqtt ? ' --allow-plain-mqtt' : ''}`;
  const scheme = config.admin.tls ? 'https' : 'http';
  return `visittag-device provision --gateway ${scheme}://${host}:${config.admin.port} --code ${code}${flags}`;
}
