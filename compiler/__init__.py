"""auditc: compile a site spec into every artifact that sends Kubernetes API audit events to Falco."""

__version__ = "0.1.0"

# A command allocates in bursts (imports, a site's models and documents) and frees nearly
# all of it as it goes; Python's default (a collection every 700 allocations) collected
# about 110 times in a one-site render, 17 ms of its 280, and scanned a fleet worker's
# whole heap again and again (9 % of a site's time). The command (compiler.cli.main) and
# the fleet's workers (compiler.api) collect after this many instead; the workers also
# freeze what they were forked with.
GC_THRESHOLDS = (100_000, 50, 100)
