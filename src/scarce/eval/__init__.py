"""Frozen evaluation: encoders, features, probes (attentive, linear, kNN, few-shot), metrics, reports."""
