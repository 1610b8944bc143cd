"""Autoscaling: replicas of each model version follow vLLM's queue depth and KV-cache usage."""
