"""auditc: compile a site spec into every artifact that sends Kubernetes API audit events to Falco."""

__version__ = "0.1.0"
