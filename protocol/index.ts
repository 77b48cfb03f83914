/** visittag protocol: the wire contract shared by device, gateway and simulator. Pure: no I/O. */
export * from './src/limits.js';
export * from './src/ids.js';
export * from './src/uid.js';
export * from './src/card-seal.js';
export * from './src/messages.js';
export * from './src/topics.js';
export * from './src/codec.js';
export * from './src/webhook.js';
export * from './src/standard-webhooks.js';
export * from './src/provisioning.js';
export * from './src/json-schema.js';
export * from './src/clock.js';
export * from './src/examples.js';
export * from './src/secure-card/index.js';
