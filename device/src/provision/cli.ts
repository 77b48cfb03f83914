import { EXIT, parseSubcommand, toStderr, toStdout } from '../../../runtime/cli.js';
import { provision } from './provision.js';

export const PROVISION_HELP = `visittag-device provision --gateway URL --code CODE [--config FILE] [--data-dir DIR]
                          [--reader nfc-pcsc|simulated] [--feedback console|simulated|reader-led]
                          [--owner USER] [--force-new-identity] [--allow-plain-http] [--allow-plain-mqtt]

Exchanges a one-time enrollment code (from the coordinator: visittag-gateway readers enroll) for
this reader's own credentials and the broker's CA, and writes the config file (mode 0600). An
existing config keeps its other settings (drivers, pins); an existing journal with unsent events is
kept. If the code is for a different reader id while unsent events exist, it refuses unless
--force-new-identity (the old journal is then renamed, never deleted).
The code's last group (e.g. ABCD-EFGH-JKMN-PQ) pins the gateway's certificate: provisioning stops,
before the code is sent, if another certificate answers.
  --gateway URL        the gateway admin address, e.g. https://gateway.local:8080
  --owner USER         chown the config to the service user (default "visittag" when run as root)
  --allow-plain-http   accept an http:// gateway (closed test networks only: all travels in clear)
  --allow-plain-mqtt   accept a broker without TLS (mqtt://; closed test networks only)`;

export async function provisionCommand(argv: string[], defaultConfig: string): Promise<number> {
  const parsed = parseSubcommand(
    argv,
    {
      gateway: { type: 'string' },
      code: { type: 'string' },
      config: { type: 'string' },
      'data-dir': { type: 'string' },
      reader: { type: 'string' },
      feedback: { type: 'string' },
      owner: { type: 'string' },
      'force-new-identity': { type: 'boolean' },
      'allow-plain-http': { type: 'boolean' },
      'allow-plain-mqtt': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    PROVISION_HELP,
    toStdout,
    toStderr,
    true,
  );
  if (typeof parsed === 'number') return parsed;
  const values = parsed.values;
  if (!values.gateway || !values.code) {
    process.stderr.write(`--gateway and --code are required\n\n${PROVISION_HELP}\n`);
    return EXIT.usage;
  }
  const reader = values.reader;
  if (reader !== undefined && reader !== 'simulated' && reader !== 'nfc-pcsc') {
    process.stderr.write('--reader takes nfc-pcsc or simulated\n');
    return EXIT.usage;
  }
  const fb = values.feedback;
  if (fb !== undefined && fb !== 'console' && fb !== 'simulated' && fb !== 'reader-led') {
    process.stderr.write(
      '--feedback takes console, simulated or reader-led (johnny-five: edit the config)\n',
    );
    return EXIT.usage;
  }
  try {
    const r = await provision({
      gatewayUrl: values.gateway,
      code: values.code,
      configPath: values.config ?? defaultConfig,
      ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
      ...(reader ? { readerDriver: reader } : {}),
      ...(fb ? { feedbackDriver: fb } : {}),
      ...(values.owner ? { owner: values.owner } : {}),
      ...(values['force-new-identity'] ? { forceNewIdentity: true } : {}),
      ...(values['allow-plain-http'] ? { allowPlainHttp: true } : {}),
      ...(values['allow-plain-mqtt'] ? { allowPlainMqtt: true } : {}),
    });
    const write = (s: string) => (r.ok ? process.stdout : process.stderr).write(`${s}\n`);
    r.lines.forEach(write);
    return r.ok ? 0 : r.exitCode;
  } catch (err) {
    process.stderr.write(`provisioning failed: ${(err as Error).message}\n`);
    return 1;
  }
}
