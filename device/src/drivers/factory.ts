import type { Logger } from 'pino';
import type { Clock } from '../../../protocol/index.js';
import type { FeedbackSettings, ReaderSettings } from '../config.js';
import type { CardReader } from '../ports/card-reader.js';
import type { Feedback } from '../ports/feedback.js';

/**
 * The one place that picks drivers (CONTRIBUTING.md, "Ports and drivers"). Each driver module is loaded with a dynamic
 * import(), so a simulated device never loads a native module (nfc-pcsc, serialport).
 */

export interface DriverDeps {
  logger: Logger;
  clock: Clock;
}

/** A reader that can send PC/SC escape commands (its own LED/buzzer). */
export interface EscapeCapable {
  escape(apdu: Buffer): Promise<Buffer>;
}

export class DriverUnavailableError extends Error {
  constructor(driver: string, cause: unknown, fix: string) {
    super(`driver "${driver}" is configured but cannot be loaded: ${errMessage(cause)}. Fix: ${fix}`);
    this.name = 'DriverUnavailableError';
  }
}

function errMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Imports an npm module named in the config (an IO plugin), resolved from node_modules at run time. */
async function load(specifier: string): Promise<Record<string, unknown>> {
  return (await import(specifier)) as Record<string, unknown>;
}

/**
 * The driver modules are imported by literal paths (never computed), so the firmware bundle carries
 * them as lazy chunks; their own hardware packages stay external and load from node_modules.
 */
function fn<T>(mod: object, name: string, specifier: string): T {
  const f = (mod as Record<string, unknown>)[name];
  if (typeof f !== 'function') throw new Error(`${specifier} does not export ${name}()`);
  return f as T;
}

export async function createCardReader(cfg: ReaderSettings, deps: DriverDeps): Promise<CardReader> {
  switch (cfg.driver) {
    case 'simulated': {
      const { SimulatedCardReader } = await import('./simulated-reader.js');
      return new SimulatedCardReader({ clock: deps.clock });
    }
    case 'nfc-pcsc': {
      const spec = './nfc-pcsc-reader.js';
      let create: (o: Record<string, unknown>) => CardReader;
      try {
        create = fn(await import('./nfc-pcsc-reader.js'), 'createNfcPcscReader', spec);
      } catch (err) {
        throw new DriverUnavailableError(
          'nfc-pcsc',
          err,
          'install the optional nfc-pcsc package (apt install libpcsclite-dev pcscd, then npm install), ' +
            'or set reader.driver to "simulated"',
        );
      }
      // DESFire authentication (issue 18): the read-key file is checked now, so a loose or missing
      // file stops the start with the fix instead of failing at the first tap
      let desfire: unknown;
      if (cfg.desfire) {
        const { readDesfireKeyFile } = await import('../secure/key-file.js');
        const { DesfireReaderKey } = await import('./desfire-auth.js');
        const d = cfg.desfire;
        desfire = new DesfireReaderKey(Buffer.from(d.aid, 'hex'), d.keyNo, readDesfireKeyFile(d.keyFile));
      }
      return create({
        logger: deps.logger,
        clock: deps.clock,
        ...(cfg.readerName !== undefined ? { readerName: cfg.readerName } : {}),
        ...(cfg.pcscdSocket !== undefined ? { pcscdSocket: cfg.pcscdSocket } : {}),
        ...(desfire ? { desfire } : {}),
      });
    }
  }
}

export interface FeedbackDeps extends DriverDeps {
  /** The card reader in use (reader-led feedback drives its LED/buzzer). */
  reader?: CardReader;
  /** An IO plugin instance for johnny-five (tests pass a mock-firmata); default: built from cfg.ioPlugin. */
  io?: unknown;
}

function hasEscape(r: unknown): r is EscapeCapable {
  return typeof r === 'object' && r !== null && typeof (r as { escape?: unknown }).escape === 'function';
}

/** Builds an IO plugin instance from its module: a named class export (RaspiIO, PiGPIO, …) or default. */
async function buildIo(moduleName: string): Promise<unknown> {
  const mod = await load(moduleName);
  const candidates = [mod.default, ...Object.values(mod)];
  for (const c of candidates) {
    if (typeof c === 'function') return new (c as new () => unknown)();
  }
  throw new Error(`${moduleName} exports no IO plugin class`);
}

export async function createFeedback(cfg: FeedbackSettings, deps: FeedbackDeps): Promise<Feedback> {
  switch (cfg.driver) {
    case 'console': {
      const { ConsoleFeedback } = await import('./console-feedback.js');
      return new ConsoleFeedback();
    }
    case 'simulated': {
      const { SimulatedFeedback } = await import('./simulated-feedback.js');
      return new SimulatedFeedback({ clock: deps.clock });
    }
    case 'reader-led': {
      if (!hasEscape(deps.reader)) {
        throw new DriverUnavailableError(
          'reader-led',
          new Error('the card reader driver cannot send escape commands'),
          'use reader.driver "nfc-pcsc" with an ACR122U-class reader, or another feedback driver',
        );
      }
      const spec = './acr122-feedback.js';
      let create: (o: Record<string, unknown>) => Feedback;
      try {
        create = fn(await import('./acr122-feedback.js'), 'createAcr122Feedback', spec);
      } catch (err) {
        throw new DriverUnavailableError('reader-led', err, 'install the optional nfc-pcsc package');
      }
      return create({ logger: deps.logger, clock: deps.clock, reader: deps.reader });
    }
    case 'johnny-five': {
      const spec = './johnny-five-feedback.js';
      let create: (o: Record<string, unknown>) => Feedback;
      let io: unknown;
      try {
        create = fn(await import('./johnny-five-feedback.js'), 'createJohnnyFiveFeedback', spec);
        io = deps.io ?? (await buildIo(cfg.ioPlugin));
      } catch (err) {
        throw new DriverUnavailableError(
          'johnny-five',
          err,
          `install johnny-five and the IO plugin "${cfg.ioPlugin}" (npm install ${cfg.ioPlugin}; raspi-io only on ` +
            'Pi 1-4), or use feedback.driver "reader-led" / "console"',
        );
      }
      return create({ logger: deps.logger, clock: deps.clock, io, pins: cfg.pins });
    }
  }
}
