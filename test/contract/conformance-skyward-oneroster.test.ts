/** Connector conformance: Skyward OneRoster API (see connector.conformance.ts). */
import { runConnectorConformance } from './connector.conformance.js';
import { skywardOneRosterFactory } from './connector-factories.js';

runConnectorConformance(skywardOneRosterFactory);
