/**
 * The app shell: header (product, who is logged in, log out), navigation (districts; inside a
 * district, the district's pages from `PAGES` with `nav: 'district'`), and the page.
 */
import {
  AppShell,
  Badge,
  Burger,
  Button,
  Group,
  NavLink,
  ScrollArea,
  Text,
  Title,
} from '@mantine/core';
import { useDisclosure } from '@mantine/hooks';
import type { ReactNode } from 'react';
import { DistrictList } from '../api/schemas';
import { useApi } from '../hooks';
import { PAGES } from '../pages/registry';
import { BASE, matchPath, navigate, useRoute } from '../router';
import { usePrincipal, useSessionState } from '../session';

function NavTo({ to, label, active }: { to: string; label: string; active: boolean }) {
  return (
    <NavLink
      href={`${BASE}${to}`}
      label={label}
      active={active}
      aria-current={active ? 'page' : undefined}
      onClick={e => {
        if (e.button !== 0 || e.metaKey || e.ctrlKey) return;
        e.preventDefault();
        navigate(to);
      }}
    />
  );
}

export function Shell({ children }: { children: ReactNode }) {
  const [opened, { toggle }] = useDisclosure();
  const route = useRoute();
  const principal = usePrincipal();
  const { logout } = useSessionState();
  const districts = useApi('/districts', DistrictList);
  const inDistrict = /^\/districts\/([^/]+)/.exec(route)?.[1];

  return (
    <AppShell
      header={{ height: 56 }}
      navbar={{ width: 250, breakpoint: 'sm', collapsed: { mobile: !opened } }}
      padding="md"
    >
      <AppShell.Header>
        <Group h="100%" px="md" justify="space-between">
          <Group>
            <Burger
              opened={opened}
              onClick={toggle}
              hiddenFrom="sm"
              size="sm"
              aria-label="Toggle navigation"
            />
            <Title order={1} size="h4">
              guardian-sync console
            </Title>
          </Group>
          <Group>
            <Text size="sm" data-testid="whoami">
              {principal.name}
            </Text>
            <Badge color={principal.isAdmin ? 'blue' : 'gray'} variant="light">
              {principal.isAdmin ? 'admin' : 'read-only'}
            </Badge>
            <Button variant="default" size="xs" onClick={() => void logout()}>
              Log out
            </Button>
          </Group>
        </Group>
      </AppShell.Header>
      <AppShell.Navbar p="xs" aria-label="Main navigation">
        <ScrollArea>
          <nav aria-label="Console">
            {PAGES.filter(p => p.nav === 'top').map(p => (
              <NavTo key={p.path} to={p.path} label={p.title} active={route === p.path} />
            ))}
            {districts.data?.items.map(d => (
              <NavLink
                key={d.id}
                label={d.name}
                description={d.id}
                defaultOpened={inDistrict === d.id}
                opened={inDistrict === d.id ? true : undefined}
                childrenOffset={12}
                href={`${BASE}/districts/${d.id}`}
                onClick={e => {
                  e.preventDefault();
                  navigate(`/districts/${encodeURIComponent(d.id)}`);
                }}
              >
                {PAGES.filter(p => p.nav === 'district').map(p => {
                  const to = p.path.replace(':district', encodeURIComponent(d.id));
                  return <NavTo key={p.path} to={to} label={p.title} active={route === to} />;
                })}
              </NavLink>
            ))}
          </nav>
        </ScrollArea>
      </AppShell.Navbar>
      <AppShell.Main>{children}</AppShell.Main>
    </AppShell>
  );
}

/** The page for the current route, or a not-found message. */
export function CurrentPage() {
  const route = useRoute();
  for (const p of PAGES) {
    const params = matchPath(p.path, route);
    if (params) {
      document.title = `${p.title} · guardian-sync`;
      return <>{p.render(params)}</>;
    }
  }
  document.title = 'Not found · guardian-sync';
  return (
    <Text role="alert">
      There is no console page at {route}. Choose a district in the navigation.
    </Text>
  );
}
