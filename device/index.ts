/** visittag device: programmatic entry (the simulator and tests), the CLI is a thin shell over it. */
import { Device } from './src/device.js';
import type { CreateDeviceOptions } from './src/device.js';

export { Device, FIRMWARE_VERSION } from './src/device.js';
export type { CreateDeviceOptions, DeviceEvents, TapReport } from './src/device.js';
export type { DeviceStatus, WireStatus } from './src/status.js';
export { DeviceSettings, ConfigError, parseDeviceSettings, loadDeviceSettings } from './src/config.js';
export type { DeviceSettingsInput, ReaderSettings, FeedbackSettings } from './src/config.js';
export type { CardReader, CardReaderEvents } from './src/ports/card-reader.js';
export { FEEDBACK_PATTERNS } from './src/ports/feedback.js';
export type { Feedback, FeedbackPattern, SignalOptions } from './src/ports/feedback.js';
export type { ClockSync, ResyncOutcome } from './src/ports/clock-sync.js';
export { signalOptions } from './src/feedback-mode.js';
export { SystemdClockSync, createSystemdClockSync } from './src/drivers/systemd-clock-sync.js';
export type { RunCommand, CommandOutcome } from './src/drivers/systemd-clock-sync.js';
export { SimulatedCardReader } from './src/drivers/simulated-reader.js';
export { SimulatedFeedback } from './src/drivers/simulated-feedback.js';
export { ConsoleFeedback } from './src/drivers/console-feedback.js';
export { createCardReader, createFeedback, DriverUnavailableError } from './src/drivers/factory.js';
export { deviceClock } from './src/core/time.js';

/** Creates a device (not started). Pass `cardReader` / `feedback` to skip the driver factory. */
export function createDevice(opts: CreateDeviceOptions): Device {
  return new Device(opts);
}
