/**
 * Visit corrections (issue 13): a coordinator corrects a visit's times with a reason code; the original
 * is kept, the real person is audited, `visit.corrected` goes out once. Tables: ./migrations.ts,
 * applied by the composition root after the gateway's own list.
 */
export { correctionMigrations } from './migrations.js';
export { correctionRoutes, CORRECTION_REASONS } from './routes.js';
export { VisitCorrections, correctionKey, type Correction, type CorrectionDeps } from './service.js';
