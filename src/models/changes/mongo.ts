/**
 * The change log on MongoDB (placeholder: being written).
 */
import type { Connection } from 'mongoose';
import type { ChangeLogRepository } from './types.js';

export class MongoChangeLogRepository implements Pick<ChangeLogRepository, never> {
  constructor(readonly connection: Connection) {}
}
