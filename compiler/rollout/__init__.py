"""plan and apply: the live state read, compared with the rendered site, and changed host by
host (compiler/rollout/apply.py); the plan file, the lock and the record of an apply."""
