/**
 * The console's client-side routes: paths under /console/ with the History API (the API
 * answers index.html for every such path). `useRoute()` is the current path without the
 * `/console` base; `navigate(to)` changes it; `<Link to>` is an accessible anchor.
 */
import { Anchor, type AnchorProps } from '@mantine/core';
import { useSyncExternalStore, type MouseEvent, type ReactNode } from 'react';

export const BASE = '/console';

const listeners = new Set<() => void>();
window.addEventListener('popstate', () => listeners.forEach(l => l()));

function subscribe(fn: () => void) {
  listeners.add(fn);
  return () => listeners.delete(fn);
}

function current(): string {
  const p = window.location.pathname;
  const rest = p.startsWith(BASE) ? p.slice(BASE.length) : p;
  return rest === '' ? '/' : rest;
}

/** The path after /console (e.g. `/districts/north`). */
export function useRoute(): string {
  return useSyncExternalStore(subscribe, current);
}

/** Go to `to` (a path after /console). */
export function navigate(to: string): void {
  window.history.pushState(null, '', `${BASE}${to}`);
  listeners.forEach(l => l());
  window.scrollTo(0, 0);
}

/** `pattern` like `/districts/:id/runs/:runId` against `path`: the parameters, or null. */
export function matchPath(pattern: string, path: string): Record<string, string> | null {
  const a = pattern.split('/').filter(Boolean);
  const b = path.split('/').filter(Boolean);
  if (a.length !== b.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < a.length; i++) {
    const pa = a[i] ?? '';
    const pb = b[i] ?? '';
    if (pa.startsWith(':')) params[pa.slice(1)] = decodeURIComponent(pb);
    else if (pa !== pb) return null;
  }
  return params;
}

/** An anchor to a console path (ctrl/middle click opens a new tab as usual). */
export function Link(props: AnchorProps & { to: string; children: ReactNode }) {
  const { to, children, ...rest } = props;
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(to);
  };
  return (
    <Anchor href={`${BASE}${to}`} onClick={onClick} {...rest}>
      {children}
    </Anchor>
  );
}
