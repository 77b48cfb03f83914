// Writes protocol/asyncapi/asyncapi.json from the zod schemas and the topic map (part of `npm run schemas`).
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { renderAsyncApi } from '../asyncapi/render.js';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'asyncapi', 'asyncapi.json');
writeFileSync(file, renderAsyncApi());
console.log('wrote protocol/asyncapi/asyncapi.json');
