/**
 * The change-log contract on SQLite: a temp file and `:memory:`.
 */
import { onSqliteStores } from '../helpers/sqlite-stores.js';
import { runChangeLogContract } from './change-log.contract.js';

onSqliteStores(runChangeLogContract, 'gs-changes-');
