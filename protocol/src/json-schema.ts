import { z } from 'zod';
import { Ack, Command, CommandResult, DeviceConfig, EventBatch, Status } from './messages.js';
import { ProvisionError, ProvisionRequest, ProvisionResponse } from './provisioning.js';
import { WebhookBatch } from './webhook.js';

/** Every wire payload, by the file name of its exported JSON Schema. */
export const EXPORTED_SCHEMAS = {
  'event-batch': EventBatch,
  ack: Ack,
  status: Status,
  config: DeviceConfig,
  command: Command,
  'command-result': CommandResult,
  'webhook-batch': WebhookBatch,
  'provision-request': ProvisionRequest,
  'provision-response': ProvisionResponse,
  'provision-error': ProvisionError,
} as const;

/** JSON Schema (draft 2020-12) text of every payload, as `npm run schemas` writes it. */
export function renderJsonSchemas(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, schema] of Object.entries(EXPORTED_SCHEMAS)) {
    const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' });
    out[`${name}.schema.json`] =
      JSON.stringify({ $id: `https://visittag.invalid/schemas/v1/${name}.schema.json`, ...json }, null, 2) +
      '\n';
  }
  return out;
}
