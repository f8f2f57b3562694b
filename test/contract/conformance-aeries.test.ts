/** Connector conformance: Aeries REST v5 (see connector.conformance.ts). */
import { aeriesFactory } from './aeries-eschool-factories.js';
import { runConnectorConformance } from './connector.conformance.js';

runConnectorConformance(aeriesFactory);
