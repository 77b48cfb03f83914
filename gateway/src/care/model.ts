/**
 * The care-plan vocabulary (issue 11), shared with reports (issue 12). It lives in
 * gateway/src/store/care-model.ts since the care plan's tables moved behind a store port (issue 14); this
 * module keeps the names other modules import.
 */
export * from '../store/care-model.js';
