"""The rollout engine every change walking nodes goes through: session, batches, health."""
