import type { AuthApiToken, AuthSession, AuthStore as AuthStorePort, AuthUser } from '../store/ports.js';
import type { Role } from './roles.js';

export type { Awaitable } from '../store/ports.js';

/**
 * The users / sessions / API tokens port with this module's roles (the port itself is in
 * store/ports.ts; adapters: store/sqlite/auth.ts, store/postgres/auth.ts).
 */
export type User = AuthUser<Role>;
export type Session = AuthSession;
export type ApiToken = AuthApiToken<Role>;
export type AuthStore = AuthStorePort<Role>;
