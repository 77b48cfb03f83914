/**
 * Published test vectors, reproduced exactly: RFC 4493 (AES-CMAC), NXP AN12196 (SUN decryption and
 * SDMMAC, AuthenticateEV2First, ChangeFileSettings, ChangeKey) and NXP AN10922 (key diversification).
 */
import { describe, expect, it } from 'vitest';
import {
  aesCmac,
  authFirstCommand,
  authFirstFinish,
  authFirstPart2,
  changeKeyData,
  crc32Nxp,
  decryptPiccData,
  decryptSdmFileData,
  diversifyAes128,
  Ev2Session,
  EV2,
  piccAuthPart1,
  piccAuthPart2,
  sdmMac,
  verifySun,
} from '../../protocol/src/secure-card/index.js';

const h = (s: string) => Buffer.from(s, 'hex');
const hex = (b: Uint8Array) => Buffer.from(b).toString('hex').toUpperCase();
const ZERO = Buffer.alloc(16);

describe('AES-CMAC (RFC 4493 section 4)', () => {
  const key = h('2b7e151628aed2a6abf7158809cf4f3c');
  const msg = h(
    '6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710',
  );
  it.each([
    [0, 'bb1d6929e95937287fa37d129b756746'],
    [16, '070a16b46b4d4144f79bdd9dd04a287c'],
    [40, 'dfa66747de9ae63030ca32611497c827'],
    [64, '51f0bebf7e3b9d92fc49741779363cfe'],
  ])('message of %i bytes', (len, tag) => {
    expect(aesCmac(key, msg.subarray(0, len)).toString('hex')).toBe(tag);
  });
});

describe('AN12196 SUN (AES, all-zero factory keys)', () => {
  it('decrypts PICCENCData EF963FF7... to tag C7, UID 04DE5F1EACC040, counter 61', () => {
    const r = decryptPiccData(ZERO, h('EF963FF7828658A599F3041510671E88'));
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.value.tag).toBe(0xc7);
    expect(hex(r.value.uid)).toBe('04DE5F1EACC040');
    expect(r.value.counter).toBe(61);
  });

  it('computes SDMMAC 94EED9EE65337086 over an empty MAC input', () => {
    expect(hex(sdmMac(ZERO, h('04DE5F1EACC040'), 61))).toBe('94EED9EE65337086');
  });

  it('verifies the whole message and refuses a changed MAC, a changed PICCData or another key', () => {
    const msg = { piccEnc: h('EF963FF7828658A599F3041510671E88'), mac: h('94EED9EE65337086') };
    const keys = { metaReadKey: ZERO, fileReadKeyFor: () => ZERO };
    const ok = verifySun(msg, keys);
    expect(ok.ok && ok.counter === 61 && hex(ok.uid) === '04DE5F1EACC040').toBe(true);
    expect(verifySun({ ...msg, mac: h('94EED9EE65337087') }, keys)).toMatchObject({ code: 'bad-mac' });
    expect(verifySun(msg, { ...keys, fileReadKeyFor: () => Buffer.alloc(16, 1) })).toMatchObject({
      code: 'bad-mac',
    });
    expect(verifySun(msg, { ...keys, metaReadKey: Buffer.alloc(16, 1) })).toMatchObject({
      code: 'bad-picc-data',
    });
  });

  it('second example: MAC over the mirrored "enc" data, and SDMENCFileData decryption', () => {
    const r = decryptPiccData(ZERO, h('FD91EC264309878BE6345CBE53BADF40'));
    expect(r.ok && hex(r.value.uid) === '04958CAA5C5E80' && r.value.counter === 8).toBe(true);
    const uid = h('04958CAA5C5E80');
    const input = Buffer.from('CEE9A53E3E463EF1F459635736738962&cmac=', 'ascii');
    expect(hex(sdmMac(ZERO, uid, 8, input))).toBe('ECC1E7F6C6C73BF6');
    expect(decryptSdmFileData(ZERO, uid, 8, h('CEE9A53E3E463EF1F459635736738962')).toString('ascii')).toBe(
      'xxxxxxxxxxxxxxxx',
    );
  });
});

describe('AN10922 AES-128 key diversification', () => {
  it('master 00112233..EEFF, M = 04782E21801D80 3042F5 4E585020416275 → A8DD63A3B89D54B37CA802473FDA9175', () => {
    expect(
      hex(diversifyAes128(h('00112233445566778899AABBCCDDEEFF'), h('04782E21801D803042F54E585020416275'))),
    ).toBe('A8DD63A3B89D54B37CA802473FDA9175');
  });
});

describe('AN12196 AuthenticateEV2First and secure messaging', () => {
  const rndA = h('13C5DB8A5930439FC3DEF9A4C675360F');
  const rndB = h('B9E2FC789B64BF237CCCAA20EC7E6E48');

  it('key 0, PCD side: the exact APDUs, TI and session keys (AN12196 table 14)', () => {
    expect(hex(authFirstCommand(0))).toBe('9071000002000000');
    const p2 = authFirstPart2(ZERO, h('A04C124213C186F22399D33AC2A30215'), rndA);
    expect(hex(p2.rndB)).toBe(hex(rndB));
    expect(hex(p2.apdu)).toBe('90AF00002035C3E05A752E0144BAC0DE51C1F22C56B34408A23D8AEA266CAB947EA8E0118D00');
    const fin = authFirstFinish(
      ZERO,
      0,
      rndA,
      rndB,
      h('3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F08120663'),
    );
    expect(fin.ok).toBe(true);
    if (!fin.ok) return;
    expect(hex(fin.session.ti)).toBe('9D00C4DF');
    expect(hex(fin.session.keys.enc)).toBe('1309C877509E5A215007FF0ED19CA564');
    expect(hex(fin.session.keys.mac)).toBe('4C6626F5E72EA694202139295C7A7FC7');
    expect(authFirstFinish(Buffer.alloc(16, 7), 0, rndA, rndB, Buffer.alloc(32)).ok).toBe(false);
  });

  it('key 0, PICC side (the virtual card): the same bytes back', () => {
    expect(hex(piccAuthPart1(ZERO, rndB))).toBe('A04C124213C186F22399D33AC2A30215');
    const r = piccAuthPart2(
      ZERO,
      0,
      rndB,
      h('35C3E05A752E0144BAC0DE51C1F22C56B34408A23D8AEA266CAB947EA8E0118D'),
      h('9D00C4DF'),
    );
    expect(r.ok && hex(r.answer)).toBe('3FA64DB5446D1F34CD6EA311167F5E4985B89690C04A05F17FA7AB2F08120663');
  });

  it('ChangeFileSettings enabling SDM, CommMode.Full (AN12196 table 19), and its response MAC', () => {
    const s = new Ev2Session(
      { enc: h('1309C877509E5A215007FF0ED19CA564'), mac: h('4C6626F5E72EA694202139295C7A7FC7') },
      h('9D00C4DF'),
      1,
    );
    const apdu = s.fullCommand(EV2.CHANGE_FILE_SETTINGS, h('02'), h('4000E0C1F121200000430000430000'));
    expect(hex(apdu)).toBe('905F0000190261B6D97903566E84C3AE5274467E89EAD799B7C1A0EF7A0400');
    expect(s.checkResponse(h('57BFF87B1241E93D9100'), false)).toEqual({ ok: true, data: Buffer.alloc(0) });
    expect(s.cmdCtr).toBe(2);
    const again = new Ev2Session(s.keys, s.ti, 1);
    expect(again.checkResponse(h('57BFF87B1241E93E9100'), false).ok).toBe(false);
  });

  const ck = () =>
    new Ev2Session(
      { enc: h('4CF3CB41A22583A61E89B158D252FC53'), mac: h('5529860B2FC5FB6154B7F28361D30BF9') },
      h('7614281A'),
      2,
    );

  it('ChangeKey of another key (AN12196 table 26), with its CRC32', () => {
    expect(hex(crc32Nxp(h('F3847D627727ED3BC9C4CC050489B966')))).toBe('789DFADC');
    const data = changeKeyData({
      keyNo: 2,
      authKeyNo: 0,
      newKey: h('F3847D627727ED3BC9C4CC050489B966'),
      oldKey: ZERO,
      version: 1,
    });
    expect(hex(ck().fullCommand(EV2.CHANGE_KEY, h('02'), data))).toBe(
      '90C4000029022CF362B7BF4311FF3BE1DAA295E8C68DE09050560D19B9E16C2393AE9CD1FAC75D0CE20BCD1D06E600',
    );
  });

  it('ChangeKey of the authenticated key 0 (AN12196 table 27)', () => {
    const s = ck();
    s.cmdCtr = 3;
    const data = changeKeyData({
      keyNo: 0,
      authKeyNo: 0,
      newKey: h('5004BF991F408672B1EF00F08F9E8647'),
      version: 1,
    });
    expect(hex(s.fullCommand(EV2.CHANGE_KEY, h('00'), data))).toBe(
      '90C400002900C0EB4DEEFEDDF0B513A03A95A75491818580503190D4D05053FF75668A01D6FDA6610234BDED643200',
    );
  });

  it('CommMode.MAC GetFileSettings (AN12196 table 8)', () => {
    const s = new Ev2Session({ enc: ZERO, mac: h('8248134A386E86EB7FAF54A52E536CB6') }, h('7A21085E'), 0);
    expect(hex(s.macCommand(EV2.GET_FILE_SETTINGS, h('02')))).toBe('90F5000009026597A457C8CD442C00');
  });
});
