// Writes protocol/json-schema/*.schema.json from the zod schemas (npm run schemas).
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderJsonSchemas } from '../index.js';

const dir = join(dirname(fileURLToPath(import.meta.url)), '..', 'json-schema');
mkdirSync(dir, { recursive: true });
const files = renderJsonSchemas();
for (const f of readdirSync(dir)) if (!(f in files)) rmSync(join(dir, f));
for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
console.log(`wrote ${Object.keys(files).length} schemas to protocol/json-schema/`);
