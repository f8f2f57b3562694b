/** Connector conformance: Infinite Campus OneRoster 1.2 (see connector.conformance.ts). */
import { runConnectorConformance } from './connector.conformance.js';
import { infiniteCampus12Factory } from './connector-factories.js';

runConnectorConformance(infiniteCampus12Factory);
