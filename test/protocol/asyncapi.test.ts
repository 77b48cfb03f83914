import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Parser, type AsyncAPIDocumentInterface } from '@asyncapi/parser';
import { beforeAll, describe, expect, it } from 'vitest';
import { asyncApiDocument, payloadSchema, renderAsyncApi } from '../../protocol/asyncapi/render.js';
import {
  decode,
  DEVICE_PUBLISH_LEAVES,
  EXAMPLES,
  TOPIC_LEAVES,
  topics,
  type TopicLeaf,
} from '../../protocol/index.js';

// The AsyncAPI document is generated from the zod schemas and the topic map; this proves (1) the committed file is
// what the generator makes from today's schemas (drift fails), (2) the AsyncAPI parser accepts it without errors
// or warnings, and (3) what the parser reads back matches the topic builders, directions and schemas.
const file = join(
  dirname(fileURLToPath(import.meta.url)),
  '..',
  '..',
  'protocol',
  'asyncapi',
  'asyncapi.json',
);
const committed = readFileSync(file, 'utf8');
// The parser resolves and lints the whole document with Spectral: seconds, longer on a loaded machine.
const PARSE_TIMEOUT = 180_000;

const leafTopic: Record<TopicLeaf, (readerId: string) => string> = {
  events: topics.events,
  acks: topics.acks,
  status: topics.status,
  config: topics.config,
  commands: topics.commands,
  'command-results': topics.commandResults,
};

async function parse(text: string) {
  const { document, diagnostics } = await new Parser().parse(text);
  // Spectral severities: 0 error, 1 warning, 2 information, 3 hint.
  const problems = diagnostics
    .filter((d) => Number(d.severity) <= 1)
    .map((d) => `${d.code}: ${d.message} at ${d.path.join('.')}`);
  return { document, problems };
}

describe('protocol/asyncapi/asyncapi.json', () => {
  let doc: AsyncAPIDocumentInterface | undefined;
  let problems: string[] = [];

  beforeAll(async () => {
    ({ document: doc, problems } = await parse(committed));
  }, PARSE_TIMEOUT);

  it('is what the generator makes from the zod schemas (run `npm run schemas` if this fails)', () => {
    expect(committed).toBe(renderAsyncApi());
  });

  it('validates with the AsyncAPI parser, without errors or warnings', () => {
    expect(problems).toEqual([]);
    expect(doc).toBeDefined();
    expect(doc?.version()).toBe('3.1.0');
  });

  it('has one channel per topic leaf, at the address the topic builders make', () => {
    const channels = doc?.channels().all() ?? [];
    expect(channels).toHaveLength(TOPIC_LEAVES.length);
    for (const leaf of TOPIC_LEAVES) {
      const channel = channels.find((c) => c.address()?.endsWith(`/${leaf}`));
      expect(channel, leaf).toBeDefined();
      expect(channel?.address()?.replace('{readerId}', 'rdr-0042')).toBe(leafTopic[leaf]('rdr-0042'));
      expect(channel?.parameters().has('readerId')).toBe(true);
    }
  });

  it("describes the reader's side: send on its publish leaves, receive on the others", () => {
    for (const op of doc?.operations().all() ?? []) {
      const address = op.channels().all()[0]?.address() ?? '';
      const leaf = TOPIC_LEAVES.find((l) => address.endsWith(`/${l}`));
      expect(leaf, address).toBeDefined();
      expect(op.action()).toBe(DEVICE_PUBLISH_LEAVES.includes(leaf as TopicLeaf) ? 'send' : 'receive');
      expect(op.bindings().get('mqtt')?.value()).toMatchObject({ qos: 1 });
    }
    expect(doc?.operations().all()).toHaveLength(TOPIC_LEAVES.length);
  });

  it("each message's payload is the zod schema's JSON Schema, and its example decodes", () => {
    for (const leaf of TOPIC_LEAVES) {
      const channel = doc
        ?.channels()
        .all()
        .find((c) => c.address()?.endsWith(`/${leaf}`));
      const message = channel?.messages().all()[0];
      const payload = message?.payload()?.json();
      // The parser annotates every schema node with x-parser-* ids; drop them to compare.
      const schema: unknown = JSON.parse(
        JSON.stringify(payload ?? {}, (k, v: unknown) => (k.startsWith('x-parser-') ? undefined : v)),
      );
      expect(schema, leaf).toEqual(payloadSchema(leaf));
      const example = message?.examples().all()[0]?.payload();
      expect(example, leaf).toEqual(EXAMPLES[leaf]);
      expect(decode(leaf, 'rdr-0042', JSON.stringify(example)).ok, leaf).toBe(true);
    }
  });

  it(
    'the parser refuses a document that is broken (the validation can fail)',
    async () => {
      const broken = asyncApiDocument();
      const channels = broken.channels as Record<string, { messages: Record<string, unknown> }>;
      channels.events!.messages = { EventBatch: { $ref: '#/components/messages/NoSuchMessage' } };
      const { problems: found } = await parse(JSON.stringify(broken));
      expect(found.join('\n')).toMatch(/NoSuchMessage|invalid-ref|not exist/i);
    },
    PARSE_TIMEOUT,
  );
});
