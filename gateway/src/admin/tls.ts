import { readFileSync, statSync } from 'node:fs';

/** The admin API's certificate and key, read once at start-up (gateway config `admin.tls`). */
export interface AdminTlsFiles {
  certFile: string;
  keyFile: string;
}

/**
 * Reads the PEM files and says exactly what is wrong when they are not usable: a missing or unreadable
 * file, a file that is not PEM, or a private key others may read (fix: chmod 600).
 */
export function loadAdminTls(files: AdminTlsFiles): { cert: Buffer; key: Buffer } {
  const read = (field: string, path: string, what: string, marker: RegExp): Buffer => {
    let data: Buffer;
    try {
      data = readFileSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message;
      throw new Error(`admin.tls.${field}: cannot read ${path} (${code}): give the path of the ${what}`);
    }
    if (!marker.test(data.toString('latin1'))) {
      throw new Error(
        `admin.tls.${field}: ${path} is not a PEM ${what} (no "-----BEGIN" block of that kind)`,
      );
    }
    return data;
  };
  const cert = read('certFile', files.certFile, 'certificate (chain)', /-----BEGIN CERTIFICATE-----/);
  const key = read('keyFile', files.keyFile, 'private key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/);
  if (process.platform !== 'win32' && (statSync(files.keyFile).mode & 0o077) !== 0) {
    throw new Error(
      `admin.tls.keyFile: ${files.keyFile} may be read by other users: run chmod 600 ${files.keyFile} (owner: the gateway's user)`,
    );
  }
  return { cert, key };
}
