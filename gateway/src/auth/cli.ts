/** `visittag-gateway user …`: accounts from the command line (the first admin comes from here). */
import { randomBytes } from 'node:crypto';
import { userInfo } from 'node:os';
import { z } from 'zod';
import { EXIT } from '../../../runtime/cli.js';
import { loadSubcommandSettings, parseSubcommand, type OpenGateway } from '../cli-gateway.js';
import { onPostgres, withPgAccess } from '../cli/pg-offline.js';
import type { AuthService } from './service.js';
import { ROLES } from './roles.js';

type Out = (line: string) => void;

export const USER_HELP = `visittag-gateway user add NAME --role ROLE [--areas A,B] [--provider P] [--staff STAFF_REF] [--display-name TEXT] [--password-stdin] [--config FILE]
visittag-gateway user list [--json] [--config FILE]

add: creates a local account. ROLE is one of ${ROLES.join(', ')}. A coordinator, unit manager or care
staff member sees only the areas given with --areas (and the provider given with --provider); without
--areas they see nothing. A care staff account is bound to one staff member with --staff (their own
registrations only). There is no default password: with --password-stdin the first line of stdin is
the password (at least 12 characters; e.g. from a password manager: ... | visittag-gateway user add …),
otherwise a random one is generated and printed ONCE. The change is in the audit log as cli:<your user>.
The first admin: visittag-gateway user add admin --role admin
list: the accounts (never a password or hash).`;

function osUser(): string {
  try {
    return userInfo().username || 'unknown';
  } catch {
    return 'unknown';
  }
}

export async function userCommand(
  argv: string[],
  out: Out,
  err: Out,
  withGateway: OpenGateway,
  readStdin: () => Promise<string>,
): Promise<number> {
  const parsed = parseSubcommand(
    argv,
    {
      config: { type: 'string' },
      role: { type: 'string' },
      areas: { type: 'string' },
      provider: { type: 'string' },
      staff: { type: 'string' },
      'display-name': { type: 'string' },
      'password-stdin': { type: 'boolean' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    USER_HELP,
    out,
    err,
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const [sub, name] = positionals;
  if (sub !== 'add' && sub !== 'list') {
    err(USER_HELP);
    return EXIT.usage;
  }
  if (sub === 'add') {
    const problems: string[] = [];
    if (!name) problems.push('NAME is required (the login name, e.g. anna.svensson)');
    if (!values.role || !(ROLES as readonly string[]).includes(values.role)) {
      problems.push(`--role is required: one of ${ROLES.join(', ')}`);
    }
    if (problems.length) {
      err(problems.join('\n'));
      return EXIT.usage;
    }
  }
  const loaded = loadSubcommandSettings(values.config, err);
  if (typeof loaded === 'number') return loaded;
  let password: string;
  let generated = false;
  if (sub === 'add' && values['password-stdin']) {
    password = (await readStdin()).split(/\r?\n/)[0] ?? '';
  } else {
    password = randomBytes(18).toString('base64url');
    generated = true;
  }
  // on a postgres config the accounts every instance shares (issue 14), else the gateway's SQLite file
  const withAccounts = (fn: (s: Pick<AuthService, 'createUser' | 'listUsers'>) => Promise<number>) =>
    onPostgres(loaded.config)
      ? withPgAccess(loaded.config, fn)
      : withGateway(loaded.config, (gw) => fn(gw.access.service));
  return withAccounts(async (service) => {
    if (sub === 'list') {
      const users = await service.listUsers();
      if (values.json) out(JSON.stringify({ users }, null, 2));
      else {
        for (const u of users) {
          out(
            [
              u.name,
              u.role,
              u.areas.join(',') || '-',
              u.provider ?? '-',
              u.disabled ? 'disabled' : 'active',
            ].join('\t'),
          );
        }
        if (!users.length)
          out('(no users: add the first admin with: visittag-gateway user add admin --role admin)');
      }
      return EXIT.ok;
    }
    try {
      const areas = (values.areas ?? '')
        .split(',')
        .map((a) => a.trim())
        .filter(Boolean);
      const u = await service.createUser(`cli:${osUser()}`, {
        name: name ?? '',
        displayName: values['display-name'] ?? name ?? '',
        role: values.role as (typeof ROLES)[number],
        areas,
        provider: values.provider ?? null,
        staffRef: values.staff ?? null,
        password,
        reason: 'added with visittag-gateway user add',
      });
      out(`user ${u.name} added (role ${u.role}${areas.length ? `, areas ${areas.join(',')}` : ''})`);
      if (generated) out(`password (shown once; store it now, change it after the first login): ${password}`);
      return EXIT.ok;
    } catch (e) {
      const msg =
        e instanceof z.ZodError
          ? e.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; ')
          : e instanceof Error
            ? e.message
            : String(e);
      err(`cannot add user: ${msg}`);
      return EXIT.failure;
    }
  });
}
