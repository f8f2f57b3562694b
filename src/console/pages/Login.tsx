import { Alert, Button, Center, Paper, PasswordInput, Stack, Text, Title } from '@mantine/core';
import { useState, type FormEvent } from 'react';
import { errorMessage } from '../api/client';
import { useSessionState } from '../session';

/** Log in with an API token (`guardian-sync api-token create`). */
export function LoginPage() {
  const { login, notice } = useSessionState();
  const [token, setToken] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await login(token);
    } catch (err) {
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };
  return (
    <Center mih="100vh" p="md">
      <Paper withBorder shadow="sm" p="xl" w={440} component="main">
        <form onSubmit={e => void submit(e)}>
          <Stack>
            <Title order={1} size="h3">
              guardian-sync console
            </Title>
            <Text size="sm">
              Log in with the API token your administrator gave you. The console keeps a session
              cookie; the token itself is not stored in the browser.
            </Text>
            {notice && !error && (
              <Alert color="gray" role="status">
                {notice}
              </Alert>
            )}
            {error && (
              <Alert color="red" role="alert" title="Login failed">
                {error}
              </Alert>
            )}
            <PasswordInput
              label="API token"
              required
              autoFocus
              autoComplete="off"
              value={token}
              onChange={e => setToken(e.currentTarget.value)}
            />
            <Button type="submit" loading={busy} disabled={!token.trim()}>
              Log in
            </Button>
          </Stack>
        </form>
      </Paper>
    </Center>
  );
}
