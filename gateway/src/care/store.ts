/** The care plan's persistence port: gateway/src/store/care.ts (issue 14); the names are kept here. */
export * from '../store/care.js';
