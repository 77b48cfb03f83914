import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { createGateway } from '../../gateway/index.js';
import { main } from '../../gateway/main.js';
import { planCardImport } from '../../gateway/src/cards/csv-import.js';
import { pseudonymiseCard } from '../../protocol/index.js';
import { dbOf, silent, tempDir, testConfig, trackDataDir } from '../gateway/helpers.js';

const FLEET = 'test-fleet-key-0123456789';
const cleanups: (() => void)[] = [];
afterEach(() => cleanups.splice(0).forEach((c) => c()));

const CSV = [
  '# exported from the badge system',
  'staff;uid;name',
  'nurse-1;04:A1:B2:C3:D4:E5:F6;"Jansen; A."',
  'nurse-2;04a1b2c3d4e5f7;B',
  'nurse 3;04A1B2C3D4E5F8;bad staff',
  'nurse-4;XYZ;bad uid',
  'nurse-5;04A1B2C3D4E5F6;duplicate of line 3',
  ';04A1B2C3D4E5F9;no staff',
  '',
].join('\n');

describe('card registry CSV import', () => {
  it('plans good rows (UIDs pseudonymised) and reports each bad row with line and reason', () => {
    const plan = planCardImport(CSV, FLEET);
    // the normalised UID rides along for the gateway's sealed UID file (sealed readers' card lists, issue 16);
    // what is stored as the card is the pseudonym
    expect(plan.good).toEqual([
      {
        line: 3,
        cardRef: pseudonymiseCard('04A1B2C3D4E5F6', FLEET),
        staffRef: 'nurse-1',
        uid: '04A1B2C3D4E5F6',
      },
      {
        line: 4,
        cardRef: pseudonymiseCard('04A1B2C3D4E5F7', FLEET),
        staffRef: 'nurse-2',
        uid: '04A1B2C3D4E5F7',
      },
    ]);
    expect(plan.bad.map((b) => b.line)).toEqual([5, 6, 7, 8]);
    expect(plan.bad[0]?.reason).toMatch(/staff reference uses characters/);
    expect(plan.bad[1]?.reason).toMatch(/not a 4, 7 or 10 byte hex UID/);
    expect(plan.bad[2]?.reason).toBe('the same card is already on line 3');
    expect(plan.bad[3]?.reason).toBe('staff reference is empty');
    expect(JSON.stringify(plan.bad)).not.toContain('04A1B2C3D4E5F8'); // no raw UIDs in the report
    expect(planCardImport('name,foo\nx,y\n', FLEET).bad[0]?.reason).toMatch(/header must name "staff"/);
  });

  it('`cards import FILE` imports the good rows, lists the bad ones and exits 1', async () => {
    const tmp = tempDir('vt-cards-');
    cleanups.push(tmp.cleanup);
    const config = testConfig(join(tmp.dir, 'gw'));
    const cfgFile = join(tmp.dir, 'gw.json');
    writeFileSync(cfgFile, JSON.stringify(config));
    const csv = join(tmp.dir, 'cards.csv');
    writeFileSync(csv, CSV);
    const lines: string[] = [];
    const code = await main(
      ['cards', 'import', csv, '--config', cfgFile],
      (l) => lines.push(l),
      (l) => lines.push(l),
    );
    expect(code).toBe(1);
    expect(lines).toContain('line 7: the same card is already on line 3');
    expect(lines.at(-1)).toMatch(/^imported 2 card\(s\); 4 bad row\(s\) listed above/);
    const gw = createGateway({ config, logger: silent });
    trackDataDir(gw, config.dataDir);
    try {
      const staff = dbOf(gw).prepare('SELECT staff_ref FROM cards WHERE card_ref = ?').pluck();
      expect(staff.get(pseudonymiseCard('04A1B2C3D4E5F6', FLEET))).toBe('nurse-1');
      expect(staff.get(pseudonymiseCard('04A1B2C3D4E5F7', FLEET))).toBe('nurse-2');
      expect(dbOf(gw).prepare('SELECT count(*) FROM cards').pluck().get()).toBe(2);
    } finally {
      await gw.stop();
    }
  });
});
