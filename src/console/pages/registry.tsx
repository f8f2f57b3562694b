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
import { RunPage } from './RunPage';

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
];
