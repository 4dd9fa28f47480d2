/**
 * Permission tests need a user the OS actually restricts: root ignores file modes, so when the suite runs as root
 * (CI does) the CLI under test is started as `nobody`.
 */

/** uid/gid options for runCli: nobody when we are root, ourselves otherwise. */
export function restrictedUser(): { uid?: number; gid?: number } {
  return process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
}
