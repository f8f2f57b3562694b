/** Connector conformance: eSchoolPLUS download-definition files, link mode (see connector.conformance.ts). */
import { eSchoolPlusFactory } from './aeries-eschool-factories.js';
import { runConnectorConformance } from './connector.conformance.js';

runConnectorConformance(eSchoolPlusFactory);
