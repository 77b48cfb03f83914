/**
 * `visittag-device personalise-card`: turns a blank NTAG 424 DNA on the reader into a visittag secure
 * card (issue 18): writes the NDEF URL template, switches on SUN messages, sets the card's keys derived
 * from the master key (AN10922), then reads one SUN message back to show it works. For the card office's
 * personalisation station; a deployed reader's service must be stopped first (one program per reader).
 */
import { EXIT, parseSubcommand, toStderr, toStdout } from '../../../runtime/cli.js';
import pino from 'pino';
import { systemClock } from '../../../protocol/index.js';
import { createNfcPcscReader } from '../drivers/nfc-pcsc-reader.js';
import { readSecureProof } from '../drivers/secure-read.js';
import { KeyFileError, readMasterKeyFile } from '../secure/key-file.js';
import { keysForCard, personaliseNtag424 } from '../secure/personalise.js';

export const PERSONALISE_HELP = `visittag-device personalise-card --master-key-file FILE [--reader NAME] [--url URL]
                                 [--current-key HEX] [--timeout SECONDS]

Personalises a blank NTAG 424 DNA on the PC/SC reader: NDEF URL template, Secure Dynamic Messaging
(encrypted UID + tap counter, CMAC), and its keys (per card, derived from the master key in FILE,
JSON {"version":1,"masterKey":"<32 hex>"}, mode 0600). Waits for a card, then prints each step.
  --reader NAME        use the first PC/SC reader whose name contains NAME
  --url URL            what a phone opens when it reads the card (default https://tag.visittag.invalid/t)
  --current-key HEX    the card's current key 0 (default: the factory key, 16 zero bytes)
  --timeout SECONDS    how long to wait for a card (default 60)
Exit codes: 0 done, 1 the card refused a step (named), 64 usage, 69 no reader or card, 78 key file.`;

export async function personaliseCommand(argv: string[]): Promise<number> {
  const parsed = parseSubcommand(
    argv,
    {
      'master-key-file': { type: 'string' },
      reader: { type: 'string' },
      url: { type: 'string' },
      'current-key': { type: 'string' },
      timeout: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
    PERSONALISE_HELP,
    toStdout,
    toStderr,
    true,
  );
  if (typeof parsed === 'number') return parsed;
  const v = parsed.values;
  const currentKey = v['current-key'];
  if (!v['master-key-file'] || (currentKey !== undefined && !/^[0-9a-fA-F]{32}$/.test(currentKey))) {
    process.stderr.write(
      `--master-key-file is required; --current-key must be 32 hex characters\n\n${PERSONALISE_HELP}\n`,
    );
    return EXIT.usage;
  }
  let master: Buffer;
  try {
    master = readMasterKeyFile(v['master-key-file']);
  } catch (err) {
    process.stderr.write(`${(err as Error).message}\n`);
    return err instanceof KeyFileError ? 78 : 1;
  }
  const say = (s: string) => process.stdout.write(`${s}\n`);
  const logger = pino({ level: 'warn', name: 'visittag-personalise' }, pino.destination(2));
  const reader = createNfcPcscReader({
    logger,
    clock: systemClock,
    ...(v.reader ? { readerName: v.reader } : {}),
  });
  const timeoutMs = Number(v.timeout ?? 60) * 1000;
  try {
    const card = new Promise<{ uid: string } | null>((resolve) => {
      const t = setTimeout(() => resolve(null), timeoutMs);
      reader.on('card', (c) => {
        clearTimeout(t);
        resolve(c);
      });
    });
    reader.on('error', (e) => say(`reader: ${e.message}`));
    await reader.start();
    say('waiting for a card on the reader…');
    const c = await card;
    if (!c) {
      say(`no card within ${timeoutMs / 1000} s (is pcscd running and the reader attached?)`);
      return 69;
    }
    const uid = Buffer.from(c.uid, 'hex');
    if (uid.length !== 7) {
      say('this card has no 7-byte UID: not an NTAG 424 DNA');
      return 1;
    }
    say('card found; personalising');
    const transmit = (apdu: Buffer, max: number) => reader.transmit(apdu, max);
    const res = await personaliseNtag424(transmit, {
      uid,
      keys: keysForCard(master, uid),
      url: v.url ?? 'https://tag.visittag.invalid/t',
      ...(currentKey ? { currentMasterKey: Buffer.from(currentKey, 'hex') } : {}),
    });
    if (!res.ok) {
      say(`failed at "${res.step}": ${res.reason}`);
      return 1;
    }
    say('NDEF template written, SDM on, keys 1, 2 and 0 set');
    const check = await readSecureProof(transmit);
    if (check.kind !== 'proof') {
      say(
        `check read failed: the card gave no SUN message (${check.kind === 'error' ? check.reason : 'none'})`,
      );
      return 1;
    }
    say(
      'check read: the card now gives a fresh SUN message at every tap. Done: take the card off the reader.',
    );
    return 0;
  } finally {
    await reader.stop();
  }
}
