/** Secure cards (NTAG 424 DNA SUN, DESFire EV2/EV3 AES): pure AES-128 crypto shared by device, gateway and tests. */
export * from './aes.js';
export * from './diversify.js';
export * from './sun.js';
export * from './ev2.js';
export * from './desfire-proof.js';
