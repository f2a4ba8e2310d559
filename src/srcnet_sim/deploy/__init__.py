"""Deployment: Kubernetes manifests sized from the plan."""
