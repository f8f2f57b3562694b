/** The CLI's exit-code table (src/cli/exit.ts) and the printed command prefix. */
import { CommanderError } from 'commander';
import { NotFoundError } from '../../src/access-codes/errors.js';
import {
  CliNotFoundError,
  commandPrefix,
  EXIT,
  exitCodeFor,
  UsageError,
} from '../../src/cli/exit.js';
import {
  ConfigError,
  RunStateError,
  SisHttpError,
  UnknownDistrictError,
} from '../../src/errors.js';
import { ImportPreviewError } from '../../src/imports/errors.js';
import { ManualAssociationError } from '../../src/imports/manual.js';

describe('exitCodeFor', () => {
  it.each([
    ['commander usage error', 2, new CommanderError(1, 'commander.invalidArgument', 'bad')],
    ['--version / --help', 0, new CommanderError(0, 'commander.version', '0.1.0')],
    ['configuration', 2, new ConfigError('REDIS_URL: bad')],
    ['usage', 2, new UsageError('--enable and --disable together')],
    ['unknown district', 4, new UnknownDistrictError('x', ['a'])],
    ['unknown run', 4, new CliNotFoundError('no run nope')],
    ['access-code not found', 4, new NotFoundError('no section s')],
    ['unknown preview', 4, new ImportPreviewError('imp_x', 'not-found', 'no such preview')],
    ['expired preview (refused)', 1, new ImportPreviewError('imp_x', 'expired', 'expired')],
    ['unknown student', 4, new ManualAssociationError('unknown-student', 'no student')],
    ['refused association', 1, new ManualAssociationError('inactive-parent', 'inactive')],
    ['bad request', 2, new ManualAssociationError('invalid-request', 'bad')],
    ['run state', 1, new RunStateError('run r is not held')],
    ['SIS failure', 1, new SisHttpError('GET', '/ws/v1/x', 503, 'unavailable')],
    ['anything else', 1, new Error('boom')],
  ])('%s → %i', (_what, code, err) => {
    expect(exitCodeFor(err)).toBe(code);
  });

  it('names the codes once', () => {
    expect(EXIT).toEqual({
      ok: 0,
      failure: 1,
      usage: 2,
      decision: 3,
      notFound: 4,
      timeout: 5,
      cancelled: 6,
    });
  });
});

describe('commandPrefix', () => {
  it('says `npm run cli --` under npm run, `guardian-sync` otherwise', () => {
    expect(commandPrefix({})).toBe('guardian-sync');
    expect(
      commandPrefix({ npm_lifecycle_event: 'cli', npm_lifecycle_script: 'tsx src/cli/main.ts' }),
    ).toBe('npm run cli --');
    expect(
      commandPrefix({
        npm_lifecycle_event: 'demo',
        npm_lifecycle_script: 'tsx src/cli/main.ts demo',
      }),
    ).toBe('npm run cli --');
    // another package's script that runs the installed bin
    expect(
      commandPrefix({ npm_lifecycle_event: 'sync', npm_lifecycle_script: 'guardian-sync sync d' }),
    ).toBe('guardian-sync');
  });
});
