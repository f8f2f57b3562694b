import { Center, Loader } from '@mantine/core';
import { CurrentPage, Shell } from './components/Shell';
import { LoginPage } from './pages/Login';
import { useSessionState } from './session';

export function App() {
  const { status } = useSessionState();
  if (status === 'loading')
    return (
      <Center mih="100vh">
        <Loader aria-label="Loading" />
      </Center>
    );
  if (status === 'anonymous') return <LoginPage />;
  return (
    <Shell>
      <CurrentPage />
    </Shell>
  );
}
