/** Moved to the store (store/sqlite/scope.ts); this re-export goes once no module imports it from here. */
export { SqliteScopeReader } from '../store/sqlite/scope.js';
