/**
 * Who is logged in. `<SessionProvider>` asks `GET /session` on load (the http-only cookie is
 * invisible to scripts), keeps the CSRF token for the fetch client, and shows the login page
 * when a call answers 401. `useSession()` gives the principal; `<AdminOnly>` renders its
 * children only for admin tokens (viewers see no state-changing controls; the API refuses
 * them anyway).
 */
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useState,
  type ReactNode,
} from 'react';
import { z } from 'zod';
import { apiGet, apiSend, onUnauthorized, setCsrfToken } from './api/client';
import { Session, type Principal } from './api/schemas';

export interface SessionState {
  status: 'loading' | 'anonymous' | 'ready';
  session: Session | null;
  /** Why the last session ended (shown on the login page). */
  notice: string | null;
  login: (token: string) => Promise<void>;
  logout: () => Promise<void>;
}

const Ctx = createContext<SessionState | null>(null);

export function SessionProvider({ children }: { children: ReactNode }) {
  const [status, setStatus] = useState<SessionState['status']>('loading');
  const [session, setSession] = useState<Session | null>(null);
  const [notice, setNotice] = useState<string | null>(null);

  const accept = useCallback((s: Session) => {
    setCsrfToken(s.csrfToken);
    setSession(s);
    setStatus('ready');
    setNotice(null);
  }, []);

  useEffect(() => {
    apiGet('/session', Session, undefined, { quiet401: true }).then(accept, () =>
      setStatus('anonymous'),
    );
    return onUnauthorized(message => {
      setCsrfToken(null);
      setSession(null);
      setNotice(message);
      setStatus('anonymous');
    });
  }, [accept]);

  const login = useCallback(
    async (token: string) =>
      accept(await apiSend('POST', '/session', Session, { token }, { quiet401: true })),
    [accept],
  );
  const logout = useCallback(async () => {
    try {
      await apiSend('DELETE', '/session', z.object({ loggedOut: z.boolean() }), undefined, {
        quiet401: true,
      });
    } finally {
      setCsrfToken(null);
      setSession(null);
      setNotice('You logged out.');
      setStatus('anonymous');
    }
  }, []);

  const value = useMemo(
    () => ({ status, session, notice, login, logout }),
    [status, session, notice, login, logout],
  );
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}

export function useSessionState(): SessionState {
  const s = useContext(Ctx);
  if (!s) throw new Error('useSessionState outside <SessionProvider>');
  return s;
}

/** The logged-in principal (inside the app shell only). */
export function usePrincipal(): Principal & { isAdmin: boolean } {
  const s = useSessionState().session;
  if (!s) throw new Error('usePrincipal without a session');
  return { ...s.principal, isAdmin: s.principal.role === 'admin' };
}

/** Children only for admin tokens. */
export function AdminOnly({ children }: { children: ReactNode }) {
  return usePrincipal().isAdmin ? <>{children}</> : null;
}
