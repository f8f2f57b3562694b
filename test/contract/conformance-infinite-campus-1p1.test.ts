/** Connector conformance: Infinite Campus OneRoster 1.1 (OAuth 1.0a) (see connector.conformance.ts). */
import { runConnectorConformance } from './connector.conformance.js';
import { infiniteCampus11Factory } from './connector-factories.js';

runConnectorConformance(infiniteCampus11Factory);
