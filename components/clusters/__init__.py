"""GPU clusters: EKS, GKE or an on-prem target, each exposing a Kubernetes provider for the serving layer."""
