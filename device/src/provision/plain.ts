/**
 * mqtts is the production default (issue 16): a reader sends its taps, card references and password to
 * its broker, so a plain `mqtt://` (or `ws://`, `tcp://`) broker off this machine needs the explicit
 * `mqtt.allowPlain: true` (written by `provision --allow-plain-mqtt`; closed test networks only).
 */
import { plainRemoteBroker } from '../../../runtime/plain-broker.js';

export { plainRemoteBroker };

/** Why `visittag-device run` must not start with this broker, or null. */
export function plainBrokerProblem(mqtt: { url: string; allowPlain?: boolean | undefined }): string | null {
  if (mqtt.allowPlain === true || !plainRemoteBroker(mqtt.url)) return null;
  return [
    `REFUSED: mqtt.url is ${mqtt.url}, a broker without TLS on another machine: taps, card references and this reader's password would cross the network in clear.`,
    'Fix: provision the reader again from a gateway with mqtt.tls (its config then says mqtts:// with the CA),',
    'or on a closed test network only set "allowPlain": true in "mqtt" of the config.',
    'Nothing was started.',
  ].join('\n');
}
