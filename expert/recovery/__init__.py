"""Backups of Delta tables that survive the loss of the originals, and the proof that a restore is exact.

- `delta_backup`: a self-contained copy of a table's current version (`DEEP CLONE` where the
  engine has it, the documented equivalent where it does not), and a content fingerprint per table.
"""
