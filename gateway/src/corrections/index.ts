/**
 * Visit corrections (issue 13): a coordinator corrects a visit's times with a reason code; the original
 * is kept, the real person is audited, `visit.corrected` goes out once. Tables: the store's
 * (store/sqlite/corrections-migrations.ts in the instance's ordered list, store/postgres/corrections-migrations.ts).
 */
export { correctionRoutes, CORRECTION_REASONS } from './routes.js';
export { VisitCorrections, correctionKey, type Correction, type CorrectionDeps } from './service.js';
