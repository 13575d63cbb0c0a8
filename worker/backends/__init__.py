"""AI backends: the OpenAI-compatible API (external) and Kubernetes Jobs (internal)."""
