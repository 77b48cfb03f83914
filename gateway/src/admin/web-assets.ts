import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { AdminRoute } from './types.js';

/** Where `tsx web/build.ts` writes the web app. */
export const WEB_DIST_DIR = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'web', 'dist');

const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};
/** The web app's files are public (they hold no data; every API call they make is checked). */
export const WEB_PUBLIC_PATHS = Object.keys(FILES);

/** Serves the built web app; read on each request so a rebuild shows without a restart. */
export function webRoutes(dir = WEB_DIST_DIR): AdminRoute[] {
  return Object.entries(FILES).map(([path, f]) => ({
    method: 'GET' as const,
    path,
    handler: () => {
      const file = join(dir, f.file);
      if (!existsSync(file)) {
        return {
          status: 503,
          body: 'The web app is not built: run `npm run build:web` (or `tsx web/build.ts`) and reload.',
          contentType: 'text/plain; charset=utf-8',
        };
      }
      return { status: 200, body: readFileSync(file), contentType: f.type };
    },
  }));
}
