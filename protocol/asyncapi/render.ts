/**
 * The AsyncAPI 3.1 document of the reader ⇄ gateway MQTT interface, generated from the topic map
 * (protocol/src/topics.ts, protocol/src/codec.ts) and the zod schemas (z.toJSONSchema, JSON Schema draft-07,
 * which AsyncAPI's schema format accepts). Pure: `npm run schemas` writes the result to
 * protocol/asyncapi/asyncapi.json, and test/protocol/asyncapi.test.ts fails when the committed file drifts.
 */
import { z } from 'zod';
import { PAYLOADS } from '../src/codec.js';
import { EXAMPLES } from '../src/examples.js';
import { LIMITS, SCHEMA_VERSION } from '../src/limits.js';
import {
  DEVICE_PUBLISH_LEAVES,
  DEVICE_SUBSCRIBE_LEAVES,
  TOPIC_LEAVES,
  TOPIC_ROOT,
  type TopicLeaf,
} from '../src/topics.js';

/** Delivery flags of each leaf (also in protocol/README.md, "Topics (MQTT)"). */
export const LEAF_DELIVERY: Record<TopicLeaf, { qos: 0 | 1 | 2; retain: boolean; summary: string }> = {
  events: {
    qos: 1,
    retain: false,
    summary: `A batch of 1–${LIMITS.maxBatchEvents} tap events in sequence order, resent until acknowledged.`,
  },
  acks: {
    qos: 1,
    retain: false,
    summary:
      "The gateway's application-level acknowledgement, sent only after its durable commit: the highest contiguous sequence it holds, rejected sequences and gaps.",
  },
  status: {
    qos: 1,
    retain: true,
    summary:
      'The reader\'s online heartbeat (queue depth, clock, firmware, rejects); the last will publishes state "offline".',
  },
  config: {
    qos: 1,
    retain: true,
    summary:
      'The configuration the gateway pushes to a reader (versioned; the reader reports the applied version).',
  },
  commands: {
    qos: 1,
    retain: false,
    summary: 'A command for one reader: identify, resync-clock, restart, selftest-echo.',
  },
  'command-results': {
    qos: 1,
    retain: false,
    summary: "The reader's answer to one command, by command id.",
  },
};

const MESSAGE_NAMES: Record<TopicLeaf, string> = {
  events: 'EventBatch',
  acks: 'Ack',
  status: 'Status',
  config: 'DeviceConfig',
  commands: 'Command',
  'command-results': 'CommandResult',
};

/** camelCase id of a leaf for channel and operation keys (`command-results` → `commandResults`). */
function key(leaf: TopicLeaf): string {
  return leaf.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());
}

/** The JSON Schema (draft-07, input side) of one leaf's payload, as AsyncAPI embeds it. */
export function payloadSchema(leaf: TopicLeaf): Record<string, unknown> {
  const json = z.toJSONSchema(PAYLOADS[leaf], {
    target: 'draft-7',
    io: 'input',
    unrepresentable: 'any',
  }) as Record<string, unknown>;
  const { $schema: _drop, ...rest } = json;
  return rest;
}

/** The AsyncAPI 3.1 document, as an object. Described from the reader's side: the gateway does the opposite. */
export function asyncApiDocument(): Record<string, unknown> {
  const channels: Record<string, unknown> = {};
  const operations: Record<string, unknown> = {};
  const messages: Record<string, unknown> = {};
  const schemas: Record<string, unknown> = {};
  for (const leaf of TOPIC_LEAVES) {
    const name = MESSAGE_NAMES[leaf];
    const delivery = LEAF_DELIVERY[leaf];
    schemas[name] = payloadSchema(leaf);
    messages[name] = {
      name,
      title: name,
      summary: delivery.summary,
      contentType: 'application/json',
      payload: { $ref: `#/components/schemas/${name}` },
      examples: [{ name: `${key(leaf)}Example`, payload: EXAMPLES[leaf] }],
    };
    channels[key(leaf)] = {
      address: `${TOPIC_ROOT}/{readerId}/${leaf}`,
      title: leaf,
      description: `${delivery.summary} QoS ${delivery.qos}${delivery.retain ? ', retained' : ''}.`,
      parameters: { readerId: { $ref: '#/components/parameters/readerId' } },
      messages: { [name]: { $ref: `#/components/messages/${name}` } },
    };
    const sends = DEVICE_PUBLISH_LEAVES.includes(leaf);
    if (!sends && !DEVICE_SUBSCRIBE_LEAVES.includes(leaf)) {
      throw new Error(`topic leaf ${leaf} is neither published nor subscribed by a reader`);
    }
    operations[`${sends ? 'send' : 'receive'}${name}`] = {
      action: sends ? 'send' : 'receive',
      channel: { $ref: `#/channels/${key(leaf)}` },
      summary: sends ? `The reader publishes ${leaf}.` : `The reader subscribes to its own ${leaf}.`,
      messages: [{ $ref: `#/channels/${key(leaf)}/messages/${name}` }],
      bindings: { mqtt: { qos: delivery.qos, retain: delivery.retain, bindingVersion: '0.2.0' } },
    };
  }
  return {
    asyncapi: '3.1.0',
    info: {
      title: 'visittag reader ⇄ gateway MQTT interface',
      version: `${SCHEMA_VERSION}.0.0`,
      description: [
        'The MQTT interface between visittag tag readers (devices) and the gateway, described from the',
        "reader's side: the reader sends on `events`, `status` and `command-results` and receives on `acks`,",
        '`config` and `commands` under its own subtree only; the gateway does the opposite for every reader',
        `(\`${TOPIC_ROOT}/+/{leaf}\`). Every payload carries \`schemaVersion: ${SCHEMA_VERSION}\`; objects are`,
        'strict (unknown fields are refused) and a payload of another version is refused, never guessed.',
        `Payloads are at most ${LIMITS.maxPayloadBytes} bytes of UTF-8 JSON. The delivery contract`,
        '(journal first, application-level acks, gap-free sequences) and the examples are in protocol/README.md.',
        'Generated from the zod schemas by `npm run schemas`; do not edit by hand.',
      ].join(' '),
      license: { name: 'MIT' },
    },
    defaultContentType: 'application/json',
    servers: {
      gateway: {
        host: '{host}:{port}',
        protocol: 'mqtt',
        protocolVersion: '3.1.1',
        title: 'The gateway (embedded broker) or an external broker, plain MQTT',
        description:
          'MQTT 3.1.1 by default (the embedded broker speaks only 3.1.1); MQTT 5 through an external broker. Use TLS in production.',
        variables: {
          host: { description: 'Host name of the gateway or broker.', default: 'localhost' },
          port: { description: 'MQTT port.', default: '1883' },
        },
        security: [{ $ref: '#/components/securitySchemes/readerCredentials' }],
        bindings: {
          mqtt: {
            cleanSession: true,
            keepAlive: 30,
            lastWill: {
              topic: `${TOPIC_ROOT}/{readerId}/status`,
              qos: 1,
              retain: true,
              message: `{"schemaVersion":${SCHEMA_VERSION},"readerId":"{readerId}","state":"offline"}`,
            },
            bindingVersion: '0.2.0',
          },
        },
      },
      gatewayTls: {
        host: '{host}:{port}',
        protocol: 'secure-mqtt',
        protocolVersion: '3.1.1',
        title: 'The gateway or broker over TLS (production)',
        variables: {
          host: { description: 'Host name of the gateway or broker.', default: 'localhost' },
          port: { description: 'MQTT over TLS port.', default: '8883' },
        },
        security: [{ $ref: '#/components/securitySchemes/readerCredentials' }],
      },
    },
    channels,
    operations,
    components: {
      schemas,
      messages,
      parameters: {
        readerId: {
          description:
            "The reader's id: also its MQTT client id and username. Safe alphabet `[A-Za-z0-9][A-Za-z0-9._-]*`, at most 64 characters.",
          examples: [EXAMPLES.events.readerId],
        },
      },
      securitySchemes: {
        readerCredentials: {
          type: 'userPassword',
          description:
            'Username = reader id; the password is handed to the reader once, at provisioning. A reader may publish and subscribe only under its own subtree.',
        },
      },
    },
  };
}

/** The committed file's text. */
export function renderAsyncApi(): string {
  return JSON.stringify(asyncApiDocument(), null, 2) + '\n';
}
