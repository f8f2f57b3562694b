/** Connector conformance: Skyward SMS 2.0 LMS API (see connector.conformance.ts). */
import { runConnectorConformance } from './connector.conformance.js';
import { skywardLmsFactory } from './connector-factories.js';

runConnectorConformance(skywardLmsFactory);
