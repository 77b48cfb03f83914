/**
 * Runs before every test file (vitest.config.ts `setupFiles`), also in the workers the files share.
 * The web and web-api files build "today's" plan around the clock and pin it to daytime at night
 * (test/support/daytime.ts); their helper modules pin on import, but a shared worker imports a helper once,
 * so the pin is made here for each such file and undone after every file, whatever it did.
 */
import { afterAll, expect } from 'vitest';
import { pinDaytime, unpinDaytime } from './daytime.js';

const file = expect.getState().testPath ?? '';
if (/[\\/]test[\\/]web(-api)?[\\/]/.test(file)) pinDaytime();
afterAll(() => unpinDaytime());
