/** Connector conformance: OneRoster CSV zip (see connector.conformance.ts). */
import { runConnectorConformance } from './connector.conformance.js';
import { oneRosterCsvFactory } from './connector-factories.js';

runConnectorConformance(oneRosterCsvFactory);
