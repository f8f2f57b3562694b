/**
 * Exclusions: valid records a rule or district policy leaves out (`Reject.kind: 'excluded'`,
 * design invariant 14: nothing silent). Mappings and the planner report them through the same
 * channel as rejects; docs/operations.md "Exclusions" lists the codes.
 */

/**
 * Stable reason codes of exclusions (`Reject.kind: 'excluded'`): a valid record left out by a
 * rule or district policy. Run counts carry them as `counts[entity]['excluded:<code>']`; the
 * rejects listing and CSV name them in `reason`. Documented in docs/operations.md
 * "Exclusions"; changing a code is a breaking change for dashboards.
 */
export const EXCLUSION = {
  /** Guardian with no email and no username/uniqueId: it could never sign in. */
  noLogin: 'no email or username',
  /** User disabled in the SIS (OneRoster `enabledUser` false). */
  disabled: 'disabled in SIS',
  /** OneRoster `relative` user while policy `includeRelatives` is false. */
  relative: 'relative',
  /** PowerSchool contact↔student link without `canAccessData` (contacts.requireDataAccess). */
  noDataAccess: 'no data access',
  /** PowerSchool link whose current detail row is not custodial (contacts.requireCustodial). */
  notCustodial: 'not custodial',
  /** PowerSchool contact marked inactive. */
  inactiveContact: 'contact inactive',
  /** PowerSchool link with no current detail row (relationship ended or not started). */
  noCurrentRelationship: 'no current relationship',
  /** Aeries contact without portal access (contacts.requirePortalAccess). */
  noPortalAccess: 'no portal access',
  /** Aeries contact with a blank `AccessToPortal` but a `PortalAccountID` (not access). */
  portalAccountWithoutAccess: 'portal account without AccessToPortal',
  /** Aeries contact that does not live with the student (contacts.requireLivesWith). */
  notLivingWith: 'does not live with student',
  /** Aeries contact whose relationship code the district excludes. */
  relationshipCode: 'relationship code excluded',
  /** Aeries contact not an educational rights holder (contacts.requireEducationalRights). */
  notRightsHolder: 'not educational rights holder',
  /** Student pre-registered in the SIS (PowerSchool enroll_status P), policy default. */
  preRegistered: 'pre-registered student',
  /** Student whose SIS enrollment status is not active (PowerSchool enroll_status T, G, H, I). */
  notEnrolled: 'not enrolled',
} as const;
