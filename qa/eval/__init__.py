"""Evaluation harness: measure retrieval and answers on question sets."""
