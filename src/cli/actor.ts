/**
 * The change-log actor of CLI commands: `cli:<os user>` (`cli:unknown` when the user cannot
 * be read, e.g. a container without a passwd entry).
 */
import { userInfo } from 'node:os';

/** `cli:<os user>`. */
export function cliActor(): string {
  try {
    return `cli:${userInfo().username}`;
  } catch {
    return 'cli:unknown';
  }
}
