"""Cluster data: one verified archive out (export), checked (verify), and back in (import)."""
