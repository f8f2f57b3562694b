/**
 * The console's pages. To add one: write `pages/<Name>.tsx` exporting a component that takes
 * its route parameters, and add one entry below (its `path` under /console, its title and,
 * for `nav: 'district'`, the link shown in a district's navigation). Read data with
 * `useApi` (hooks.ts) or `<PagedTable>`; send changes with `apiSend` (api/client.ts); put
 * state-changing controls inside `<AdminOnly>` (session.tsx) and `<ConfirmButton>`.
 */
import type { ReactNode } from 'react';
import { DistrictPage } from './DistrictPage';
import { DistrictsPage } from './DistrictsPage';
import { AccessCodesPage } from './AccessCodesPage';
import { AssociationsPage } from './AssociationsPage';
import { ImportsPage } from './ImportsPage';
import { RunPage } from './RunPage';
import { WhyLinkedPage } from './WhyLinkedPage';

export interface ConsolePage {
  /** Path under /console, with `:param` parts (`:district` is the district id). */
  path: string;
  /** Document title and navigation label. */
  title: string;
  /** `top`: in the main navigation; `district`: in each district's navigation (path with `:district`). */
  nav?: 'top' | 'district';
  render(params: Record<string, string>): ReactNode;
}

export const PAGES: ConsolePage[] = [
  { path: '/', title: 'Districts', nav: 'top', render: () => <DistrictsPage /> },
  {
    path: '/districts/:district',
    title: 'Overview',
    nav: 'district',
    render: p => <DistrictPage districtId={p.district ?? ''} />,
  },
  {
    path: '/districts/:district/runs/:run',
    title: 'Run',
    render: p => <RunPage districtId={p.district ?? ''} runId={p.run ?? ''} />,
  },
  {
    path: '/districts/:district/imports',
    title: 'Imports',
    nav: 'district',
    render: p => <ImportsPage districtId={p.district ?? ''} />,
  },
  {
    path: '/districts/:district/access-codes',
    title: 'Access codes',
    nav: 'district',
    render: p => <AccessCodesPage districtId={p.district ?? ''} />,
  },
  {
    path: '/districts/:district/associations',
    title: 'Associations',
    nav: 'district',
    render: p => <AssociationsPage districtId={p.district ?? ''} />,
  },
  {
    path: '/districts/:district/why-linked',
    title: 'Why linked',
    nav: 'district',
    render: p => <WhyLinkedPage districtId={p.district ?? ''} />,
  },
];
