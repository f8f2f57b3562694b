/** Connector conformance: PowerSchool (see connector.conformance.ts). */
import { runConnectorConformance } from './connector.conformance.js';
import { powerSchoolFactory } from './connector-factories.js';

runConnectorConformance(powerSchoolFactory);
