"""``meshctl``, the domain teams' CLI: one module per command, the repository loader,
the offline checks and the output formats. Imports ``api`` and ``governance``; never the
operator (its users do not install kopf)."""
