/**
 * The abuse limits are config keys (issue 16): `limits.maxSeqJump` takes effect on a real gateway, and a bad
 * value is refused naming the field.
 */
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parseGatewaySettings } from '../../gateway/src/config.js';
import {
  AckCollector,
  batchOf,
  connectReader,
  PASSWORD,
  startGateway,
  storedSeqs,
  tempDir,
  testConfig,
  waitUntil,
} from '../gateway/helpers.js';
import type { Gateway } from '../../gateway/index.js';

describe('limits config', () => {
  const tmp = tempDir('vt-limits-cfg-');
  let gw: Gateway | null = null;
  afterAll(async () => {
    await gw?.stop().catch(() => undefined);
    tmp.cleanup();
  }, 30_000);

  it('a bad limit names its field; defaults are the built-in ones', () => {
    const base = testConfig(join(tmp.dir, 'x'));
    const bad = parseGatewaySettings({ ...base, limits: { maxSeqJump: 5, readerRate: { messageBurst: 0 } } });
    expect(bad.ok).toBe(false);
    if (!bad.ok) {
      expect(bad.error).toContain('limits.maxSeqJump');
      expect(bad.error).toContain('limits.readerRate.messageBurst');
    }
    const good = parseGatewaySettings({ ...base, limits: {} });
    expect(good.ok && good.config.limits).toMatchObject({
      maxSeqJump: 1_000_000,
      authThrottle: { perSource: { burst: 30, perMinute: 30 }, perReader: { burst: 10, perMinute: 10 } },
      readerRate: { messagesPerSecond: 50 },
    });
  });

  it('limits.maxSeqJump bounds the seq jump a reader may make', async () => {
    gw = await startGateway(join(tmp.dir, 'gw'), { limits: { maxSeqJump: 1000 } });
    await gw.registry.addReader({ readerId: 'rdr-jump', clientRef: 'home-j', password: PASSWORD });
    const c = await connectReader(gw.mqttPort ?? 0, 'rdr-jump');
    const acks = await AckCollector.attach(c, 'rdr-jump');
    await acks.publish('rdr-jump', batchOf('rdr-jump', [1, 1002]));
    await acks.waitFor((a) => a.upTo === 1);
    await acks.publish('rdr-jump', batchOf('rdr-jump', [2, 900]));
    await acks.waitFor((a) => a.upTo === 2);
    await waitUntil(() => storedSeqs(gw!, 'rdr-jump').length === 3);
    // 1002 is more than 1000 above the high-water mark 1: refused, not held; 900 is within the bound
    expect(storedSeqs(gw, 'rdr-jump')).toEqual([1, 2, 900]);
    await c.endAsync();
  }, 30_000);
});
