import { Button, Group, Modal, Stack, Text, type ButtonProps } from '@mantine/core';
import { notifications } from '@mantine/notifications';
import { useState, type ReactNode } from 'react';
import { errorMessage } from '../api/client';

export interface ConfirmButtonProps extends ButtonProps {
  /** Button text. */
  children: ReactNode;
  /** Title of the confirmation dialog. */
  title: string;
  /** What happens when confirmed (shown in the dialog). */
  message: ReactNode;
  /** Label of the confirming button (default: the button text). */
  confirmLabel?: string;
  /** The action; its error (the API's message) is shown in the dialog. */
  onConfirm: () => Promise<unknown>;
  /** Notification after success. */
  done?: string;
}

/**
 * A button that asks for confirmation in a modal dialog, runs `onConfirm`, and shows the API's
 * error message when it fails. Wrap in `<AdminOnly>` for admin actions.
 */
export function ConfirmButton(props: ConfirmButtonProps) {
  const { children, title, message, confirmLabel, onConfirm, done, ...button } = props;
  const [open, setOpen] = useState(false);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      setOpen(false);
      if (done) notifications.show({ message: done, color: 'green' });
    } catch (e) {
      setError(errorMessage(e));
    } finally {
      setBusy(false);
    }
  };
  return (
    <>
      <Button {...button} onClick={() => setOpen(true)}>
        {children}
      </Button>
      <Modal opened={open} onClose={() => setOpen(false)} title={title}>
        <Stack>
          <div>{message}</div>
          {error && (
            <Text c="red.8" role="alert">
              {error}
            </Text>
          )}
          <Group justify="flex-end">
            <Button variant="default" onClick={() => setOpen(false)}>
              Cancel
            </Button>
            <Button color={button.color ?? 'blue'} loading={busy} onClick={() => void run()}>
              {confirmLabel ?? children}
            </Button>
          </Group>
        </Stack>
      </Modal>
    </>
  );
}
