/** The access-code and sections repository contract on SQLite (temp file and `:memory:`). */
import { runAccessCodesContract } from './access-codes.contract.js';
import { onSqliteStores } from '../helpers/sqlite-stores.js';

onSqliteStores(runAccessCodesContract, 'gs-ac-');
