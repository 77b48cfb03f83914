import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { renderJsonSchemas } from '../../protocol/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'protocol');

describe('committed JSON Schemas', () => {
  const rendered = renderJsonSchemas();

  it('exist for every payload and nothing else', () => {
    expect(readdirSync(join(root, 'json-schema')).sort()).toEqual(Object.keys(rendered).sort());
  });

  it.each(Object.keys(rendered))(
    '%s matches the zod schema (run `npm run schemas` if this fails)',
    (file) => {
      const committed = readFileSync(join(root, 'json-schema', file), 'utf8');
      expect(committed).toBe(rendered[file]);
    },
  );
});
