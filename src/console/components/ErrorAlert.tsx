import { Alert } from '@mantine/core';
import { errorMessage } from '../api/client';

/** The API's error message for a failed call (nothing when `error` is undefined). */
export function ErrorAlert({
  error,
  title = 'Something went wrong',
}: {
  error: unknown;
  title?: string;
}) {
  if (error === undefined || error === null) return null;
  return (
    <Alert color="red" title={title} role="alert" variant="light">
      {errorMessage(error)}
    </Alert>
  );
}
